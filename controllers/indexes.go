package controllers

import (
	"context"
	"strconv"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Field indexes. Each is computed from facts known before any API call (the spec, or the
// account a PartnerAccount recorded), never from what a LoginLink learned in its own status,
// so that LoginLinks see each other before their first generation.
const (
	// indexAccountID holds a LoginLink's spec.accountID.
	indexAccountID = "partners.fifteenth.com/account-id"
	// indexStatusAccount holds the account a LoginLink last acted on (status.accountID): only
	// to wake it (e.g. to remove a link another generation invalidated), never to elect.
	indexStatusAccount = "partners.fifteenth.com/status-account-id"
	// indexAccountRef holds the name of the PartnerAccount a LoginLink references.
	indexAccountRef = "partners.fifteenth.com/account-ref"
	// indexClaimedAccount holds a PartnerAccount's status.accountID: who claims an account.
	indexClaimedAccount = "partners.fifteenth.com/claimed-account"
	// indexWantedAccount holds what a PartnerAccount without an account waits for: its
	// spec.accountID or status.existingAccountID, and its lower-cased email ("email:<email>").
	// A PartnerAccount that lost a claim is woken through it when the claimant goes.
	indexWantedAccount = "partners.fifteenth.com/wanted-account"
)

func idString(id int64) string { return strconv.FormatInt(id, 10) }

// wantedKeys are the indexWantedAccount values of a PartnerAccount.
func wantedKeys(pa *partnersv1.PartnerAccount) []string {
	keys := []string{"email:" + strings.ToLower(pa.Spec.Email)}
	if id := pa.Spec.AccountID; id != nil {
		keys = append(keys, idString(*id))
	}
	if id := pa.Status.ExistingAccountID; id != 0 {
		keys = append(keys, idString(id))
	}
	return keys
}

// SetupIndexes registers the field indexes the controllers use.
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &partnersv1.LoginLink{}, indexAccountID, func(o client.Object) []string {
		if id := o.(*partnersv1.LoginLink).Spec.AccountID; id != nil {
			return []string{idString(*id)}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &partnersv1.LoginLink{}, indexStatusAccount, func(o client.Object) []string {
		if id := o.(*partnersv1.LoginLink).Status.AccountID; id != 0 {
			return []string{idString(id)}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &partnersv1.LoginLink{}, indexAccountRef, func(o client.Object) []string {
		if ref := o.(*partnersv1.LoginLink).Spec.AccountRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &partnersv1.PartnerAccount{}, indexWantedAccount, func(o client.Object) []string {
		return wantedKeys(o.(*partnersv1.PartnerAccount))
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &partnersv1.PartnerAccount{}, indexClaimedAccount, claimedAccount)
}

// olderThan reports whether a PartnerAccount was created before another (ties broken by
// namespace/name): the older one keeps a claimed account.
func olderThan(a, b client.Object) bool {
	ta, tb := a.GetCreationTimestamp().Time, b.GetCreationTimestamp().Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
}

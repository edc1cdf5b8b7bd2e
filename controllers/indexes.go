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
	// indexStatusAccount holds the account a LoginLink last acted on (status.accountID) when
	// its spec.accountID does not name it: only to wake it (e.g. to remove a link another
	// generation invalidated), never to elect. Listed with indexAccountID (accountRequests).
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

// wantedKeys are the indexWantedAccount values of a PartnerAccount. One that has its account
// waits for nothing and is left out (waitingFor wakes only those without one): at 10,000
// accounts each index value costs about half a kilobyte of the cache.
func wantedKeys(pa *partnersv1.PartnerAccount) []string {
	if pa.Status.AccountID != 0 {
		return nil
	}
	keys := []string{"email:" + strings.ToLower(pa.Spec.Email)}
	if id := pa.Spec.AccountID; id != nil {
		keys = append(keys, idString(*id))
	}
	if id := pa.Status.ExistingAccountID; id != 0 {
		keys = append(keys, idString(id))
	}
	return keys
}

// statusAccountKeys are the indexStatusAccount values of a LoginLink: the account it last
// acted on, unless its spec.accountID names the same one (indexAccountID has it already; the
// two are listed together).
func statusAccountKeys(ll *partnersv1.LoginLink) []string {
	id := ll.Status.AccountID
	if id == 0 || (ll.Spec.AccountID != nil && *ll.Spec.AccountID == id) {
		return nil
	}
	return []string{idString(id)}
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
		return statusAccountKeys(o.(*partnersv1.LoginLink))
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

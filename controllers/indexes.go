package controllers

import (
	"context"
	"strconv"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Field indexes on LoginLinks.
const (
	// indexAccountUser holds "<accountID>/<lower-case user email>" (the email empty for an
	// unresolved primary holder): the LoginLinks that compete for one user's link.
	indexAccountUser = "partners.fifteenth.com/account-user"
	// indexAccountRef holds the name of the referenced PartnerAccount.
	indexAccountRef = "partners.fifteenth.com/account-ref"
	// indexClaimedAccount holds a PartnerAccount's status.accountID: who claims an account.
	indexClaimedAccount = "partners.fifteenth.com/claimed-account"
)

// accountUserKey is the competition key of a LoginLink, or "" while its account is unknown.
func accountUserKey(ll *partnersv1.LoginLink) string {
	id := ll.Status.AccountID
	if ll.Spec.AccountID != nil {
		id = *ll.Spec.AccountID
	}
	if id == 0 {
		return ""
	}
	user := ll.Spec.UserEmail
	if user == "" {
		user = ll.Status.UserEmail
	}
	return keyFor(id, user)
}

func keyFor(accountID int64, user string) string {
	return strconv.FormatInt(accountID, 10) + "/" + strings.ToLower(user)
}

// SetupIndexes registers the field indexes the controllers use.
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &partnersv1.LoginLink{}, indexAccountUser, func(o client.Object) []string {
		if k := accountUserKey(o.(*partnersv1.LoginLink)); k != "" {
			return []string{k}
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
	return idx.IndexField(ctx, &partnersv1.PartnerAccount{}, indexClaimedAccount, func(o client.Object) []string {
		if id := o.(*partnersv1.PartnerAccount).Status.AccountID; id != 0 {
			return []string{strconv.FormatInt(id, 10)}
		}
		return nil
	})
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

// newerThan reports whether a was created after b (ties broken by namespace/name): the newest
// LoginLink for a user is the active one.
func newerThan(a, b *partnersv1.LoginLink) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.Namespace+"/"+a.Name > b.Namespace+"/"+b.Name
}

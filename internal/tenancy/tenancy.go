// Package tenancy decides whether a namespace may act on a Fifteenth account.
//
// An account belongs to one namespace: the namespace of the PartnerAccount that created or
// adopted it (its claim). Only objects in that namespace act on it. An account nobody here
// manages (no claim) may be adopted, or linked by accountID, only by a namespace that holds a
// grant: ClusterPartnerConfig.spec.accountAccess, the manager's --account-access-namespaces
// for the flag-built default, or a namespaced PartnerConfig (the tenant's own key reaches only
// its own accounts).
//
// Refusals never name another namespace or its objects: a tenant learns nothing about
// accounts that are not its own.
package tenancy

import "fmt"

// Reasons of a refusal (the Ready condition's reason).
const (
	// ReasonAccountNotPermitted: the account belongs to another namespace, or is unclaimed
	// and the namespace holds no grant.
	ReasonAccountNotPermitted = "AccountNotPermitted"
)

// Access is what is known of an account when an object of Namespace wants to act on it.
type Access struct {
	// Namespace is the acting object's namespace.
	Namespace string
	// AccountID is the account.
	AccountID int64
	// Home is the namespace of the PartnerAccount that claims the account; "" when unclaimed.
	Home string
	// Granted is true when the object's partner config lets its namespace adopt or link
	// unclaimed accounts.
	Granted bool
}

// Decision is the outcome of Permit.
type Decision struct {
	Allowed bool
	// Reason and Message explain a refusal, naming nothing of another namespace.
	Reason, Message string
}

// Permit decides whether the object may act on the account.
func Permit(a Access) Decision {
	switch {
	case a.Home == a.Namespace:
		return Decision{Allowed: true}
	case a.Home != "":
		return Decision{Reason: ReasonAccountNotPermitted, Message: fmt.Sprintf(
			"account %d is not managed in this namespace: only the namespace whose PartnerAccount manages an account may act on it", a.AccountID)}
	case a.Granted:
		return Decision{Allowed: true}
	}
	return Decision{Reason: ReasonAccountNotPermitted, Message: fmt.Sprintf(
		"account %d is not managed by a PartnerAccount of this namespace, and this namespace may not adopt or link unmanaged accounts: "+
			"an administrator grants it with ClusterPartnerConfig spec.accountAccess (or the manager's --account-access-namespaces)", a.AccountID)}
}

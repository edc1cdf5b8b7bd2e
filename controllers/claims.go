package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// claimsCache is a cluster-wide cache of PartnerAccounts for a manager that watches only some
// namespaces (a shard): an account's claim may live in a namespace another shard watches, and
// a claim check that read only this shard's cache would miss it (and link, or adopt, another
// namespace's account). Each PartnerAccount is stripped to what a claim check reads, so that a
// shard's memory stays in proportion to its own namespaces, not the cluster's.
type claimsCache struct{ cache.Cache }

// GetCache makes the manager start it with its own caches, and wait for it to sync before the
// controllers start.
func (c claimsCache) GetCache() cache.Cache { return c.Cache }

// newClaimsCache builds the cluster-wide claims cache, with its claim index, and adds it to mgr.
// It leaves out the namespaces in own (the manager's cache holds their PartnerAccounts whole):
// at 10,000 PartnerAccounts in a shard's own namespaces, a second, stripped copy of each took
// 6.5 MiB and its index entries about 3 MiB more.
func newClaimsCache(ctx context.Context, mgr ctrl.Manager, own []string) (cache.Cache, error) {
	byObject := cache.ByObject{Transform: stripToClaim}
	if len(own) > 0 {
		others := make([]fields.Selector, 0, len(own))
		for _, ns := range own {
			others = append(others, fields.OneTermNotEqualSelector("metadata.namespace", ns))
		}
		byObject.Field = fields.AndSelectors(others...)
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&partnersv1.PartnerAccount{}: byObject},
		// Only PartnerAccounts: a read of any other kind is a programming error, not a new informer.
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the cluster-wide claims cache: %w", err)
	}
	if err := addIndex(ctx, c, claimedAccountIndex()); err != nil {
		return nil, err
	}
	if err := mgr.Add(claimsCache{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// claimedAccount is the indexClaimedAccount value of a PartnerAccount.
func claimedAccount(o client.Object) []string {
	if id := o.(*partnersv1.PartnerAccount).Status.AccountID; id != 0 {
		return []string{idString(id)}
	}
	return nil
}

// stripToClaim keeps of a PartnerAccount what claimantsIn and its callers read: its identity,
// age and deletion, its email and config, and the account it claims.
func stripToClaim(o any) (any, error) {
	pa, ok := o.(*partnersv1.PartnerAccount)
	if !ok {
		return o, nil
	}
	return &partnersv1.PartnerAccount{
		TypeMeta: pa.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Namespace: pa.Namespace, Name: pa.Name, UID: pa.UID, ResourceVersion: pa.ResourceVersion,
			CreationTimestamp: pa.CreationTimestamp, DeletionTimestamp: pa.DeletionTimestamp},
		Spec:   partnersv1.PartnerAccountSpec{Email: pa.Spec.Email, AccountID: pa.Spec.AccountID, PartnerConfigRef: pa.Spec.PartnerConfigRef},
		Status: partnersv1.PartnerAccountStatus{AccountID: pa.Status.AccountID},
	}, nil
}

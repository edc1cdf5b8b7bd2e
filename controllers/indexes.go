package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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
	// indexBucket splits the LoginLinks and the PartnerAccounts into metricsBuckets groups by
	// namespace and name (bucketOf), so that a scrape lists them a group at a time: a List of
	// the cache copies each object it returns (560 bytes a LoginLink), 14 MiB at once for
	// 25,000 LoginLinks, and one group's List is a 32nd of that.
	indexBucket = "partners.fifteenth.com/bucket"
)

// metricsBuckets is how many groups indexBucket makes.
const metricsBuckets = 32

// bucketNames are the indexBucket values, made once.
var bucketNames = func() []string {
	names := make([]string, metricsBuckets)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return names
}()

// bucketOf is the indexBucket value of an object: FNV-1a of its namespace and name.
func bucketOf(o client.Object) string {
	h := uint32(2166136261)
	for _, s := range [2]string{o.GetNamespace(), o.GetName()} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
		h = (h ^ '/') * 16777619
	}
	return bucketNames[h%metricsBuckets]
}

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

// indexScope says how an index is listed: cluster-wide (no namespace in the List) or within one
// namespace (client.InNamespace). Every List of an index uses its one scope.
type indexScope bool

const (
	clusterWide  indexScope = false
	inNamespace  indexScope = true
	fieldPrefix             = "field:"           // controller-runtime's index name: "field:" + field
	allNamespace            = "__all_namespaces" // its key prefix of a List without a namespace
)

// fieldIndex is one field index of the controllers.
type fieldIndex struct {
	obj   client.Object
	field string
	scope indexScope
	fn    client.IndexerFunc
}

// fieldIndexes are the field indexes the controllers use, with the scope each is listed in.
func fieldIndexes() []fieldIndex {
	return []fieldIndex{
		{&partnersv1.LoginLink{}, indexAccountID, clusterWide, func(o client.Object) []string {
			if id := o.(*partnersv1.LoginLink).Spec.AccountID; id != nil {
				return []string{idString(*id)}
			}
			return nil
		}},
		{&partnersv1.LoginLink{}, indexStatusAccount, clusterWide, func(o client.Object) []string {
			return statusAccountKeys(o.(*partnersv1.LoginLink))
		}},
		{&partnersv1.LoginLink{}, indexAccountRef, inNamespace, func(o client.Object) []string {
			if ref := o.(*partnersv1.LoginLink).Spec.AccountRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}},
		{&partnersv1.PartnerAccount{}, indexWantedAccount, clusterWide, func(o client.Object) []string {
			return wantedKeys(o.(*partnersv1.PartnerAccount))
		}},
		claimedAccountIndex(),
		{&partnersv1.LoginLink{}, indexBucket, clusterWide, func(o client.Object) []string { return []string{bucketOf(o)} }},
		{&partnersv1.PartnerAccount{}, indexBucket, clusterWide, func(o client.Object) []string { return []string{bucketOf(o)} }},
	}
}

// claimedAccountIndex is indexClaimedAccount, in the manager's cache and in the cluster-wide
// claims cache (newClaimsCache).
func claimedAccountIndex() fieldIndex {
	return fieldIndex{&partnersv1.PartnerAccount{}, indexClaimedAccount, clusterWide, claimedAccount}
}

// SetupIndexes registers the field indexes the controllers use. On the manager's cache each
// index keeps the one key its scope is listed by: controller-runtime's IndexField keeps two
// per value of a namespaced object ("<namespace>/<value>" and "__all_namespaces/<value>"),
// and no List reads the second (measured on a client-go indexer: 50,000 index values took
// 18.3 MiB with both keys, 9.3 MiB with one).
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	for _, fi := range fieldIndexes() {
		if err := addIndex(ctx, idx, fi); err != nil {
			return err
		}
	}
	return nil
}

// addIndex registers fi on idx, with one key per value on a cache (SetupIndexes); other
// indexers (the fake client of the unit tests) get IndexField.
func addIndex(ctx context.Context, idx client.FieldIndexer, fi fieldIndex) error {
	informers, ok := idx.(cache.Informers)
	if !ok {
		return idx.IndexField(ctx, fi.obj, fi.field, fi.fn)
	}
	inf, err := informers.GetInformer(ctx, fi.obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return inf.AddIndexers(toolscache.Indexers{fieldPrefix + fi.field: oneKeyIndex(fi.scope, fi.fn)})
}

// oneKeyIndex is fn's index with the key the cache looks up for a List in scope: what
// controller-runtime's IndexField stores, less the key of the other scope.
func oneKeyIndex(scope indexScope, fn client.IndexerFunc) toolscache.IndexFunc {
	return func(raw any) ([]string, error) {
		obj, ok := raw.(client.Object)
		if !ok {
			return nil, fmt.Errorf("object of type %T is not an Object", raw)
		}
		vals := fn(obj)
		prefix := allNamespace + "/"
		if scope == inNamespace && obj.GetNamespace() != "" {
			prefix = obj.GetNamespace() + "/"
		}
		keys := make([]string, len(vals))
		for i, v := range vals {
			keys[i] = prefix + v
		}
		return keys, nil
	}
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

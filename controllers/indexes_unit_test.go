package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// The indexes leave out what no list asks for: each value costs the cache about half a
// kilobyte at 10,000 accounts.
func TestUnitIndexesLeaveOutWhatNoOneLists(t *testing.T) {
	pa := &partnersv1.PartnerAccount{Spec: partnersv1.PartnerAccountSpec{Email: "A@x.example", AccountID: ptr.To(int64(7))}}
	if got := wantedKeys(pa); !slices.Equal(got, []string{"email:a@x.example", "7"}) {
		t.Errorf("waiting PartnerAccount: %v", got)
	}
	pa.Status.ExistingAccountID = 8
	if got := wantedKeys(pa); !slices.Equal(got, []string{"email:a@x.example", "7", "8"}) {
		t.Errorf("PartnerAccount that met an existing account: %v", got)
	}
	pa.Status.AccountID = 7
	if got := wantedKeys(pa); got != nil {
		t.Errorf("a PartnerAccount with its account waits for nothing, indexed as %v", got)
	}

	for _, tc := range []struct {
		name   string
		spec   *int64
		status int64
		want   []string
	}{
		{"never acted", ptr.To(int64(5)), 0, nil},
		{"acted on its spec's account: indexAccountID has it", ptr.To(int64(5)), 5, nil},
		{"acted on another account than its spec's", ptr.To(int64(5)), 6, []string{"6"}},
		{"by accountRef", nil, 6, []string{"6"}},
	} {
		ll := &partnersv1.LoginLink{Spec: partnersv1.LoginLinkSpec{AccountID: tc.spec}, Status: partnersv1.LoginLinkStatus{AccountID: tc.status}}
		if got := statusAccountKeys(ll); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Each index keeps only the key of the scope it is listed in (SetupIndexes); a List in the
// other scope would find nothing. Every List of an index in the controllers uses its scope.
func TestUnitIndexesAreListedInTheirScope(t *testing.T) {
	ll := &partnersv1.LoginLink{}
	ll.Namespace = "team-a"
	ll.Spec.AccountID = ptr.To(int64(7))
	ll.Spec.AccountRef = &partnersv1.LocalObjectReference{Name: "john"}
	scopes := map[string]indexScope{}
	for _, fi := range fieldIndexes() {
		scopes[fi.field] = fi.scope
		switch fi.field {
		case indexAccountID:
			if got, _ := oneKeyIndex(fi.scope, fi.fn)(ll); !slices.Equal(got, []string{"__all_namespaces/7"}) {
				t.Errorf("%s keys %v", fi.field, got)
			}
		case indexAccountRef:
			if got, _ := oneKeyIndex(fi.scope, fi.fn)(ll); !slices.Equal(got, []string{"team-a/john"}) {
				t.Errorf("%s keys %v", fi.field, got)
			}
		}
	}
	names := map[string]string{"indexAccountID": indexAccountID, "indexStatusAccount": indexStatusAccount,
		"indexAccountRef": indexAccountRef, "indexWantedAccount": indexWantedAccount, "indexClaimedAccount": indexClaimedAccount,
		"indexBucket": indexBucket}
	lists := regexp.MustCompile(`client\.MatchingFields\{(index\w+):`)
	seen := 0
	eachSourceLine(t, func(f string, i int, line string) {
		m := lists.FindStringSubmatch(line)
		if m == nil {
			return
		}
		seen++
		scope, ok := scopes[names[m[1]]]
		if !ok {
			t.Errorf("%s:%d lists %s, which SetupIndexes does not register", f, i, m[1])
			return
		}
		if namespaced := strings.Contains(line, "client.InNamespace("); namespaced != bool(scope) {
			t.Errorf("%s:%d lists %s in the wrong scope (namespaced %v)", f, i, m[1], namespaced)
		}
	})
	if seen < 8 {
		t.Errorf("found %d Lists of an index, want at least 8", seen)
	}
}

// The buckets a scrape lists the objects by are even enough that none holds much more than
// its share, and an object's bucket depends on its namespace and name only.
func TestUnitBucketsSplitEvenly(t *testing.T) {
	counts := map[string]int{}
	const n = 25_000
	for i := range n {
		ll := &partnersv1.LoginLink{}
		ll.Namespace, ll.Name = "scale", fmt.Sprintf("link-%d", i)
		counts[bucketOf(ll)]++
	}
	if len(counts) != metricsBuckets {
		t.Fatalf("%d buckets used, want %d", len(counts), metricsBuckets)
	}
	for b, c := range counts {
		if c > 2*n/metricsBuckets {
			t.Errorf("bucket %s holds %d of %d objects", b, c, n)
		}
	}
	a, b := &partnersv1.PartnerAccount{}, &partnersv1.PartnerAccount{}
	a.Namespace, a.Name, a.Status.AccountID = "ns", "x", 1
	b.Namespace, b.Name = "ns", "x"
	if bucketOf(a) != bucketOf(b) {
		t.Error("the bucket depends on more than the namespace and name")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = bucketOf(a) }); allocs != 0 {
		t.Errorf("bucketOf allocates %v times", allocs)
	}
}

// accountLinks runs in every election and every PartnerAccount pass: its callers only read
// what it returns, so they list without copying the cache's objects (at 10,000 accounts the
// copies were about 1 GB of what the manager allocated).
func TestUnitAccountLinksCopiesNothing(t *testing.T) {
	calls := 0
	eachSourceLine(t, func(f string, i int, line string) {
		if !strings.Contains(line, "accountLinks(ctx, ") {
			return
		}
		calls++
		if !strings.Contains(line, "accountLinks(ctx, noCopyReader{") {
			t.Errorf("%s:%d: accountLinks reads through a copying client", f, i)
		}
	})
	if calls < 3 {
		t.Fatalf("found %d calls of accountLinks", calls)
	}
}

// eachSourceLine calls fn with each line (numbered from 1) of the package's Go files, tests
// left out.
func eachSourceLine(t *testing.T, fn func(file string, n int, line string)) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			fn(f, i+1, line)
		}
	}
}

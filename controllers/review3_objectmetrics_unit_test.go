package controllers

// Review of 8293b47 (objectMetrics lists a bucket at a time). No envtest: a real
// controller-runtime cache (informers, SetupIndexes) over a fake API server that answers
// LIST and a WATCH that never sends anything.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
)

// review3APIServer serves perNS LoginLinks and PartnerAccounts in each namespace.
func review3APIServer(t *testing.T, namespaces []string, perNS int) *httptest.Server {
	t.Helper()
	now := metav1.NewTime(time.Unix(1_800_000_000, 0))
	ready := []metav1.Condition{{Type: partnersv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Generated",
		Message: "The login link was generated.", LastTransitionTime: now, ObservedGeneration: 1}}
	meta := func(ns string, i int, kind string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", kind, i), UID: "u", ResourceVersion: "1", Generation: 1,
			Labels: map[string]string{"app": "a", "team": "t"}, Annotations: map[string]string{"note": "n"}, CreationTimestamp: now}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // apis/g/v/namespaces/ns/resource
		if len(parts) != 6 || parts[3] != "namespaces" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
			if r.URL.Query().Get("sendInitialEvents") == "true" {
				http.Error(w, "no watch-list", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		ns := parts[4]
		var out any
		switch parts[5] {
		case "loginlinks":
			l := partnersv1.LoginLinkList{TypeMeta: metav1.TypeMeta{APIVersion: partnersv1.GroupVersion.String(), Kind: "LoginLinkList"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
			for i := 0; i < perNS; i++ {
				ll := partnersv1.LoginLink{ObjectMeta: meta(ns, i, "ll")}
				ll.Spec.UserEmail = "someone@example.com"
				ll.Status.ExpiresAt, ll.Status.RenewalTime, ll.Status.GeneratedAt = &now, &now, &now
				ll.Status.Conditions = ready
				l.Items = append(l.Items, ll)
			}
			out = l
		case "partneraccounts":
			l := partnersv1.PartnerAccountList{TypeMeta: metav1.TypeMeta{APIVersion: partnersv1.GroupVersion.String(), Kind: "PartnerAccountList"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
			for i := 0; i < perNS/2; i++ {
				pa := partnersv1.PartnerAccount{ObjectMeta: meta(ns, i, "pa")}
				pa.Status.Conditions = ready
				l.Items = append(l.Items, pa)
			}
			out = l
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// review3Cache starts a cache as main.go builds it (DefaultNamespaces when namespaces are
// given, the transform, SetupIndexes) over the fake API server.
func review3Cache(t *testing.T, srv *httptest.Server, namespaces []string) cache.Cache {
	t.Helper()
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	scheme := krt.NewScheme()
	if err := partnersv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{partnersv1.GroupVersion})
	for _, k := range []string{"LoginLink", "PartnerAccount", "LoginLinkList", "PartnerAccountList"} { // the real mapper answers list kinds too
		mapper.Add(partnersv1.GroupVersion.WithKind(k), meta.RESTScopeNamespace)
	}
	opts := cache.Options{Scheme: scheme, Mapper: mapper, DefaultTransform: CacheTransform()}
	if namespaces != nil {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(&rest.Config{Host: srv.URL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := SetupIndexes(ctx, c); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if !c.WaitForCacheSync(sctx) {
		t.Fatal("cache not synced")
	}
	return c
}

// allocated is what f allocates, in bytes, averaged over runs.
func allocated(runs int, f func()) uint64 {
	f()
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&b)
	return (b.TotalAlloc - a.TotalAlloc) / uint64(runs)
}

// resetEachObject is objectMetrics.EachObject with the list emptied before each bucket's
// List (the only difference).
func resetEachObject(c client.Reader, link func(metrics.LinkState), account func(metrics.AccountState)) error {
	ctx := context.Background()
	for _, b := range bucketNames {
		var lls partnersv1.LoginLinkList
		if err := c.List(ctx, &lls, client.MatchingFields{indexBucket: b}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range lls.Items {
			link(metrics.LinkState{Namespace: lls.Items[i].Namespace, Name: lls.Items[i].Name})
		}
	}
	for _, b := range bucketNames {
		var pas partnersv1.PartnerAccountList
		if err := c.List(ctx, &pas, client.MatchingFields{indexBucket: b}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range pas.Items {
			account(metrics.AccountState{Namespace: pas.Items[i].Namespace, Name: pas.Items[i].Name})
		}
	}
	return nil
}

// Found by review, fixed: with --watch-namespaces (or --watch-namespace-selector; the bench runs with
// --watch-namespaces) the manager's cache is controller-runtime's multiNamespaceCache, whose
// List starts with list.DeepCopyObject() for each watched namespace. objectMetrics reuses one
// LoginLinkList (and one PartnerAccountList) across the 32 buckets, so each bucket's List
// deep-copies the previous bucket's items once per watched namespace: a scrape deep-copies
// about every LoginLink and PartnerAccount times the number of watched namespaces, where
// the single List before the change (an empty list) copied none. UnsafeDisableDeepCopy does
// not prevent it. (Fails on 5c021d6's objectmetrics.go: 2.0x with 1 namespace, 5.1x with 4;
// passes on the uncommitted working-tree change that declares the list inside the loop.)
func TestReview3BucketListDeepCopiesPreviousBucket(t *testing.T) {
	const perNS = 800
	for _, served := range [][]string{{"a"}, {"a", "b", "c", "d"}} {
		srv := review3APIServer(t, served, perNS)
		c := review3Cache(t, srv, served)
		m := objectMetrics{c: c, elected: closedChan()}
		n := 0
		count := func(metrics.LinkState) { n++ }
		none := func(metrics.AccountState) {}
		if err := m.EachObject(count, none); err != nil {
			t.Fatal(err)
		}
		if n != perNS*len(served) {
			t.Fatalf("%d LoginLinks, want %d", n, perNS*len(served))
		}
		got := allocated(5, func() { _ = m.EachObject(func(metrics.LinkState) {}, none) })
		fixed := allocated(5, func() { _ = resetEachObject(c, func(metrics.LinkState) {}, none) })
		objects := uint64(perNS * len(served) * 3 / 2)
		t.Logf("%d namespaces, %d objects: EachObject allocates %d B/scrape (%d B/object); with the list emptied per bucket %d B (%d B/object)",
			len(served), objects, got, got/objects, fixed, fixed/objects)
		if 2*got > 3*fixed {
			t.Errorf("%d namespaces: a scrape allocates %.1fx what it does with the list emptied per bucket (%d B vs %d B)",
				len(served), float64(got)/float64(fixed), got, fixed)
		}
	}
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Before this manager leads, a scrape passes nothing and does not read the cache.
func TestReview3NothingBeforeElected(t *testing.T) {
	srv := review3APIServer(t, []string{"a"}, 10)
	c := review3Cache(t, srv, []string{"a"})
	notYet := make(chan struct{})
	n := 0
	if err := (objectMetrics{c: c, elected: notYet}).EachObject(func(metrics.LinkState) { n++ }, func(metrics.AccountState) { n++ }); err != nil || n != 0 {
		t.Fatalf("not elected: %d objects, %v", n, err)
	}
	var buf strings.Builder
	bw := bufio.NewWriter(&buf)
	remove := metrics.AddObjectSource(objectMetrics{c: c, elected: notYet})
	defer remove()
	if err := metrics.Objects.WriteText(bw, nil); err != nil {
		t.Fatal(err)
	}
	_ = bw.Flush()
	if buf.Len() != 0 {
		t.Fatalf("not elected, WriteText wrote:\n%s", buf.String())
	}
	// Elected: every object, and the text carries only names and namespaces (no email).
	close(notYet)
	if err := metrics.Objects.WriteText(bw, nil); err != nil {
		t.Fatal(err)
	}
	_ = bw.Flush()
	if !strings.Contains(buf.String(), `fifteenth_login_link_ready{name="ll-9",namespace="a"} 1`) || strings.Contains(buf.String(), "@") {
		t.Fatalf("elected:\n%s", buf.String())
	}
}

package controllers

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
)

// bucketReader answers each List with one object of the bucket asked for, and records the
// lists it was given that were not empty (the cache of several namespaces deep-copies them).
type bucketReader struct {
	lists, filled int
	buckets       map[string]bool
}

func (r *bucketReader) Get(context.Context, types.NamespacedName, client.Object, ...client.GetOption) error {
	return fmt.Errorf("not in this test")
}

func (r *bucketReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists++
	if items, _ := meta.ExtractList(list); len(items) > 0 {
		r.filled++
	}
	o := client.ListOptions{}
	o.ApplyOptions(opts)
	b, ok := o.FieldSelector.RequiresExactMatch(indexBucket)
	if !ok {
		return fmt.Errorf("list without a bucket: %v", o.FieldSelector)
	}
	r.buckets[b] = true
	switch l := list.(type) {
	case *partnersv1.LoginLinkList:
		l.Items = []partnersv1.LoginLink{{}}
		l.Items[0].Namespace, l.Items[0].Name = "ns", "ll-"+b
	case *partnersv1.PartnerAccountList:
		l.Items = []partnersv1.PartnerAccount{{}}
		l.Items[0].Namespace, l.Items[0].Name = "ns", "pa-"+b
	}
	return nil
}

// A scrape lists the objects one bucket at a time, every bucket, each into a list of its own.
func TestUnitObjectMetricsListsBucketsIntoFreshLists(t *testing.T) {
	elected := make(chan struct{})
	close(elected)
	r := &bucketReader{buckets: map[string]bool{}}
	links, accounts := 0, 0
	if err := (objectMetrics{c: r, elected: elected}).EachObject(func(metrics.LinkState) { links++ }, func(metrics.AccountState) { accounts++ }); err != nil {
		t.Fatal(err)
	}
	if links != metricsBuckets || accounts != metricsBuckets || len(r.buckets) != metricsBuckets {
		t.Fatalf("%d links, %d accounts, %d buckets; want %d of each", links, accounts, len(r.buckets), metricsBuckets)
	}
	if r.filled > 0 {
		t.Fatalf("%d of %d Lists were given a list already filled", r.filled, r.lists)
	}
}

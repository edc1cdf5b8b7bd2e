package controllers

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
)

// markerOnlyDeepCopy is markerOnly before 1e37551.
func markerOnlyDeepCopy(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Secret)
	n, ok2 := e.ObjectNew.(*corev1.Secret)
	if !ok1 || !ok2 {
		return false
	}
	o, n = o.DeepCopy(), n.DeepCopy()
	delete(o.Annotations, annGenerating)
	delete(n.Annotations, annGenerating)
	o.ResourceVersion, n.ResourceVersion = "", ""
	o.ManagedFields, n.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(o, n)
}

// The shallow-copy markerOnly answers as the deep-copy one did, nil and empty maps and
// slices included, and writes nothing to the (cached) objects.
func TestReviewMarkerOnlyEqualsDeepCopyVersion(t *testing.T) {
	variants := []func(*corev1.Secret){
		func(s *corev1.Secret) {},
		func(s *corev1.Secret) { s.Annotations = nil },
		func(s *corev1.Secret) { s.Annotations = map[string]string{} },
		func(s *corev1.Secret) { s.Annotations = map[string]string{annGenerating: "t"} },
		func(s *corev1.Secret) { s.Annotations = map[string]string{annGenerating: "u", annChecksum: "c"} },
		func(s *corev1.Secret) { s.Annotations = map[string]string{annChecksum: "c"} },
		func(s *corev1.Secret) { s.ResourceVersion = "9" },
		func(s *corev1.Secret) { s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "m"}} },
		func(s *corev1.Secret) { s.Labels = nil },
		func(s *corev1.Secret) { s.Labels = map[string]string{} },
		func(s *corev1.Secret) { s.Data = nil },
		func(s *corev1.Secret) { s.Data = map[string][]byte{"login_link": {}} },
		func(s *corev1.Secret) { s.Data = map[string][]byte{"login_link": nil} },
		func(s *corev1.Secret) { s.Finalizers = []string{} },
		func(s *corev1.Secret) { s.Generation = 2 },
	}
	base := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", ResourceVersion: "1",
			Labels: map[string]string{"a": "b"}, Annotations: map[string]string{annChecksum: "c"}},
			Data: map[string][]byte{"login_link": []byte("x")}}
	}
	for i, vo := range variants {
		for j, vn := range variants {
			for k := range variants {
				o, n := base(), base()
				vo(o)
				vn(n)
				variants[k](n)
				oc, nc := o.DeepCopy(), n.DeepCopy()
				e := event.UpdateEvent{ObjectOld: o, ObjectNew: n}
				if got, want := markerOnly(e), markerOnlyDeepCopy(e); got != want {
					t.Errorf("variants %d -> %d+%d: markerOnly = %v, deep-copy version %v", i, j, k, got, want)
				}
				if !reflect.DeepEqual(o, oc) || !reflect.DeepEqual(n, nc) {
					t.Errorf("variants %d -> %d+%d: markerOnly changed the objects", i, j, k)
				}
			}
		}
	}
}

// A second CacheTransform pass (client-go's watch-list: temporary store, then the queue's
// Replace) leaves the object as the first did, keeps the shared label map, and writes no map
// another (published, concurrently read) object holds.
func TestReviewCacheTransformSecondPassIdempotent(t *testing.T) {
	tf := CacheTransform()
	meta := func(kind string, i int) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: fmt.Sprint(kind, i), Namespace: "n", UID: types.UID(fmt.Sprint(kind, i)),
			Labels:          map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue, election.LabelAccountID: "42"},
			Annotations:     map[string]string{lastApplied: "{}", election.AnnotationUser: "42/a@example.com"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "x/v1", Kind: "K", Name: "o"}},
			Finalizers:      []string{"f/x"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}
	}
	// Only a Lease carries the account-id label (and loses it in the cache).
	notLease := func(kind string, i int) metav1.ObjectMeta {
		m := meta(kind, i)
		delete(m.Labels, election.LabelAccountID)
		return m
	}
	objects := func(i int) []client.Object {
		return []client.Object{
			&coordinationv1.Lease{ObjectMeta: meta("lease", i)},
			&corev1.Secret{ObjectMeta: notLease("s", i), Data: map[string][]byte{"k": []byte("v")}, Type: corev1.SecretTypeOpaque},
			&partnersv1.LoginLink{ObjectMeta: notLease("ll", i), Status: partnersv1.LoginLinkStatus{
				Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "R"}}}},
			&partnersv1.PartnerAccount{ObjectMeta: notLease("pa", i)},
		}
	}
	var published []client.Object
	for i := 0; i < 20; i++ {
		for _, o := range objects(i) {
			_, _ = tf(o)
			_, _ = tf(o)
			published = append(published, o)
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() { // a handler reading published objects while other informers transform
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, o := range published {
				for k, v := range o.GetLabels() {
					_, _ = k, v
				}
				for k, v := range o.GetAnnotations() {
					_, _ = k, v
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 100 * (w + 1); i < 100*(w+1)+20; i++ {
				for _, o := range objects(i) {
					_, _ = tf(o)
					first := o.DeepCopyObject()
					labels := reflect.ValueOf(o.GetLabels()).Pointer()
					_, _ = tf(o)
					if !reflect.DeepEqual(first, o) {
						t.Errorf("%T: second pass changed it:\n%#v\n%#v", o, first, o)
					}
					if reflect.ValueOf(o.GetLabels()).Pointer() != labels {
						t.Errorf("%T: second pass changed its label map", o)
					}
					if _, ok := o.GetLabels()[election.LabelAccountID]; ok {
						t.Errorf("%T keeps the account-id label", o)
					}
					if !maps.Equal(o.GetLabels(), map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}) {
						t.Errorf("%T labels %v", o, o.GetLabels())
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	readers.Wait()
}

// noCopyReader adds UnsafeDisableDeepCopy and keeps the caller's options (and their slice).
type optsReader struct {
	client.Reader
	got client.ListOptions
}

func (r *optsReader) List(_ context.Context, _ client.ObjectList, opts ...client.ListOption) error {
	r.got.ApplyOptions(opts)
	return nil
}

func TestReviewNoCopyReaderAddsUnsafe(t *testing.T) {
	inner := &optsReader{}
	opts := make([]client.ListOption, 1, 4)
	opts[0] = client.InNamespace("n")
	var l partnersv1.LoginLinkList
	if err := (noCopyReader{inner}).List(context.Background(), &l, opts...); err != nil {
		t.Fatal(err)
	}
	if inner.got.UnsafeDisableDeepCopy == nil || !*inner.got.UnsafeDisableDeepCopy || inner.got.Namespace != "n" {
		t.Fatalf("options %+v", inner.got)
	}
}

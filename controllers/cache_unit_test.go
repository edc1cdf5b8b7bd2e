package controllers_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"unsafe"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/election"
)

func TestUnitCacheTransformTrims(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "a", Namespace: "n",
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{}}`,
				partnersv1.AnnotationPaused: "true"}}
	}
	tf := controllers.CacheTransform()
	for _, obj := range []interface {
		GetManagedFields() []metav1.ManagedFieldsEntry
		GetAnnotations() map[string]string
	}{&partnersv1.PartnerAccount{ObjectMeta: meta()}, &partnersv1.LoginLink{ObjectMeta: meta()}, &partnersv1.ClusterPartnerConfig{ObjectMeta: meta()}} {
		out, err := tf(obj)
		if err != nil || out != obj {
			t.Fatalf("transform of %T = %v, %v", obj, out, err)
		}
		if obj.GetManagedFields() != nil {
			t.Errorf("%T keeps its managedFields", obj)
		}
		if _, ok := obj.GetAnnotations()["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			t.Errorf("%T keeps last-applied-configuration", obj)
		}
		if obj.GetAnnotations()[partnersv1.AnnotationPaused] != "true" {
			t.Errorf("%T lost another annotation", obj)
		}
	}
	// A Secret is updated whole: only its managedFields go.
	s := &corev1.Secret{ObjectMeta: meta()}
	if _, err := tf(s); err != nil {
		t.Fatal(err)
	}
	if s.ManagedFields != nil || s.Annotations["kubectl.kubernetes.io/last-applied-configuration"] == "" {
		t.Errorf("Secret trimmed to %+v", s.ObjectMeta)
	}
	// A tombstone passes through.
	if out, err := tf("not an object"); err != nil || out != "not an object" {
		t.Errorf("tombstone: %v, %v", out, err)
	}
}

// Objects decoded one by one (as the informers do) share the strings the transform interns,
// and keep every value.
func TestUnitCacheTransformInterns(t *testing.T) {
	const doc = `{"apiVersion":"partners.fifteenth.com/v1alpha1","kind":"LoginLink","metadata":{"name":"%s","namespace":"team-a",
"labels":{"app.kubernetes.io/managed-by":"fifteenth-operator"},"annotations":{"partners.fifteenth.com/paused":"true"},
"finalizers":["partners.fifteenth.com/finalizer"],"ownerReferences":[{"apiVersion":"partners.fifteenth.com/v1alpha1","kind":"PartnerAccount","name":"p","uid":"u"}]},
"status":{"conditions":[{"type":"Ready","status":"True","reason":"Generated","message":"m %s","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`
	tf := controllers.CacheTransform()
	decode := func(name string) *partnersv1.LoginLink {
		ll := &partnersv1.LoginLink{}
		if err := json.Unmarshal(fmt.Appendf(nil, doc, name, name), ll); err != nil {
			t.Fatal(err)
		}
		if _, err := tf(ll); err != nil {
			t.Fatal(err)
		}
		return ll
	}
	a, b := decode("a"), decode("b")
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are two copies", what, x, y)
		}
	}
	keyOf := func(m map[string]string) string {
		for k := range m {
			return k
		}
		return ""
	}
	same("namespace", a.Namespace, b.Namespace)
	same("apiVersion", a.APIVersion, b.APIVersion)
	same("label key", keyOf(a.Labels), keyOf(b.Labels))
	same("label value", a.Labels["app.kubernetes.io/managed-by"], b.Labels["app.kubernetes.io/managed-by"])
	same("annotation key", keyOf(a.Annotations), keyOf(b.Annotations))
	same("finalizer", a.Finalizers[0], b.Finalizers[0])
	same("owner kind", a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind)
	same("condition reason", a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason)
	if a.Name != "a" || a.Status.Conditions[0].Message != "m a" || a.Annotations[partnersv1.AnnotationPaused] != "true" ||
		a.Status.Conditions[0].Status != metav1.ConditionTrue || a.OwnerReferences[0].UID != "u" {
		t.Errorf("interning changed the object: %+v", a)
	}
}

// Objects with the same labels share one map of them (a map costs about 340 bytes however few
// its entries), across kinds; a Lease's account-id label is not kept (its user annotation says
// the account), and nothing else changes.
func TestUnitCacheTransformSharesLabelSets(t *testing.T) {
	tf := controllers.CacheTransform()
	managed := func() map[string]string {
		return map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}
	}
	secret := func(name string, labels map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "n", Labels: labels}}
		if _, err := tf(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	ptrOf := func(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }
	a, b := secret("a", managed()), secret("b", managed())
	templated := func() map[string]string {
		l := managed()
		l["app"] = "payroll"
		return l
	}
	c, d := secret("c", templated()), secret("d", templated())
	if ptrOf(a.Labels) != ptrOf(b.Labels) || ptrOf(c.Labels) != ptrOf(d.Labels) {
		t.Error("two Secrets with the same labels hold two maps")
	}
	if ptrOf(a.Labels) == ptrOf(c.Labels) || len(c.Labels) != 2 || c.Labels["app"] != "payroll" || !maps.Equal(a.Labels, managed()) {
		t.Errorf("labels changed: %v, %v", a.Labels, c.Labels)
	}

	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "n",
		Labels:      map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue, election.LabelAccountID: "42"},
		Annotations: map[string]string{election.AnnotationUser: "42/a@example.com"}}}
	if _, err := tf(lease); err != nil {
		t.Fatal(err)
	}
	if ptrOf(lease.Labels) != ptrOf(a.Labels) || lease.Annotations[election.AnnotationUser] != "42/a@example.com" {
		t.Errorf("cached Lease: labels %v (shared: %v), annotations %v", lease.Labels, ptrOf(lease.Labels) == ptrOf(a.Labels), lease.Annotations)
	}
	// A DeepCopy (what a read returns) has its own map.
	cp := a.DeepCopy()
	cp.Labels["x"] = "y"
	if _, ok := b.Labels["x"]; ok {
		t.Error("a copy's label reached the shared map")
	}
}

// client-go's watch-list transforms an object twice (in its temporary store, then in its
// queue), while other informers transform theirs, also twice: a second pass writes no map that
// other objects share by then (a data race under -race, and a corrupt cache), and leaves the
// object as the first pass did.
func TestUnitCacheTransformTwiceWritesNoSharedMap(t *testing.T) {
	tf := controllers.CacheTransform()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "n", UID: "l",
		Labels:      map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue, election.LabelAccountID: "42"},
		Annotations: map[string]string{election.AnnotationUser: "42/a@example.com"}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", UID: "s",
		Labels: map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}}}
	for _, o := range []any{lease, secret} { // first passes: both hold the shared map
		if _, err := tf(o); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, o := range []any{lease, secret} { // second passes, in two informers at once
		wg.Go(func() {
			if _, err := tf(o); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if !maps.Equal(lease.Labels, map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}) ||
		reflect.ValueOf(lease.Labels).Pointer() != reflect.ValueOf(secret.Labels).Pointer() {
		t.Fatalf("after two passes: labels %v, shared with the Secret: %v", lease.Labels,
			reflect.ValueOf(lease.Labels).Pointer() == reflect.ValueOf(secret.Labels).Pointer())
	}
}

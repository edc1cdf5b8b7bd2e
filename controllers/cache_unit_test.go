package controllers_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
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

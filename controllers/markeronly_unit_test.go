package controllers

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// markerOnly tells an update that changed nothing but the generation marker (and the
// resourceVersion) from any other, and leaves the cache's objects as they are.
func TestUnitMarkerOnly(t *testing.T) {
	base := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", ResourceVersion: "1",
			Annotations: map[string]string{annChecksum: "c"}}, Data: map[string][]byte{"login_link": []byte("x")}}
	}
	marked := func() *corev1.Secret {
		s := base()
		s.ResourceVersion = "2"
		s.Annotations[annGenerating] = "t"
		return s
	}
	tests := []struct {
		name     string
		old, new func() *corev1.Secret
		want     bool
	}{
		{"the marker comes", base, marked, true},
		{"the marker goes", marked, base, true},
		{"the data changes with it", base, func() *corev1.Secret { s := marked(); s.Data["login_link"] = []byte("y"); return s }, false},
		{"another annotation changes", base, func() *corev1.Secret {
			s := base()
			s.ResourceVersion = "2"
			s.Annotations[annChecksum] = "d"
			return s
		}, false},
		{"a label comes", base, func() *corev1.Secret { s := marked(); s.Labels = map[string]string{"a": "b"}; return s }, false},
		{"no annotations, then only the marker", func() *corev1.Secret { s := base(); s.Annotations = nil; return s },
			func() *corev1.Secret { s := base(); s.Annotations = map[string]string{annGenerating: "t"}; return s }, true},
	}
	for _, tt := range tests {
		o, n := tt.old(), tt.new()
		oa, na := maps.Clone(o.Annotations), maps.Clone(n.Annotations)
		if got := markerOnly(event.UpdateEvent{ObjectOld: o, ObjectNew: n}); got != tt.want {
			t.Errorf("%s: markerOnly = %v, want %v", tt.name, got, tt.want)
		}
		if !maps.Equal(o.Annotations, oa) || !maps.Equal(n.Annotations, na) || o.ResourceVersion != tt.old().ResourceVersion {
			t.Errorf("%s: markerOnly changed the objects", tt.name)
		}
	}
}

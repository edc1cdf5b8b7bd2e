package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

func TestPropagateRenewRequest(t *testing.T) {
	const k = partnersv1.AnnotationRenewRequestedAt
	for _, tt := range []struct {
		name, pa, ll, want string
	}{
		{"no request", "", "", ""},
		{"first request", "2026-12-01T10:00:00Z", "", "2026-12-01T10:00:00Z"},
		{"later request", "2026-12-01T10:00:01Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z"},
		{"nanoseconds", "2026-12-01T10:00:00.5Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.5Z"},
		{"older request", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"},
		{"same request", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"},
		{"malformed request", "now", "", ""},
		{"malformed own value", "2026-12-01T10:00:00Z", "yesterday", "2026-12-01T10:00:00Z"},
		{"own value in the future", "2026-12-01T10:00:00Z", "2099-01-01T00:00:00Z", "2026-12-01T10:00:00Z"},
		{"request from the future", "2099-01-01T00:00:00Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"},
		{"request a little ahead", "2026-12-01T10:03:00Z", "2026-12-01T10:00:00Z", "2026-12-01T10:03:00Z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pa := &partnersv1.PartnerAccount{}
			if tt.pa != "" {
				pa.Annotations = map[string]string{k: tt.pa}
			}
			ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{}}
			if tt.ll != "" {
				ll.Annotations = map[string]string{k: tt.ll}
			}
			propagateRenewRequest(pa, ll, time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC))
			if got := ll.Annotations[k]; got != tt.want {
				t.Fatalf("LoginLink's request = %q, want %q", got, tt.want)
			}
		})
	}
}

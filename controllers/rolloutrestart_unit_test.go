package controllers

import (
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// restartNeeded decides from the target alone whether it must be restarted for a link: the
// annotation only moves forward, and a target created after the link already read it.
func TestRestartNeeded(t *testing.T) {
	gen := time.Date(2026, 12, 1, 10, 0, 0, 500_000_000, time.UTC)
	before := gen.Add(-time.Hour).Truncate(time.Second)
	for _, tt := range []struct {
		name       string
		annotation string
		created    time.Time
		want       bool
	}{
		{"no annotation, target older than the link", "", before, true},
		{"no annotation, created in the link's second", "", gen.Truncate(time.Second), true},
		{"no annotation, created after the link", "", gen.Add(time.Second).Truncate(time.Second), false},
		{"an older link's time", gen.Add(-time.Hour).Format(time.RFC3339Nano), before, true},
		{"a slightly older link's time", gen.Add(-time.Millisecond).Format(time.RFC3339Nano), before, true},
		{"this link's time", gen.Format(time.RFC3339Nano), before, false},
		{"a newer link's time (another LoginLink)", gen.Add(time.Millisecond).Format(time.RFC3339Nano), before, false},
		{"a far future time", "2099-01-01T00:00:00Z", before, false},
		{"seconds precision, older", "2026-12-01T09:59:59Z", before, true},
		{"unparseable, target older", "yesterday", before, true},
		{"unparseable, target newer", "yesterday", gen.Add(time.Minute), false},
	} {
		if got := restartNeeded(tt.annotation, tt.created, gen); got != tt.want {
			t.Errorf("%s: restartNeeded(%q) = %v, want %v", tt.name, tt.annotation, got, tt.want)
		}
	}
}

// Failures map to the condition's reasons and the metric's results.
func TestRestartFailureReason(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tt := range []struct {
		err            error
		reason, result string
	}{
		{apierrors.NewNotFound(gr, "web"), partnersv1.ReasonTargetNotFound, "not_found"},
		{apierrors.NewForbidden(gr, "web", errors.New("no")), partnersv1.ReasonForbidden, "forbidden"},
		{apierrors.NewInternalError(errors.New("etcd")), partnersv1.ReasonPatchFailed, "failed"},
		{errors.New("timeout"), partnersv1.ReasonPatchFailed, "failed"},
	} {
		reason, result := restartFailure(tt.err)
		if reason != tt.reason || result != tt.result {
			t.Errorf("%v: got %s/%s, want %s/%s", tt.err, reason, result, tt.reason, tt.result)
		}
	}
}

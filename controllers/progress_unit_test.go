package controllers

import (
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// wantKstatus is the kstatus of a LoginLink or PartnerAccount whose Ready condition has each
// reason (with Ready=True for the success reasons): every reason of api/v1alpha1 is decided
// here, so that a new reason is classified on purpose.
var wantKstatus = map[string]status.Status{
	// Ready=True.
	partnersv1.ReasonGenerated: status.CurrentStatus, partnersv1.ReasonRenewed: status.CurrentStatus,
	partnersv1.ReasonLinkValid: status.CurrentStatus, partnersv1.ReasonCreated: status.CurrentStatus,
	partnersv1.ReasonAdopted: status.CurrentStatus, partnersv1.ReasonAccountReady: status.CurrentStatus,
	partnersv1.ReasonValid: status.CurrentStatus,
	// Work in progress: Reconciling=True.
	partnersv1.ReasonAccountNotReady: status.InProgressStatus, partnersv1.ReasonRateLimited: status.InProgressStatus,
	partnersv1.ReasonAPIUnavailable: status.InProgressStatus, partnersv1.ReasonLinksNotReady: status.InProgressStatus,
	partnersv1.ReasonAccountUnverified: status.InProgressStatus, partnersv1.ReasonPartnerConfigNotReady: status.InProgressStatus,
	partnersv1.ReasonSecretNotFound: status.InProgressStatus,
	// Terminal: Stalled=True.
	partnersv1.ReasonAccountNotFound: status.FailedStatus, partnersv1.ReasonUserNotFound: status.FailedStatus,
	partnersv1.ReasonInvalidRedirectURL: status.FailedStatus, partnersv1.ReasonInvalidRequest: status.FailedStatus,
	partnersv1.ReasonUnauthorized: status.FailedStatus, partnersv1.ReasonExpired: status.FailedStatus,
	partnersv1.ReasonSecretConflict: status.FailedStatus, partnersv1.ReasonValidationFailed: status.FailedStatus,
	partnersv1.ReasonAccountMismatch: status.FailedStatus, partnersv1.ReasonAccountClaimed: status.FailedStatus,
	partnersv1.ReasonLoginLinkConflict: status.FailedStatus, partnersv1.ReasonAccountNotPermitted: status.FailedStatus,
	partnersv1.ReasonAccountExists: status.FailedStatus, partnersv1.ReasonKeyInvalid: status.FailedStatus,
	partnersv1.ReasonAPIURLNotAllowed: status.FailedStatus, partnersv1.ReasonPartnerConfigNotPermitted: status.FailedStatus,
	// Expected states, neither: kstatus falls back to Ready=False, which it reads as InProgress.
	partnersv1.ReasonSuperseded: status.InProgressStatus, partnersv1.ReasonAccountSuspended: status.InProgressStatus,
	partnersv1.ReasonPaused: status.InProgressStatus, partnersv1.ReasonStandby: status.InProgressStatus,
}

// Every Ready reason maps to Reconciling, Stalled or neither, and kstatus computes the status
// that mapping promises from the conditions the controllers write.
func TestProgressConditionsKstatus(t *testing.T) {
	reasons := apiReadyReasons(t)
	if len(reasons) < 20 {
		t.Fatalf("found only %d Reason constants in api/v1alpha1/common.go", len(reasons))
	}
	for _, r := range reasons {
		want, ok := wantKstatus[r]
		if !ok {
			t.Errorf("reason %s has no decided kstatus: add it to wantKstatus and to readyProgress", r)
			continue
		}
		if _, ok := readyProgress[r]; !ok {
			t.Errorf("reason %s is not classified in readyProgress", r)
		}
		ready := want == status.CurrentStatus
		var conds []metav1.Condition
		var observed int64
		setReadyCondition(&conds, &observed, 3, ready, r, "m")
		setProgressConditions(&conds, 3, ready, r, "m")
		got := computeKstatus(t, conds, 3, observed)
		if got != want {
			t.Errorf("Ready=%v %s: kstatus %s, want %s (conditions %+v)", ready, r, got, want, conds)
		}
		reconciling := meta.IsStatusConditionTrue(conds, partnersv1.ConditionReconciling)
		stalled := meta.IsStatusConditionTrue(conds, partnersv1.ConditionStalled)
		if reconciling != (readyProgress[r] == progressReconciling) || stalled != (readyProgress[r] == progressStalled) {
			t.Errorf("%s: Reconciling=%v Stalled=%v, want %v", r, reconciling, stalled, readyProgress[r])
		}
		if ready && (reconciling || stalled) {
			t.Errorf("%s: Ready=True with an abnormal-true condition", r)
		}
		// The same pass again changes nothing: no extra status write in steady state.
		before := append([]metav1.Condition(nil), conds...)
		setReadyCondition(&conds, &observed, 3, ready, r, "m")
		setProgressConditions(&conds, 3, ready, r, "m")
		if !apiequality.Semantic.DeepEqual(before, conds) {
			t.Errorf("%s: a second identical pass changed the conditions", r)
		}
	}
}

// Ready replaces a failure: Reconciling and Stalled go, and an older observedGeneration is
// InProgress whatever the conditions say.
func TestProgressConditionsTransitions(t *testing.T) {
	var conds []metav1.Condition
	var observed int64
	setReadyCondition(&conds, &observed, 1, false, partnersv1.ReasonUserNotFound, "no such user")
	setProgressConditions(&conds, 1, false, partnersv1.ReasonUserNotFound, "no such user")
	if c := meta.FindStatusCondition(conds, partnersv1.ConditionStalled); c == nil || c.Reason != partnersv1.ReasonUserNotFound ||
		c.Message != "no such user" || c.ObservedGeneration != 1 {
		t.Fatalf("Stalled = %+v", c)
	}
	if got := computeKstatus(t, conds, 2, observed); got != status.InProgressStatus {
		t.Fatalf("a new generation not observed yet: kstatus %s, want InProgress", got)
	}
	setReadyCondition(&conds, &observed, 2, false, partnersv1.ReasonRateLimited, "next try at 11:30")
	setProgressConditions(&conds, 2, false, partnersv1.ReasonRateLimited, "next try at 11:30")
	if meta.FindStatusCondition(conds, partnersv1.ConditionStalled) != nil || !meta.IsStatusConditionTrue(conds, partnersv1.ConditionReconciling) {
		t.Fatalf("rate limited: %+v", conds)
	}
	setReadyCondition(&conds, &observed, 2, true, partnersv1.ReasonGenerated, "generated")
	setProgressConditions(&conds, 2, true, partnersv1.ReasonGenerated, "generated")
	if len(conds) != 1 || conds[0].Type != partnersv1.ConditionReady {
		t.Fatalf("ready: %+v, want Ready alone", conds)
	}
	if got := computeKstatus(t, conds, 2, observed); got != status.CurrentStatus {
		t.Fatalf("ready: kstatus %s, want Current", got)
	}
}

func computeKstatus(t *testing.T, conds []metav1.Condition, generation, observed int64) status.Status {
	t.Helper()
	ll := &partnersv1.LoginLink{TypeMeta: metav1.TypeMeta{APIVersion: partnersv1.GroupVersion.String(), Kind: "LoginLink"},
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "y", Generation: generation},
		Status:     partnersv1.LoginLinkStatus{Conditions: conds, ObservedGeneration: observed}}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ll)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// apiReadyReasons returns the values of the Ready reasons of api/v1alpha1/common.go.
func apiReadyReasons(t *testing.T) []string {
	t.Helper()
	reasons, err := testenv.ReadyReasons()
	if err != nil {
		t.Fatal(err)
	}
	return reasons
}

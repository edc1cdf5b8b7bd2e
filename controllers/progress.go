package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// progress is what a Ready reason says about the work left, in the terms of kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux's health checks use.
type progress int

const (
	// progressNone: Ready=True, or an expected state that no fix is awaited for (Superseded,
	// AccountSuspended, Paused, Standby). kstatus then reads Ready itself: False is InProgress.
	progressNone progress = iota
	// progressReconciling: the operator works towards Ready and retries on its own
	// (Reconciling=True, kstatus InProgress).
	progressReconciling
	// progressStalled: no retry fixes it; a person must change the spec or another object
	// (Stalled=True, kstatus Failed, so that Flux fails at once rather than at its timeout).
	progressStalled
)

// readyProgress classifies every Ready reason (TestProgressConditionsKstatus checks that each
// Reason constant is here). Waiting for an object that GitOps applies in the same batch (the
// PartnerAccount, the config, its Secret) is Reconciling, not Stalled: Flux fails fast on a
// Stalled object, and these converge on their own within seconds of an apply.
var readyProgress = map[string]progress{
	partnersv1.ReasonGenerated:    progressNone,
	partnersv1.ReasonRenewed:      progressNone,
	partnersv1.ReasonLinkValid:    progressNone,
	partnersv1.ReasonCreated:      progressNone,
	partnersv1.ReasonAdopted:      progressNone,
	partnersv1.ReasonAccountReady: progressNone,
	partnersv1.ReasonValid:        progressNone,

	partnersv1.ReasonSuperseded:       progressNone,
	partnersv1.ReasonAccountSuspended: progressNone,
	partnersv1.ReasonPaused:           progressNone,
	partnersv1.ReasonStandby:          progressNone,

	partnersv1.ReasonAccountNotReady:       progressReconciling,
	partnersv1.ReasonRateLimited:           progressReconciling,
	partnersv1.ReasonAPIUnavailable:        progressReconciling,
	partnersv1.ReasonLinksNotReady:         progressReconciling,
	partnersv1.ReasonAccountUnverified:     progressReconciling,
	partnersv1.ReasonPartnerConfigNotReady: progressReconciling,
	partnersv1.ReasonSecretNotFound:        progressReconciling,

	partnersv1.ReasonAccountNotFound:           progressStalled,
	partnersv1.ReasonUserNotFound:              progressStalled,
	partnersv1.ReasonInvalidRedirectURL:        progressStalled,
	partnersv1.ReasonInvalidRequest:            progressStalled,
	partnersv1.ReasonUnauthorized:              progressStalled,
	partnersv1.ReasonExpired:                   progressStalled,
	partnersv1.ReasonSecretConflict:            progressStalled,
	partnersv1.ReasonValidationFailed:          progressStalled,
	partnersv1.ReasonAccountMismatch:           progressStalled,
	partnersv1.ReasonAccountClaimed:            progressStalled,
	partnersv1.ReasonLoginLinkConflict:         progressStalled,
	partnersv1.ReasonAccountNotPermitted:       progressStalled,
	partnersv1.ReasonAccountExists:             progressStalled,
	partnersv1.ReasonKeyInvalid:                progressStalled,
	partnersv1.ReasonAPIURLNotAllowed:          progressStalled,
	partnersv1.ReasonPartnerConfigNotPermitted: progressStalled,
}

// progressOf classifies a Ready condition. An unknown reason of Ready=False is Reconciling: a
// Flux health check then waits rather than fails.
func progressOf(ready bool, reason string) progress {
	if ready {
		return progressNone
	}
	p, ok := readyProgress[reason]
	if !ok {
		return progressReconciling
	}
	return p
}

// setProgressConditions derives Reconciling and Stalled from Ready: the one that applies is
// True with Ready's reason and message, the other is removed (kstatus: abnormal-true
// conditions are absent when they do not apply). Like meta.SetStatusCondition, it changes
// nothing when nothing changed, so a steady state writes no status.
func setProgressConditions(conds *[]metav1.Condition, generation int64, ready bool, reason, msg string) {
	set := func(typ string, on bool) {
		if !on {
			meta.RemoveStatusCondition(conds, typ)
			return
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: metav1.ConditionTrue,
			Reason: reason, Message: msg, ObservedGeneration: generation})
	}
	p := progressOf(ready, reason)
	set(partnersv1.ConditionReconciling, p == progressReconciling)
	set(partnersv1.ConditionStalled, p == progressStalled)
}

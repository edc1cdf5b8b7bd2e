package cli_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// renew on a paused or standby LoginLink says it generates nothing now; status shows a
// RolloutRestarted=False condition with its hint, and a Paused LoginLink's hint.
func TestReview2RenewPausedAndRestartHints(t *testing.T) {
	w := newWorld(t, "review2")
	st := func(reason string, extra ...metav1.Condition) partnersv1.LoginLinkStatus {
		conds := ready(reason == partnersv1.ReasonLinkValid, reason, "m")
		return partnersv1.LoginLinkStatus{AccountID: 7, UserEmail: "u@example.com", SecretName: "s", GeneratedAt: w.at(-2 * time.Hour),
			ExpiresAt: w.at(100 * time.Hour), ObservedGeneration: 1, Conditions: append(conds, extra...)}
	}
	spec := partnersv1.LoginLinkSpec{AccountID: ptr.To[int64](7), UserEmail: "u@example.com"}
	w.link("paused", nil, nil, spec, st(partnersv1.ReasonPaused))
	w.link("standby", nil, nil, spec, st(partnersv1.ReasonStandby))
	w.link("restarts", nil, nil, spec, st(partnersv1.ReasonLinkValid, metav1.Condition{Type: partnersv1.ConditionRolloutRestarted,
		Status: metav1.ConditionFalse, Reason: partnersv1.ReasonTargetNotFound, Message: "Deployment web not found",
		ObservedGeneration: 1, LastTransitionTime: metav1.Now()}))

	out, _, err := w.run("renew", "paused", "standby", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(out).To(MatchRegexp(`paused\s.*paused: nothing is generated until`))
	w.g.Expect(out).To(MatchRegexp(`standby\s.*standby \(--read-only manager\)`))

	out, _, err = w.run("status", "ll", "paused", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(out).To(ContainSubstring("remove the annotation " + partnersv1.AnnotationPaused))

	out, _, err = w.run("status", "ll", "restarts", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(out).To(MatchRegexp(`Restarts:\s+False, TargetNotFound: Deployment web not found`))
	w.g.Expect(out).To(ContainSubstring("create the workload"))
}

package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// kstatus of objects driven by the real reconcilers in the states parts 1-3 add: a Ready
// LoginLink whose restart target is missing (RolloutRestarted=False) stays Current; Paused
// computes what docs/reference.md says (InProgress); a spec change not yet observed is
// InProgress; a steady state writes no status across several sync periods.
func TestReview2KstatusStatesAndSteadyState(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: 300 * time.Millisecond})
	g := h.g
	id := h.createAccount("kstatus@example.com")
	h.create(linkFor("app", id, func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "missing"}}
	}))
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Eventually(func() *metav1.Condition { return restartedCondition(h.loginLink("app")) }).ShouldNot(BeNil())
	ll := h.loginLink("app")
	g.Expect(restartedCondition(ll).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(h.kstatus("LoginLink", "app").Status).To(Equal(status.CurrentStatus), "%+v", ll.Status.Conditions)

	// Steady state: several sync periods pass; no status write, no new call.
	calls := h.apiCalls()
	rv := h.loginLink("app").ResourceVersion
	g.Consistently(func() string { return h.loginLink("app").ResourceVersion }).WithTimeout(3*time.Second).Should(Equal(rv),
		"a Ready LoginLink with RolloutRestarted=False rewrites its status on resyncs")
	g.Expect(h.apiCalls()).To(Equal(calls))

	// A PartnerAccount with a spouse and a missing target: steady too.
	h.create(account("pa", "pa@example.com", withSpouse("spouse@example.com"), func(s *partnersv1.PartnerAccountSpec) {
		s.LoginLink = &partnersv1.AccountLoginLinkSpec{RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "StatefulSet", Name: "nope"}}}
	}))
	h.expectAccountReason("pa", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectLinkReason("pa-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	h.expectLinkReason("pa-spouse", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	g.Eventually(func() status.Status { return h.kstatus("PartnerAccount", "pa").Status }).Should(Equal(status.CurrentStatus))
	time.Sleep(time.Second)
	// (the PartnerAccount writes status.lastSyncTime at each account sync, by design)
	rvs := map[string]string{"pa": h.partnerAccount("pa").Status.Conditions[0].LastTransitionTime.String(), "pa-holder": h.loginLink("pa-holder").ResourceVersion,
		"pa-spouse": h.loginLink("pa-spouse").ResourceVersion}
	g.Consistently(func() map[string]string {
		return map[string]string{"pa": h.partnerAccount("pa").Status.Conditions[0].LastTransitionTime.String(), "pa-holder": h.loginLink("pa-holder").ResourceVersion,
			"pa-spouse": h.loginLink("pa-spouse").ResourceVersion}
	}).WithTimeout(3*time.Second).Should(Equal(rvs), "steady PartnerAccount and LoginLinks")

	// Spec change not yet observed: stop the manager, change the spec: InProgress.
	h.stopManager()
	cur := h.loginLink("app")
	cur.Spec.ExpiryHours = ptr.To[int32](48)
	g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	g.Expect(h.kstatus("LoginLink", "app").Status).To(Equal(status.InProgressStatus))
	h.startManager(300 * time.Millisecond)
	g.Eventually(func() status.Status { return h.kstatus("LoginLink", "app").Status }).Should(Equal(status.CurrentStatus))

	// Paused: reference.md says InProgress (kstatus falls back on Ready=False).
	h.setPaused(h.loginLink("app"), true)
	ll = h.expectLinkReason("app", metav1.ConditionFalse, partnersv1.ReasonPaused)
	g.Expect(apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReconciling)).To(BeNil())
	g.Expect(apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionStalled)).To(BeNil())
	g.Expect(h.kstatus("LoginLink", "app").Status).To(Equal(status.InProgressStatus))
	rv = h.loginLink("app").ResourceVersion
	g.Consistently(func() string { return h.loginLink("app").ResourceVersion }).WithTimeout(2*time.Second).Should(Equal(rv), "paused: no status writes")

	h.setPaused(h.partnerAccount("pa"), true)
	h.expectAccountReason("pa", metav1.ConditionFalse, partnersv1.ReasonPaused)
	h.expectLinkReason("pa-holder", metav1.ConditionFalse, partnersv1.ReasonPaused)
	g.Expect(h.kstatus("PartnerAccount", "pa").Status).To(Equal(status.InProgressStatus))
	g.Expect(h.kstatus("LoginLink", "pa-holder").Status).To(Equal(status.InProgressStatus))
}

// Pausing one LoginLink of a PartnerAccount (its own annotation, not the PartnerAccount's) is
// intended: the LoginLink reports Paused with no alert, and so should its PartnerAccount not
// turn to an alerting not-Ready (fifteenth_partner_account_ready 0, Argo CD Degraded via LinksNotReady).
func TestReview2PausedLoginLinkOfPartnerAccountNoAlert(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("p", "p@example.com"))
	h.expectAccountReason("p", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectLinkReason("p-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	h.setPaused(h.loginLink("p-holder"), true)
	h.expectLinkReason("p-holder", metav1.ConditionFalse, partnersv1.ReasonPaused)
	time.Sleep(2 * time.Second)
	pa := h.partnerAccount("p")
	s, r := readyOf(pa.Status.Conditions)
	v, ok := gauge("fifteenth_partner_account_ready", h.ns, "p")
	t.Logf("PartnerAccount Ready %s %s (%s); fifteenth_partner_account_ready %v %v; kstatus %s", s, r, readyMessage(pa.Status.Conditions), v, ok,
		h.kstatus("PartnerAccount", "p").Status)
	g.Expect(ok && v == 0).To(BeFalse(), "a paused LoginLink makes its PartnerAccount alert: Ready %s %s", s, r)
}

package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// kstatus computes the status Flux's health checks would from the object as the API server
// stores it.
func (h *harness) kstatus(kind, name string) *status.Result {
	h.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(partnersv1.GroupVersion.WithKind(kind))
	h.g.Expect(k8s.Get(ctx, h.key(name), u)).To(Succeed())
	res, err := status.Compute(u)
	h.g.Expect(err).NotTo(HaveOccurred())
	return res
}

// Flux and kstatus: a Ready object is Current, a terminal failure Failed (Stalled=True), an
// object being worked on InProgress (Reconciling=True); the conditions follow Ready.
func TestKstatus(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g

	// Being worked on: the LoginLink waits for its PartnerAccount.
	h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "waiting"},
		Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: "later"},
			UserEmail: "accountant@example.com", Purpose: "additional_user"}})
	ll := h.expectLinkReason("waiting", metav1.ConditionFalse, partnersv1.ReasonAccountNotReady)
	g.Expect(apimeta.IsStatusConditionTrue(ll.Status.Conditions, partnersv1.ConditionReconciling)).To(BeTrue(), "%+v", ll.Status.Conditions)
	g.Expect(apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionStalled)).To(BeNil())
	g.Expect(h.kstatus("LoginLink", "waiting").Status).To(Equal(status.InProgressStatus))

	// Ready: the PartnerAccount and its holder's LoginLink are Current.
	h.create(account("ready", "ready@example.com"))
	pa := h.expectAccountReason("ready", metav1.ConditionTrue, partnersv1.ReasonCreated)
	g.Expect(pa.Status.Conditions).To(HaveLen(1), "Ready alone: %+v", pa.Status.Conditions)
	g.Eventually(func() status.Status { return h.kstatus("PartnerAccount", "ready").Status }).Should(Equal(status.CurrentStatus))
	holder := &partnersv1.LoginLink{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, h.key("ready-holder"), holder)).To(Succeed())
		s, _ := readyOf(holder.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue))
	}).Should(Succeed())
	g.Expect(holder.Status.Conditions).To(HaveLen(1), "Ready alone: %+v", holder.Status.Conditions)
	g.Expect(h.kstatus("LoginLink", "ready-holder").Status).To(Equal(status.CurrentStatus))

	// Terminal: a user the account does not have.
	h.create(linkFor("no-user", pa.Status.AccountID, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "nobody@example.com" }))
	ll = h.expectLinkReason("no-user", metav1.ConditionFalse, partnersv1.ReasonUserNotFound)
	stalled := apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionStalled)
	g.Expect(stalled).NotTo(BeNil(), "%+v", ll.Status.Conditions)
	g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(stalled.Reason).To(Equal(partnersv1.ReasonUserNotFound))
	g.Expect(stalled.ObservedGeneration).To(Equal(ll.Generation))
	g.Expect(apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReconciling)).To(BeNil())
	res := h.kstatus("LoginLink", "no-user")
	g.Expect(res.Status).To(Equal(status.FailedStatus))
	g.Expect(res.Message).To(Equal(stalled.Message))

	// The waiting LoginLink's account appears: it leaves Reconciling for a terminal
	// UserNotFound (the accountant is not a user of the new account).
	h.create(account("later", "later@example.com"))
	ll = h.expectLinkReason("waiting", metav1.ConditionFalse, partnersv1.ReasonUserNotFound)
	g.Expect(apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReconciling)).To(BeNil())
	g.Expect(h.kstatus("LoginLink", "waiting").Status).To(Equal(status.FailedStatus))
}

package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// renewed waits for the couple's two Secrets to hold new links and returns them.
func (h *harness) coupleLinks(pa string) map[string]string {
	out := map[string]string{}
	for _, s := range []string{pa + "-login-link", pa + "-spouse-login-link"} {
		h.g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(BeEmpty(), s)
		out[s] = h.secretLink(s)
	}
	return out
}

// A malformed request on a PartnerAccount: nothing is copied, called or looped on. A paused
// PartnerAccount's request: nothing while paused, one generation per user on unpause.
func TestReview2PartnerAccountRenewMalformedAndPaused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("r", "john@r.example", withSpouse("jane@r.example")))
	pa := h.expectAccountReason("r", metav1.ConditionTrue, partnersv1.ReasonCreated)
	links := h.coupleLinks("r")

	passes, llPasses := reconciles("partneraccount"), reconciles("loginlink")
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, "yesterday")
	g.Eventually(func() float64 { return reconciles("partneraccount") }).Should(BeNumerically(">", passes))
	g.Consistently(func() string { return h.loginLink("r-holder").Annotations[partnersv1.AnnotationRenewRequestedAt] }).Should(BeEmpty())
	g.Expect(total(h.linkCalls())).To(Equal(0))
	g.Expect(reconciles("partneraccount")-passes).To(BeNumerically("<", 10), "no hot loop")
	g.Expect(reconciles("loginlink")-llPasses).To(BeNumerically("<", 10), "no hot loop")

	// Paused, then a request: nothing; unpaused: exactly one generation per user.
	h.setPaused(h.partnerAccount("r"), true)
	h.expectLinkReason("r-holder", metav1.ConditionFalse, partnersv1.ReasonPaused)
	h.expectLinkReason("r-spouse", metav1.ConditionFalse, partnersv1.ReasonPaused)
	h.annotate(h.partnerAccount("r"), partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339Nano))
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(0), "paused")
	h.setPaused(h.partnerAccount("r"), false)
	for s, old := range links {
		g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(Equal(old), s)
	}
	g.Consistently(func() int { return total(h.linkCalls()) }).WithTimeout(2*time.Second).Should(Equal(2), "one generation per user")
	for s := range links {
		g.Expect(h.linkState(h.secretLink(s))).To(Equal("valid"), s)
	}
}

// A request dated in the future (a client clock ahead, a typo of the year) must not make the
// PartnerAccount's later, correct requests (Argo CD's renew action on the PartnerAccount)
// silently do nothing until that future time. A PartnerAccount's request dated hours ahead is
// not copied; a LoginLink's own one is acted on once and then bounds nothing.
func TestReview2PartnerAccountRenewAfterFutureRequest(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("f", "john@f.example"))
	pa := h.expectAccountReason("f", metav1.ConditionTrue, partnersv1.ReasonCreated)
	g.Eventually(func() string { return h.secretLink("f-login-link") }).ShouldNot(BeEmpty())
	old := h.secretLink("f-login-link")

	future := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, future)
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(0), "a PartnerAccount's request from the future")

	ll := h.loginLink("f-holder")
	g.Expect(ll.Annotations[partnersv1.AnnotationRenewRequestedAt]).To(BeEmpty())
	if ll.Annotations == nil {
		ll.Annotations = map[string]string{}
	}
	ll.Annotations[partnersv1.AnnotationRenewRequestedAt] = future
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() string { return h.secretLink("f-login-link") }).ShouldNot(Equal(old))
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(1))
	old = h.secretLink("f-login-link")

	// The clock fixed, the next request (as Argo CD's action writes it: now, to the second).
	time.Sleep(1100 * time.Millisecond)
	h.annotate(h.partnerAccount("f"), partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339))
	g.Eventually(func() string { return h.secretLink("f-login-link") }).WithTimeout(5*time.Second).ShouldNot(Equal(old),
		"a PartnerAccount's renew request after a future-dated one is dropped")
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(2))
}

// A request while the account's hourly link budget is spent: RateLimited, no hot loop, and
// one generation per user once the hour frees slots (at 3600x an hour is a second).
func TestReview2PartnerAccountRenewRateLimited(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 120, LinkRate: fifteenth.Rate{N: 2, Per: time.Hour}}})
	g := h.g
	h.create(account("l", "john@l.example", withSpouse("jane@l.example")))
	pa := h.expectAccountReason("l", metav1.ConditionTrue, partnersv1.ReasonCreated)
	links := h.coupleLinks("l")
	// Spend the budget: one request (2 links), then a second one in the same hour.
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339Nano))
	for s, old := range links {
		g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(Equal(old), s)
	}
	links = h.coupleLinks("l")
	g.Expect(total(h.linkCalls())).To(Equal(2), "%v", h.linkCalls())
	passes, llPasses, calls := reconciles("partneraccount"), reconciles("loginlink"), total(h.linkCalls())
	h.annotate(h.partnerAccount("l"), partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339Nano))
	// 30 s of API hour at 120x is 15 s... watch 10 s: at most a few passes and calls, no loop.
	for i := 0; i < 5; i++ {
		time.Sleep(time.Second)
		ll := h.loginLink("l-holder")
		t.Logf("t=%ds LoginLink passes %v, PartnerAccount passes %v, link calls %v, holder %+v annotations %v", i+1, reconciles("loginlink")-llPasses,
			reconciles("partneraccount")-passes, h.linkCalls(), ll.Status.Conditions, ll.Annotations)
	}
	g.Expect(reconciles("loginlink")-llPasses).To(BeNumerically("<", 60), "hot loop")
	t.Logf("in 10 s: %v PartnerAccount passes, %v LoginLink passes, %d link calls (%v)", reconciles("partneraccount")-passes,
		reconciles("loginlink")-llPasses, total(h.linkCalls())-calls, h.linkCalls())
	for s, old := range links {
		g.Eventually(func() string { return h.secretLink(s) }).WithTimeout(40*time.Second).ShouldNot(Equal(old), s)
	}
	t.Logf("link calls: %v", h.linkCalls())
	g.Consistently(func() int { return h.linkCalls()["200"] + h.linkCalls()["201"] }).WithTimeout(2*time.Second).Should(Equal(4), "one generation per user per request")
	for s := range links {
		g.Expect(h.linkState(h.secretLink(s))).To(Equal("valid"), s)
	}
}

// The same with one user (no spouse): diagnoses whether the passes above are a ping-pong
// between the two users' Leases of one account.
func TestReview2RenewRateLimitedOneUser(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 120, LinkRate: fifteenth.Rate{N: 1, Per: time.Hour}}})
	g := h.g
	h.create(account("o", "john@o.example"))
	pa := h.expectAccountReason("o", metav1.ConditionTrue, partnersv1.ReasonCreated)
	g.Eventually(func() string { return h.secretLink("o-login-link") }).ShouldNot(BeEmpty())
	old := h.secretLink("o-login-link")
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339Nano))
	g.Eventually(func() string { return h.secretLink("o-login-link") }).ShouldNot(Equal(old))
	llPasses := reconciles("loginlink")
	h.annotate(h.partnerAccount("o"), partnersv1.AnnotationRenewRequestedAt, time.Now().UTC().Format(time.RFC3339Nano))
	h.expectLinkReason("o-holder", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
	time.Sleep(5 * time.Second)
	t.Logf("LoginLink passes in 5 s: %v, link calls %v", reconciles("loginlink")-llPasses, h.linkCalls())
	g.Expect(reconciles("loginlink")-llPasses).To(BeNumerically("<", 20), "hot loop")
}

// Argo CD's renew action on a PartnerAccount, clicked twice within one second (the value is to
// the second, so the second click writes the same value): one new link per user. A click within
// the second of the links' generation is not later than it, to the second: logged for the report.
func TestReview2ArgoRenewTwiceSameSecond(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("a", "john@a.example", withSpouse("jane@a.example")))
	pa := h.expectAccountReason("a", metav1.ConditionTrue, partnersv1.ReasonCreated)
	links := h.coupleLinks("a")
	time.Sleep(1100 * time.Millisecond)
	v := time.Now().UTC().Format(time.RFC3339)
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, v)
	h.annotate(h.partnerAccount("a"), partnersv1.AnnotationRenewRequestedAt, v)
	for s, old := range links {
		g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(Equal(old), s)
	}
	g.Consistently(func() int { return total(h.linkCalls()) }).WithTimeout(2*time.Second).Should(Equal(2), "one new link per user")
	for s := range links {
		g.Expect(h.linkState(h.secretLink(s))).To(Equal("valid"), s)
	}
}

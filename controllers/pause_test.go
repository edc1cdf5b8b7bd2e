package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// setPaused sets or removes the paused annotation of obj (a LoginLink or a PartnerAccount).
func (h *harness) setPaused(obj client.Object, paused bool) {
	h.t.Helper()
	h.g.Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if paused {
			ann[partnersv1.AnnotationPaused] = "true"
		} else {
			delete(ann, partnersv1.AnnotationPaused)
		}
		obj.SetAnnotations(ann)
		return k8s.Update(ctx, obj)
	}).Should(Succeed())
}

func (h *harness) secret(name string) *corev1.Secret {
	h.t.Helper()
	s := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, h.key(name), s)).To(Succeed())
	return s
}

// A paused LoginLink calls nothing while its renewal time and its expiry pass, keeps its
// Secret untouched, and says who paused it. At 1800x a 1-hour link lasts 2 s.
func TestPauseLoginLinkCallsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 1800}})
	g := h.g
	id := h.createAccount("pause@example.com")
	h.create(linkFor("paused", id, func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }))
	h.expectLinkReason("paused", metav1.ConditionTrue, partnersv1.ReasonGenerated)

	h.setPaused(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "paused"}}, true)
	ll := h.expectLinkReason("paused", metav1.ConditionFalse, partnersv1.ReasonPaused)
	g.Expect(readyMessage(ll.Status.Conditions)).To(ContainSubstring("this LoginLink's annotation " + partnersv1.AnnotationPaused))
	// A pause is intended: no not-Ready or expiring-unrenewed alert (the LoginLink's series are gone).
	g.Eventually(func() bool {
		_, ready := gauge("fifteenth_login_link_ready", h.ns, "paused")
		_, renews := gauge("fifteenth_login_link_renewal_timestamp_seconds", h.ns, "paused")
		return ready || renews
	}).Should(BeFalse())
	before, calls := h.secret("paused"), h.apiCalls()
	// Three API hours pass: the renewal time and the expiry of the stored link with them.
	g.Consistently(h.apiCalls).WithTimeout(6*time.Second).WithPolling(100*time.Millisecond).Should(Equal(calls), "API calls while paused")
	after := h.secret("paused")
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "the Secret is left as it is")
	g.Expect(h.linkState(string(after.Data[partnersv1.SecretKeyLoginLink]))).To(Equal("expired"))
	h.expectLinkReason("paused", metav1.ConditionFalse, partnersv1.ReasonPaused)

	// Unpaused with an expired link: it generates again.
	h.setPaused(ll, false)
	g.Eventually(func() string { return h.secretLink("paused") }).ShouldNot(Equal(string(after.Data[partnersv1.SecretKeyLoginLink])))
	g.Eventually(func() string { return h.linkState(h.secretLink("paused")) }).Should(Equal("valid"))
}

// Removing the annotation while the stored link is valid costs no call: the LoginLink is
// Ready LinkValid again.
func TestPauseRemovedWhileValidCostsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("unpause@example.com")
	h.create(linkFor("unpause", id))
	h.expectLinkReason("unpause", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	ll := h.loginLink("unpause")
	h.setPaused(ll, true)
	h.expectLinkReason("unpause", metav1.ConditionFalse, partnersv1.ReasonPaused)
	calls, rv := h.apiCalls(), h.secret("unpause").ResourceVersion
	h.setPaused(ll, false)
	h.expectLinkReason("unpause", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	g.Consistently(h.apiCalls).Should(Equal(calls))
	g.Expect(h.secret("unpause").ResourceVersion).To(Equal(rv))
	g.Expect(h.linkState(h.secretLink("unpause"))).To(Equal("valid"))
}

// A paused PartnerAccount creates no account; pausing one with an account pauses the
// LoginLinks it owns (no call, Secrets untouched), and unpausing creates the first one.
func TestPausePartnerAccount(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}, syncPeriod: time.Hour})
	g := h.g
	fresh := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "fresh",
		Annotations: map[string]string{partnersv1.AnnotationPaused: "true"}},
		Spec: partnersv1.PartnerAccountSpec{Email: "fresh@example.com", FirstName: "F", LastName: "P"}}
	h.create(fresh)
	g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key("fresh"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect([]any{s, r}).To(Equal([]any{metav1.ConditionFalse, partnersv1.ReasonPaused}))
	}).Should(Succeed())
	g.Consistently(h.apiCalls).Should(BeZero(), "a paused PartnerAccount creates no account")

	couple := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "couple"},
		Spec: partnersv1.PartnerAccountSpec{Email: "holder@example.com", FirstName: "H", LastName: "P",
			Spouse:    &partnersv1.SpouseSpec{Email: "spouse@example.com", FirstName: "S", LastName: "P"},
			LoginLink: &partnersv1.AccountLoginLinkSpec{ExpiryHours: ptr.To[int32](1)}}}
	h.create(couple)
	h.expectLinkReason("couple-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	h.expectLinkReason("couple-spouse", metav1.ConditionTrue, partnersv1.ReasonLinkValid)

	h.setPaused(couple, true)
	for _, name := range []string{"couple-holder", "couple-spouse"} {
		ll := h.expectLinkReason(name, metav1.ConditionFalse, partnersv1.ReasonPaused)
		g.Expect(readyMessage(ll.Status.Conditions)).To(ContainSubstring("PartnerAccount couple"))
	}
	g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key("couple"), pa)).To(Succeed())
		_, r := readyOf(pa.Status.Conditions)
		g.Expect(r).To(Equal(partnersv1.ReasonPaused))
	}).Should(Succeed())
	g.Eventually(func() bool { _, ok := gauge("fifteenth_partner_account_ready", h.ns, "couple"); return ok }).Should(BeFalse())
	holderRV, spouseRV, calls := h.secret("couple-login-link").ResourceVersion, h.secret("couple-spouse-login-link").ResourceVersion, h.apiCalls()
	// The seeded links last a week: the sync period (one API hour, 1 s) passes three times.
	g.Consistently(h.apiCalls).WithTimeout(3*time.Second).Should(Equal(calls), "API calls while the PartnerAccount is paused")
	g.Expect(h.secret("couple-login-link").ResourceVersion).To(Equal(holderRV))
	g.Expect(h.secret("couple-spouse-login-link").ResourceVersion).To(Equal(spouseRV))

	h.setPaused(fresh, false)
	h.expectLinkReason("fresh-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	g.Expect(h.stats().Requests["POST /v1beta/accounts"]).To(HaveKeyWithValue("201", 2))
}

// A paused LoginLink that holds its user keeps it: a newer LoginLink for the same user is
// Superseded and generates nothing, so the paused one's link stays valid. Unpaused, the
// newest LoginLink holds the user again and generates.
func TestPausedHolderKeepsItsUser(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("keep@example.com")
	h.create(linkFor("old", id))
	h.expectLinkReason("old", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	old := h.loginLink("old")
	h.setPaused(old, true)
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonPaused)
	link, generated := h.secretLink("old"), total(h.linkCalls())

	h.afterCreationSecond(old)
	h.create(linkFor("new", id))
	ll := h.expectLinkReason("new", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	g.Expect(readyMessage(ll.Status.Conditions)).To(ContainSubstring("LoginLink old holds"))
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(generated), "link generations while the paused holder holds")
	g.Expect(h.linkState(link)).To(Equal("valid"))
	g.Expect(h.secretLink("new")).To(BeEmpty(), "the superseded newcomer stores no link")

	h.setPaused(old, false)
	h.expectLinkReason("new", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	g.Expect(h.linkState(h.secretLink("new"))).To(Equal("valid"))
}

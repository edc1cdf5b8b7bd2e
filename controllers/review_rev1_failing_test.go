package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Two new links within one second (the API's generation times are whole seconds): here a
// spec change right after the first link. The second link invalidates the first, so the
// target, restarted for the first link, must be restarted again; its restartedAt equals the
// second link's time already, and it is not.
func TestReviewRestartSameSecond(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	web := deployment("web", nil)
	h.create(web)
	id := h.createAccount("same-second@example.com")
	// Start just after a second boundary, so that both links fall in the same second.
	g.Eventually(func() bool { n := time.Now().Nanosecond(); return n > 10e6 && n < 60e6 }).WithPolling(time.Millisecond).Should(BeTrue())
	h.create(linkFor("app", id, func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	}))
	var first string
	g.Eventually(func() string { first = h.secretLink("app"); return first }).WithPolling(5 * time.Millisecond).ShouldNot(BeEmpty())
	gen1 := h.secretGeneratedAt("app")
	ll := h.loginLink("app")
	ll.Spec.ExpiryHours = ptr.To[int32](2)
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() string { return h.secretLink("app") }).ShouldNot(Equal(first))
	gen2 := h.secretGeneratedAt("app")
	if !gen2.Equal(gen1) {
		t.Skipf("the two links fell in different seconds (%s, %s): the case was not reached", gen1, gen2)
	}
	g.Expect(h.linkState(first)).NotTo(Equal("valid"))
	g.Eventually(func() int64 { n, _ := h.workload(web); return n }).WithTimeout(5*time.Second).Should(Equal(int64(3)),
		"the workload was restarted for the first link only; its pods may hold the invalidated first link")
}

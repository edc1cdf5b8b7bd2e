package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// A paused LoginLink whose stored link expired holds nothing worth keeping: a newer LoginLink
// for the same user should be able to give the user a valid link. At 1800x a 1-hour link
// lasts 2 s.
func TestReviewPausedExpiredHolderReleasesUser(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 1800}})
	g := h.g
	id := h.createAccount("expired-holder@example.com")
	h.create(linkFor("old", id, func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }))
	h.expectLinkReason("old", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	old := h.loginLink("old")
	h.setPaused(old, true)
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonPaused)
	link := h.secretLink("old")
	// A newcomer while the paused link is valid: Superseded, nothing generated.
	h.afterCreationSecond(old)
	h.create(linkFor("new", id, func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }))
	h.expectLinkReason("new", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	g.Expect(h.linkState(link)).To(Equal("valid"))
	// Once the paused link expired, the newcomer gives the user a valid link, woken by no
	// change of any object.
	g.Eventually(func() string { return h.linkState(link) }).WithTimeout(10 * time.Second).Should(Equal("expired"))
	g.Eventually(func() string { return h.linkState(h.secretLink("new")) }).WithTimeout(10*time.Second).Should(Equal("valid"),
		"the user has no valid link anywhere: the paused holder's link expired and the newer LoginLink stays Superseded")
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonPaused)
}

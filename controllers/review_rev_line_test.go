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

// A PartnerAccount deleted while it waits in the creation line must not hold its place: the
// one behind it takes the slot when it frees, not one window later.
func TestReviewRevLineDeletedWaiterGivesUpItsPlace(t *testing.T) {
	rate := fifteenth.Rate{N: 1, Per: 6 * time.Second}
	h := newHarness(t, harnessOpts{sim: sim.Config{AccountRate: rate}})
	g := h.g

	h.create(account("first", "first@example.com"))
	g.Eventually(func(g Gomega) { g.Expect(h.createCalls()["201"]).To(Equal(1)) }).Should(Succeed())
	slotFrees := time.Now().Add(rate.Per)
	h.create(account("ghost", "ghost@example.com"))
	ghost := h.expectAccountReason("ghost", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
	h.create(account("next", "next@example.com"))
	h.expectAccountReason("next", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
	g.Expect(k8s.Delete(ctx, ghost)).To(Succeed())

	// The slot "first" took frees at slotFrees; "next" is first in line once "ghost" is gone.
	g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key("next"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "next: %s", r)
	}).WithTimeout(time.Until(slotFrees) + 3*time.Second).WithPolling(poll).Should(Succeed(),
		"next is Ready within 3 s of the slot freeing (a deleted waiter would hold it a window: %v)", rate.Per)
	g.Expect(h.createCalls()).To(Equal(map[string]int{"201": 2}), "no 429")
}

package controllers_test

import (
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	}).WithTimeout(time.Until(slotFrees)+3*time.Second).WithPolling(poll).Should(Succeed(),
		"next is Ready within 3 s of the slot freeing (a deleted waiter would hold it a window: %v)", rate.Per)
	g.Expect(h.createCalls()).To(Equal(map[string]int{"201": 2}), "no 429")
}

// The cache drops last-applied-configuration of the operator's kinds; a LoginLink a
// PartnerAccount controls is updated whole from the cache (CreateOrUpdate) when the
// PartnerAccount passes a renew request on, which must not erase the annotation on the server.
func TestReviewRevCacheTransformKeepsLastAppliedOnUpdate(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("applied", "applied@example.com"))
	h.expectAccountReason("applied", metav1.ConditionTrue, partnersv1.ReasonCreated)
	ll := h.loginLink("applied-holder")
	const applied = `{"apiVersion":"partners.fifteenth.com/v1alpha1","kind":"LoginLink"}`
	patch := []byte(`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":` + strconv.Quote(applied) + `}}}`)
	g.Expect(k8s.Patch(ctx, ll, client.RawPatch(types.MergePatchType, patch))).To(Succeed())

	pa := h.partnerAccount("applied")
	at := time.Now().UTC().Format(time.RFC3339Nano)
	patch = []byte(`{"metadata":{"annotations":{"` + partnersv1.AnnotationRenewRequestedAt + `":"` + at + `"}}}`)
	g.Expect(k8s.Patch(ctx, pa, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &partnersv1.LoginLink{}
		g.Expect(k8s.Get(ctx, h.key("applied-holder"), got)).To(Succeed())
		g.Expect(got.Annotations).To(HaveKeyWithValue(partnersv1.AnnotationRenewRequestedAt, at), "renew request passed on")
	}).Should(Succeed())
	got := h.loginLink("applied-holder")
	g.Expect(got.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/last-applied-configuration", applied),
		"an update from the cache erased the annotation the cache does not keep")
}

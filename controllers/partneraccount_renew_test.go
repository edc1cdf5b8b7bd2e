package controllers_test

import (
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// annotate sets one annotation with a merge patch, as kubectl annotate and Argo CD's renew
// action do.
func (h *harness) annotate(obj *partnersv1.PartnerAccount, key, value string) {
	h.t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(k8s.Patch(ctx, obj, client.RawPatch(types.MergePatchType, b))).To(Succeed())
}

// renew-requested-at on a PartnerAccount renews the links of its holder and spouse: it is
// copied to the LoginLinks it owns, each generates once, and a second look changes nothing.
func TestPartnerAccountRenewRequest(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("renew", "john@renew.example", withSpouse("jane@renew.example")))
	pa := h.expectAccountReason("renew", metav1.ConditionTrue, partnersv1.ReasonCreated)
	links := map[string]string{}
	for _, s := range []string{"renew-login-link", "renew-spouse-login-link"} {
		g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(BeEmpty(), s)
		links[s] = h.secretLink(s)
	}
	g.Expect(total(h.linkCalls())).To(Equal(0), "the create answer's links are kept")

	at := time.Now().UTC().Format(time.RFC3339Nano)
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, at)
	for _, name := range []string{"renew-holder", "renew-spouse"} {
		g.Eventually(func() string { return h.loginLink(name).Annotations[partnersv1.AnnotationRenewRequestedAt] }).Should(Equal(at), name)
	}
	for s, old := range links {
		g.Eventually(func() string { return h.secretLink(s) }).ShouldNot(Equal(old), s)
		g.Expect(h.linkState(h.secretLink(s))).To(Equal("valid"), s)
	}
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(2), "one generation per user")

	// An older request on the PartnerAccount does not replace the LoginLinks' newer one.
	passes := reconciles("partneraccount")
	h.annotate(pa, partnersv1.AnnotationRenewRequestedAt, "2020-01-01T00:00:00Z")
	g.Eventually(func() float64 { return reconciles("partneraccount") }).Should(BeNumerically(">", passes), "the annotation wakes the PartnerAccount")
	g.Consistently(func() string { return h.loginLink("renew-holder").Annotations[partnersv1.AnnotationRenewRequestedAt] }).Should(Equal(at))
	g.Expect(total(h.linkCalls())).To(Equal(2))
}

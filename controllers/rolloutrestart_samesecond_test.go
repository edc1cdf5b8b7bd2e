package controllers_test

import (
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Two new links within one second (the API's generation times are whole seconds): here a
// spec change right after the first link. The second link invalidates the first, so the
// target, restarted for the first link, must be restarted again; its restartedAt equals the
// second link's time already, and it is not (a defect found in review: the restarts now carry
// the time the operator stored each link, to the nanosecond).
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
	gen1 := h.secretAPIGeneratedAt("app")
	ll := h.loginLink("app")
	ll.Spec.ExpiryHours = ptr.To[int32](2)
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() string { return h.secretLink("app") }).ShouldNot(Equal(first))
	// Usually the same second (the test starts just after a boundary); either way each link
	// restarts the target once.
	t.Logf("the API's generation times: %s, %s", gen1, h.secretAPIGeneratedAt("app"))
	g.Expect(h.linkState(first)).NotTo(Equal("valid"))
	g.Eventually(func() int64 { n, _ := h.workload(web); return n }).WithTimeout(5*time.Second).Should(Equal(int64(3)),
		"the workload was restarted for the first link only; its pods may hold the invalidated first link")
}

// A PartnerAccount's targets are its holder's and its spouse's: a renewal requested on the
// PartnerAccount (kubectl fifteenth renew pa/NAME, Argo CD's renew action) renews both links,
// usually in the same second. The shared Deployment must be restarted after both new links
// are stored: its last template change (the only writes to it here: no kube-controller-manager
// in this suite) is later than both Secrets' (resourceVersions of one etcd are ordered).
func TestReviewRestartAfterBothPartnerAccountLinks(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	web := deployment("web", nil)
	h.create(web)
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "duo"}, Spec: partnersv1.PartnerAccountSpec{
		Email: "duo@example.com", FirstName: "D", LastName: "Uo",
		Spouse:    &partnersv1.SpouseSpec{Email: "duo-spouse@example.com", FirstName: "S", LastName: "Uo"},
		LoginLink: &partnersv1.AccountLoginLinkSpec{RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}}}}
	h.create(pa)
	h.expectLinkReason("duo-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	h.expectLinkReason("duo-spouse", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	g.Eventually(func() string { _, at := h.workload(web); return at }).ShouldNot(BeEmpty())
	before := map[string]string{"duo-login-link": h.secretLink("duo-login-link"), "duo-spouse-login-link": h.secretLink("duo-spouse-login-link")}

	for attempt := range 3 {
		time.Sleep(1100 * time.Millisecond) // the request is for a later second than the links it renews
		g.Eventually(func() error {
			if err := k8s.Get(ctx, h.key("duo"), pa); err != nil {
				return err
			}
			pa.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
			return k8s.Update(ctx, pa)
		}).Should(Succeed())
		for name, old := range before {
			g.Eventually(func() string { return h.secretLink(name) }).ShouldNot(Equal(old), "attempt %d: %s renewed", attempt, name)
		}
		// Let every restart happen.
		time.Sleep(2 * time.Second)
		holder, spouse := h.secret("duo-login-link"), h.secret("duo-spouse-login-link")
		d := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, h.key("web"), d)).To(Succeed())
		rv := func(o metav1.Object) int64 { n, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64); return n }
		t.Logf("attempt %d: holder link at %s (rv %d), spouse link at %s (rv %d); restartedAt %s (rv %d)", attempt,
			holder.Annotations["partners.fifteenth.com/generated-at"], rv(holder), spouse.Annotations["partners.fifteenth.com/generated-at"], rv(spouse),
			d.Spec.Template.Annotations[annRestartedAt], rv(d))
		g.Expect(rv(d)).To(BeNumerically(">", max(rv(holder), rv(spouse))),
			"attempt %d: the workload was last restarted before a new link was stored: its pods may keep the invalidated link", attempt)
		before = map[string]string{"duo-login-link": h.secretLink("duo-login-link"), "duo-spouse-login-link": h.secretLink("duo-spouse-login-link")}
	}
}

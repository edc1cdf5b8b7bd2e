package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Review of issue 12 parts 1-3: scenarios driven against the real reconcilers.

// A renewal the API refuses (429) restarts nothing; the next accepted renewal restarts once.
func TestReviewRestartNoneOnRefusedRenewal(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	web := deployment("web", nil)
	h.create(web)
	h.create(linkFor("app", h.createAccount("refused@example.com"), func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	}))
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	gen1 := h.secretGeneratedAt("app")
	g.Eventually(func() int64 { n, _ := h.workload(web); return n }).Should(Equal(int64(2)))

	h.simPost("/_sim/faults", `{"rate_limit_next": 1000}`)
	ll := h.loginLink("app")
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	h.expectLinkReason("app", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
	g.Consistently(func(g Gomega) {
		n, at := h.workload(web)
		g.Expect(n).To(Equal(int64(2)), "a refused renewal restarts nothing")
		g.Expect(at).To(Equal(gen1.UTC().Format(time.RFC3339Nano)))
	}).WithTimeout(2 * time.Second).Should(Succeed())

	h.simPost("/_sim/faults", `{}`)
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonRenewed)
	gen2 := h.secretGeneratedAt("app")
	g.Eventually(func() string { _, at := h.workload(web); return at }).Should(Equal(gen2.UTC().Format(time.RFC3339Nano)))
	g.Consistently(func() int64 { n, _ := h.workload(web); return n }).WithTimeout(2*time.Second).Should(Equal(int64(3)), "one restart per new link")
}

// Targets added to a Ready LoginLink: a StatefulSet that predates the link and a Deployment
// whose restartedAt a user set to garbage are each restarted once for the current link, with
// no new link; resyncs re-patch nothing; a removed and re-added target is not restarted again.
func TestReviewRestartTargetsAddedLater(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	sel, tmpl := podTemplate("db")
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}
	h.create(sts)
	garbage := deployment("garbage", map[string]string{annRestartedAt: "not a time"})
	h.create(garbage)
	h.create(linkFor("app", h.createAccount("later@example.com")))
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	gen := h.secretGeneratedAt("app").UTC().Format(time.RFC3339Nano)

	ll := h.loginLink("app")
	ll.Spec.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "StatefulSet", Name: "db"}, {Kind: "Deployment", Name: "garbage"}}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	stsGen := func() (int64, string) {
		s := &appsv1.StatefulSet{}
		g.Expect(k8s.Get(ctx, h.key("db"), s)).To(Succeed())
		return s.Generation, s.Spec.Template.Annotations[annRestartedAt]
	}
	g.Eventually(func(g Gomega) {
		n, at := stsGen()
		g.Expect(at).To(Equal(gen))
		g.Expect(n).To(Equal(int64(2)))
		m, at2 := h.workload(garbage)
		g.Expect(at2).To(Equal(gen))
		g.Expect(m).To(Equal(int64(2)))
	}).Should(Succeed())
	for i := range 3 {
		ll = h.loginLink("app")
		ll.Annotations = map[string]string{"example.com/touched": string(rune('a' + i))}
		g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	}
	// Removed, then added again.
	ll = h.loginLink("app")
	ll.Spec.RolloutRestartTargets = nil
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() bool { return restartedCondition(h.loginLink("app")) == nil }).Should(BeTrue())
	ll = h.loginLink("app")
	ll.Spec.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "StatefulSet", Name: "db"}}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Consistently(func(g Gomega) {
		n, _ := stsGen()
		g.Expect(n).To(Equal(int64(2)))
		m, _ := h.workload(garbage)
		g.Expect(m).To(Equal(int64(2)))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(total(h.linkCalls())).To(Equal(1), "adding targets generates no link")
}

// A superseded LoginLink whose target is the holder's Deployment restarts nothing: only the
// holder's new link does, once.
func TestReviewRestartSupersededRestartsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	web := deployment("web", nil)
	h.create(web)
	id := h.createAccount("shared@example.com")
	targets := func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	}
	h.create(linkFor("old", id, targets))
	h.expectLinkReason("old", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	old := h.loginLink("old")
	g.Eventually(func() int64 { n, _ := h.workload(web); return n }).Should(Equal(int64(2)))
	h.afterCreationSecond(old)
	// The new link is for a later second than the old one (TestReviewRestartSameSecond is the
	// same-second case).
	oldGen := h.secretGeneratedAt("old")
	g.Eventually(func() bool { return time.Now().After(oldGen.Add(time.Second)) }).Should(BeTrue())
	h.create(linkFor("new", id, targets))
	h.expectLinkReason("new", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	gen := h.secretGeneratedAt("new").UTC().Format(time.RFC3339Nano)
	g.Eventually(func() string { _, at := h.workload(web); return at }).Should(Equal(gen))
	for i := range 3 {
		ll := h.loginLink("old")
		ll.Annotations = map[string]string{"example.com/touched": string(rune('a' + i))}
		g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	}
	g.Consistently(func(g Gomega) {
		n, at := h.workload(web)
		g.Expect(at).To(Equal(gen))
		g.Expect(n).To(Equal(int64(3)), "one restart per new link, none for the superseded one")
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(total(h.linkCalls())).To(Equal(2))
}

// A paused LoginLink whose Secret a user deleted: nothing is written while paused; unpaused,
// it generates again.
func TestReviewPausedSecretDeleted(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(linkFor("p", h.createAccount("gone@example.com")))
	h.expectLinkReason("p", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	ll := h.loginLink("p")
	h.setPaused(ll, true)
	h.expectLinkReason("p", metav1.ConditionFalse, partnersv1.ReasonPaused)
	g.Expect(k8s.Delete(ctx, h.secret("p"))).To(Succeed())
	calls := h.apiCalls()
	g.Consistently(func(g Gomega) {
		g.Expect(h.secretLink("p")).To(BeEmpty())
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, h.key("p"), s)).NotTo(Succeed())
		g.Expect(h.apiCalls()).To(Equal(calls))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	h.setPaused(ll, false)
	g.Eventually(func() string { return h.linkState(h.secretLink("p")) }).Should(Equal("valid"))
}

// Standby: after an active manager generated links (a LoginLink with a restart target, a
// PartnerAccount with its account), a --read-only manager on the same objects calls no
// generation or creation, writes no Secret and no Lease, patches no workload, even when a
// renewal is requested, a Secret is altered, a LoginLink is superseded and a new
// PartnerAccount appears; everything is Ready=False Standby.
func TestReviewStandbyWritesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	web := deployment("web", nil)
	h.create(web)
	id := h.createAccount("standby@example.com")
	targets := func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	}
	h.create(linkFor("old", id, targets))
	h.expectLinkReason("old", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	old := h.loginLink("old")
	g.Eventually(func() int64 { n, _ := h.workload(web); return n }).Should(Equal(int64(2)))
	h.stopManager()

	h.readOnly = true
	h.startManager(0)
	h.expectLinkReason("old", metav1.ConditionFalse, partnersv1.ReasonStandby)
	secretRV := h.secret("old").ResourceVersion
	var leases = func() map[string]string {
		var l = map[string]string{}
		list := &coordinationv1.LeaseList{}
		g.Expect(k8s.List(ctx, list, inNS(h.ns))).To(Succeed())
		for _, o := range list.Items {
			l[o.Name] = o.ResourceVersion
		}
		return l
	}
	leasesBefore := leases()
	stats := h.stats()
	creates, links := total(stats.Requests["POST /v1beta/accounts"]), total(h.linkCalls())

	h.afterCreationSecond(old)
	h.create(linkFor("new", id, targets))
	ll := h.loginLink("old")
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	// A Secret of the new LoginLink's name that it does not own (the conflict path).
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new"}, StringData: map[string]string{"x": "y"}})
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec: partnersv1.PartnerAccountSpec{Email: "fresh-standby@example.com", FirstName: "F", LastName: "S",
			LoginLink: &partnersv1.AccountLoginLinkSpec{RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}}}}
	h.create(pa)
	h.expectLinkReason("new", metav1.ConditionFalse, partnersv1.ReasonStandby)
	h.expectLinkReason("fresh-holder", metav1.ConditionFalse, partnersv1.ReasonStandby)
	g.Consistently(func(g Gomega) {
		g.Expect(h.secret("old").ResourceVersion).To(Equal(secretRV))
		n, _ := h.workload(web)
		g.Expect(n).To(Equal(int64(2)))
		g.Expect(leases()).To(Equal(leasesBefore))
		st := h.stats()
		g.Expect(total(st.Requests["POST /v1beta/accounts"])).To(Equal(creates))
		g.Expect(total(h.linkCalls())).To(Equal(links))
		var secrets corev1.SecretList
		g.Expect(k8s.List(ctx, &secrets, inNS(h.ns))).To(Succeed())
		g.Expect(len(secrets.Items)).To(Equal(2), "old's and the user's unowned one")
	}).WithTimeout(3 * time.Second).Should(Succeed())
	g.Expect(h.linkState(h.secretLink("old"))).To(Equal("valid"))
}

package controllers_test

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

const annRestartedAt = "partners.fifteenth.com/restartedAt"

func podTemplate(app string) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
	labels := map[string]string{"app": app}
	return &metav1.LabelSelector{MatchLabels: labels}, corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/" + app + ":1"}}}}
}

func deployment(name string, templateAnnotations map[string]string) *appsv1.Deployment {
	sel, tmpl := podTemplate(name)
	tmpl.Annotations = templateAnnotations
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}
}

func daemonSet(name string) *appsv1.DaemonSet {
	sel, tmpl := podTemplate(name)
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}
}

// workload reads a target live: its generation counts the pod template changes (one per
// restart), and its restartedAt annotation.
func (h *harness) workload(obj client.Object) (int64, string) {
	h.t.Helper()
	h.g.Expect(k8s.Get(ctx, h.key(obj.GetName()), obj)).To(Succeed())
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Generation, o.Spec.Template.Annotations[annRestartedAt]
	case *appsv1.DaemonSet:
		return o.Generation, o.Spec.Template.Annotations[annRestartedAt]
	}
	return 0, ""
}

// secretGeneratedAt is the time of the link a LoginLink's Secret holds, as its restarts carry
// it: when the operator stored it (to the nanosecond; the API's generation time is to the
// second).
func (h *harness) secretGeneratedAt(name string) time.Time {
	h.t.Helper()
	s := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, h.key(name), s)).To(Succeed())
	at, err := time.Parse(time.RFC3339Nano, s.Annotations["partners.fifteenth.com/stored-at"])
	h.g.Expect(err).NotTo(HaveOccurred())
	gen, err := time.Parse(time.RFC3339Nano, s.Annotations["partners.fifteenth.com/generated-at"])
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(at).NotTo(BeTemporally("<", gen), "a link is stored after the API generated it")
	return at
}

// secretAPIGeneratedAt is the API's generation time (to the second) of the link a
// LoginLink's Secret holds.
func (h *harness) secretAPIGeneratedAt(name string) time.Time {
	h.t.Helper()
	s := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, h.key(name), s)).To(Succeed())
	at, err := time.Parse(time.RFC3339Nano, s.Annotations["partners.fifteenth.com/generated-at"])
	h.g.Expect(err).NotTo(HaveOccurred())
	return at
}

func restartedCondition(ll *partnersv1.LoginLink) *metav1.Condition {
	return apimeta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionRolloutRestarted)
}

// Each new link restarts each target exactly once: its pod template annotation is set to the
// link's generation time (one template change: generation 2). A manager restart and a resync
// restart nothing; a renewal restarts each target once more.
func TestRolloutRestartOncePerLink(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("consumers@example.com")
	web, agent := deployment("web", nil), daemonSet("agent")
	h.create(web)
	h.create(agent)
	h.create(linkFor("app", id, func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}, {Kind: "DaemonSet", Name: "agent"}}
	}))
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	gen1 := h.secretGeneratedAt("app")

	restartedFor := func(gen time.Time, generation int64) {
		t.Helper()
		for _, w := range []client.Object{&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}} {
			g.Eventually(func(g Gomega) {
				n, at := h.workload(w)
				g.Expect(at).To(Equal(gen.UTC().Format(time.RFC3339Nano)), "%T %s", w, w.GetName())
				g.Expect(n).To(Equal(generation), "%T %s: one template change per link", w, w.GetName())
			}).Should(Succeed())
		}
		g.Eventually(func(g Gomega) {
			ll := h.loginLink("app")
			c := restartedCondition(ll)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(partnersv1.ReasonRestarted))
			g.Expect(c.ObservedGeneration).To(Equal(ll.Generation))
		}).Should(Succeed())
	}
	restartedFor(gen1, 2)
	unchanged := func(what string, gen time.Time, generation int64) {
		t.Helper()
		g.Consistently(func(g Gomega) {
			for _, w := range []client.Object{&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}} {
				n, at := h.workload(w)
				g.Expect(n).To(Equal(generation), "%s: %s restarted", what, w.GetName())
				g.Expect(at).To(Equal(gen.UTC().Format(time.RFC3339Nano)))
			}
		}).WithTimeout(2 * time.Second).Should(Succeed())
	}

	// A manager restart reconciles the LoginLink again and restarts nothing.
	h.stopManager()
	base := reconciles("loginlink")
	h.startManager(0)
	g.Eventually(func() float64 { return reconciles("loginlink") - base }).Should(BeNumerically(">=", 1))
	unchanged("after a manager restart", gen1, 2)

	// A resync (a pass woken by an unrelated change) restarts nothing.
	ll := h.loginLink("app")
	ll.Annotations = map[string]string{"example.com/touched": "1"}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	unchanged("after a resync", gen1, 2)
	g.Expect(total(h.linkCalls())).To(Equal(1))

	// A renewal request: one new link, one more restart of each target.
	ll = h.loginLink("app")
	ll.Annotations[partnersv1.AnnotationRenewRequestedAt] = time.Now().Add(time.Second).UTC().Format(time.RFC3339)
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	h.expectLinkReason("app", metav1.ConditionTrue, partnersv1.ReasonRenewed)
	gen2 := h.secretGeneratedAt("app")
	g.Expect(gen2).To(BeTemporally(">", gen1))
	restartedFor(gen2, 3)
	unchanged("after the renewal", gen2, 3)
	g.Expect(total(h.linkCalls())).To(Equal(2))
	g.Expect(counter("fifteenth_rollout_restarts_total", map[string]string{"namespace": h.ns, "kind": "Deployment", "result": "restarted"})).To(Equal(2.0))
	g.Expect(counter("fifteenth_rollout_restarts_total", map[string]string{"namespace": h.ns, "kind": "DaemonSet", "result": "restarted"})).To(Equal(2.0))
}

// Two LoginLinks restart one Deployment: the annotation only moves forward, to the newer
// link's time, and never back, so the two never ping-pong. A target already carrying a later
// time is left alone.
func TestRolloutRestartOnlyForward(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	shared := deployment("shared", nil)
	future := deployment("future", map[string]string{annRestartedAt: "2099-01-01T00:00:00Z"})
	h.create(shared)
	h.create(future)
	targets := func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "shared"}, {Kind: "Deployment", Name: "future"}}
	}
	h.create(linkFor("first", h.createAccount("first@example.com"), targets))
	h.expectLinkReason("first", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	first := h.secretGeneratedAt("first")
	// The API gives generation times in whole seconds: the second link is for a later one.
	g.Eventually(func() bool { return time.Now().After(first.Add(time.Second)) }).Should(BeTrue())
	h.create(linkFor("second", h.createAccount("second@example.com"), targets))
	h.expectLinkReason("second", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	second := h.secretGeneratedAt("second")
	g.Expect(second).To(BeTemporally(">", first))

	g.Eventually(func() string { _, at := h.workload(shared); return at }).Should(Equal(second.UTC().Format(time.RFC3339Nano)))
	n, _ := h.workload(shared)
	g.Expect(n).To(BeNumerically("<=", 3), "at most one restart per link")

	// Both LoginLinks pass again, several times: neither moves the annotation back.
	for i := range 3 {
		for _, name := range []string{"first", "second"} {
			ll := h.loginLink(name)
			ll.Annotations = map[string]string{"example.com/touched": string(rune('a' + i))}
			g.Expect(k8s.Update(ctx, ll)).To(Succeed())
		}
	}
	g.Consistently(func(g Gomega) {
		m, at := h.workload(shared)
		g.Expect(m).To(Equal(n))
		g.Expect(at).To(Equal(second.UTC().Format(time.RFC3339Nano)))
		m, at = h.workload(future)
		g.Expect(m).To(Equal(int64(1)), "a later restartedAt is never moved back")
		g.Expect(at).To(Equal("2099-01-01T00:00:00Z"))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	for _, name := range []string{"first", "second"} {
		c := restartedCondition(h.loginLink(name))
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonRestarted))
	}
}

// A target that does not exist: a Warning Event and RolloutRestarted=False TargetNotFound,
// Ready stays True and no link is generated again. Once the Deployment exists the condition
// turns True; the new Deployment is not restarted, as its pods started with the current link.
// A LoginLink without targets has no RolloutRestarted condition.
func TestRolloutRestartMissingTarget(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(linkFor("plain", h.createAccount("plain@example.com")))
	h.create(linkFor("lonely", h.createAccount("lonely@example.com"), func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "StatefulSet", Name: "missing"}}
	}))
	h.expectLinkReason("plain", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	h.expectLinkReason("lonely", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Eventually(func(g Gomega) {
		c := restartedCondition(h.loginLink("lonely"))
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonTargetNotFound))
		g.Expect(c.Message).To(ContainSubstring("StatefulSet/missing"))
	}).Should(Succeed())
	g.Eventually(func() map[string]int { return h.events("lonely") }).Should(HaveKey("RolloutRestartFailed"))
	var evs eventsv1.EventList
	g.Expect(k8s.List(ctx, &evs, client.InNamespace(h.ns))).To(Succeed())
	for _, e := range evs.Items {
		if e.Reason == "RolloutRestartFailed" {
			g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(e.Note).To(ContainSubstring("StatefulSet/missing"))
			g.Expect(e.Note).NotTo(ContainSubstring("https://"))
		}
	}
	g.Consistently(func(g Gomega) {
		ll := h.loginLink("lonely")
		s, r := readyOf(ll.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "Ready is not affected")
		g.Expect(r).To(Equal(partnersv1.ReasonGenerated))
		g.Expect(total(h.linkCalls())).To(Equal(2), "the link is not generated again")
	}).WithTimeout(3 * time.Second).Should(Succeed())
	g.Expect(restartedCondition(h.loginLink("plain"))).To(BeNil())
	g.Expect(counter("fifteenth_rollout_restarts_total", map[string]string{"namespace": h.ns, "kind": "StatefulSet", "result": "not_found"})).To(BeNumerically(">=", 1))

	sel, tmpl := podTemplate("missing")
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "missing"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}
	h.create(sts)
	g.Eventually(func(g Gomega) {
		c := restartedCondition(h.loginLink("lonely"))
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonRestarted))
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(90*time.Second).Should(Succeed(), "retried with a backoff capped at a minute")
	g.Expect(k8s.Get(ctx, h.key("missing"), sts)).To(Succeed())
	g.Expect(sts.Generation).To(Equal(int64(1)), "created after the link: not restarted")
	g.Expect(total(h.linkCalls())).To(Equal(2))
}

// RBAC forbids the manager (a user with every right it needs but none on apps) to read the
// target: RolloutRestarted=False Forbidden and a Warning Event, Ready stays True, no second
// generation, the Deployment untouched.
func TestRolloutRestartForbidden(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.stopManager()
	user := "fifteenth-no-apps-" + h.ns
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"", "partners.fifteenth.com", "coordination.k8s.io", "events.k8s.io"},
		Resources: []string{"*"}, Verbs: []string{"*"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding); _ = k8s.Delete(ctx, role) })
	h.startSecondManager(func(rt http.RoundTripper) http.RoundTripper {
		return transport.NewImpersonatingRoundTripper(transport.ImpersonationConfig{UserName: user}, rt)
	})

	web := deployment("web", nil)
	h.create(web)
	h.create(linkFor("denied", h.createAccount("denied@example.com"), func(s *partnersv1.LoginLinkSpec) {
		s.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	}))
	h.expectLinkReason("denied", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Eventually(func(g Gomega) {
		c := restartedCondition(h.loginLink("denied"))
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonForbidden))
		g.Expect(c.Message).To(ContainSubstring("Deployment/web"))
	}).Should(Succeed())
	g.Eventually(func() map[string]int { return h.events("denied") }).Should(HaveKey("RolloutRestartFailed"))
	g.Consistently(func(g Gomega) {
		s, _ := readyOf(h.loginLink("denied").Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue))
		g.Expect(total(h.linkCalls())).To(Equal(1))
		n, at := h.workload(web)
		g.Expect(n).To(Equal(int64(1)))
		g.Expect(at).To(BeEmpty())
	}).WithTimeout(2 * time.Second).Should(Succeed())
}

// A PartnerAccount gives its targets to the LoginLinks it makes.
func TestRolloutRestartTargetsFromPartnerAccount(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	targets := []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "portal"}}
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: partnersv1.PartnerAccountSpec{
		Email: "acme@example.com", FirstName: "A", LastName: "Cme",
		Spouse:    &partnersv1.SpouseSpec{Email: "acme-spouse@example.com", FirstName: "B", LastName: "Cme"},
		LoginLink: &partnersv1.AccountLoginLinkSpec{RolloutRestartTargets: targets}}}
	h.create(pa)
	for _, name := range []string{"acme-holder", "acme-spouse"} {
		h.g.Eventually(func(g Gomega) {
			ll := &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, h.key(name), ll)).To(Succeed())
			g.Expect(ll.Spec.RolloutRestartTargets).To(Equal(targets))
		}).Should(Succeed())
	}
}

// counter returns the value of a counter with exactly these label values (0 when absent).
func counter(metric string, labels map[string]string) float64 {
	families, _ := ctrlmetrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if labelValue(m, k) != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

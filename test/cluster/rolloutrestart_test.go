package cluster_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// A real Deployment restarted by the deployment controller: a new ReplicaSet appears once per
// new link (the first link, then a requested renewal), and a manager restart, or a pass that
// finds nothing new, makes none.
func TestRolloutRestartMakesOneReplicaSetPerLink(t *testing.T) {
	w := newWorld(t)
	g := w.g
	labels := map[string]string{"app": "portal"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "portal"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "portal", Image: "example.com/portal:1",
					Env: []corev1.EnvVar{{Name: "LOGIN_LINK", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "acme-login-link"}, Key: partnersv1.SecretKeyLoginLink}}}}}}}}}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	// replicaSets maps each ReplicaSet of the Deployment to its template's restartedAt.
	replicaSets := func(g Gomega) map[string]string {
		var rss appsv1.ReplicaSetList
		g.Expect(k8s.List(ctx, &rss, client.InNamespace(w.ns))).To(Succeed())
		out := map[string]string{}
		for _, rs := range rss.Items {
			if metav1.IsControlledBy(&rs, d) {
				out[rs.Name] = rs.Spec.Template.Annotations[partnersv1.AnnotationRestartedAt]
			}
		}
		return out
	}
	g.Eventually(replicaSets).Should(HaveLen(1), "the Deployment's first ReplicaSet")

	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "acme"},
		Spec: partnersv1.PartnerAccountSpec{Email: "acme@example.com", FirstName: "John", LastName: "Doe",
			LoginLink: &partnersv1.AccountLoginLinkSpec{
				RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "portal"}}}}}
	g.Expect(k8s.Create(ctx, pa)).To(Succeed())
	// The time the restarts carry: when the operator stored the link (to the nanosecond).
	generatedAt := func() string {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, w.key("acme-login-link"), s)).To(Succeed())
		return s.Annotations["partners.fifteenth.com/stored-at"]
	}
	g.Eventually(func(g Gomega) {
		ll := &partnersv1.LoginLink{}
		g.Expect(k8s.Get(ctx, w.key("acme-holder"), ll)).To(Succeed())
		s, _ := readyReason(ll.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue))
	}).Should(Succeed())
	first := generatedAt()
	g.Eventually(replicaSets).Should(And(HaveLen(2), ContainElement(first)), "one new ReplicaSet for the first link")
	g.Consistently(replicaSets).Should(HaveLen(2), "exactly one")

	// A manager restart: the new manager reconciles the LoginLink and restarts nothing.
	w.stop()
	base := reconcileCount("loginlink")
	w.start()
	g.Eventually(func() float64 { return reconcileCount("loginlink") - base }).Should(BeNumerically(">=", 1))
	g.Consistently(replicaSets).Should(HaveLen(2), "no ReplicaSet after a manager restart")

	// A renewal request: one new link, one new ReplicaSet.
	ll := &partnersv1.LoginLink{}
	g.Expect(k8s.Get(ctx, w.key("acme-holder"), ll)).To(Succeed())
	patch := client.MergeFrom(ll.DeepCopy())
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Patch(ctx, ll, patch)).To(Succeed())
	g.Eventually(generatedAt).ShouldNot(Equal(first))
	second := generatedAt()
	g.Eventually(replicaSets).Should(And(HaveLen(3), ContainElement(second)), "one new ReplicaSet for the renewed link")
	g.Consistently(replicaSets).Should(HaveLen(3), "exactly one")
	g.Expect(w.apiCalls()).To(HaveKeyWithValue("POST /v1beta/accounts/{id}/login-link", 1), "one renewal")
	w.expectNoTokenInEvents()
}

// reconcileCount is how many reconciles the named controller completed, in every manager.
func reconcileCount(name string) float64 {
	families, _ := ctrlmetrics.Registry.Gather()
	n := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == name {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

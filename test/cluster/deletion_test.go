package cluster_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// secretOf returns the Secret of a LoginLink of the world's namespace.
func (w *world) secretOf(loginLink string) *corev1.Secret {
	w.t.Helper()
	ll := &partnersv1.LoginLink{}
	w.g.Expect(k8s.Get(ctx, w.key(loginLink), ll)).To(Succeed())
	s := &corev1.Secret{}
	w.g.Expect(k8s.Get(ctx, w.key(ll.Status.SecretName), s)).To(Succeed())
	return s
}

// Background deletion of a PartnerAccount: the PartnerAccount goes at once, then the garbage
// collector removes its LoginLinks and their Secrets (a Secret held by a finalizer is left
// Terminating until released). No call reaches the API and the account stays.
func TestDeletePartnerAccountBackground(t *testing.T) {
	w := newWorld(t)
	id := w.account("bg")
	w.account("other") // in the same namespace, untouched
	held := w.secretOf("bg-holder")
	hold(w.g, held)
	t.Cleanup(func() { release(w.g, held) })
	calls := w.settle()

	w.g.Expect(k8s.Delete(ctx, &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "bg"}},
		client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	w.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, w.key("bg"), &partnersv1.PartnerAccount{})).To(Satisfy(isGone), "the PartnerAccount goes first")
		g.Expect(w.dependents(g)).To(ConsistOf("LoginLink other-holder", "LoginLink other-spouse",
			"Secret other-login-link", "Secret other-spouse-login-link", "Secret "+held.Name))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(held), held)).To(Succeed())
		g.Expect(held.DeletionTimestamp).NotTo(BeNil(), "the garbage collector deletes the held Secret too")
	}).Should(Succeed())
	release(w.g, held)
	w.g.Eventually(func(g Gomega) []string { return w.dependents(g) }).Should(ConsistOf(
		"LoginLink other-holder", "LoginLink other-spouse", "Secret other-login-link", "Secret other-spouse-login-link"))

	w.g.Expect(w.apiCalls()).To(Equal(calls), "deleting a PartnerAccount calls nothing")
	w.expectAccountsKept(id)
	w.expectNoTokenInEvents()
}

// Foreground deletion of a PartnerAccount: it stays (Terminating) until every LoginLink and
// Secret under it is gone; a Secret held by a finalizer holds the whole chain. No LoginLink
// generates meanwhile, even when its Secret goes first.
func TestDeletePartnerAccountForeground(t *testing.T) {
	w := newWorld(t)
	id := w.account("fg")
	held := w.secretOf("fg-holder")
	hold(w.g, held)
	t.Cleanup(func() { release(w.g, held) })
	calls := w.apiCalls()

	w.g.Expect(k8s.Delete(ctx, &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "fg"}},
		client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())
	// The spouse's LoginLink and Secret go; the holder's LoginLink waits for its held Secret,
	// and the PartnerAccount for it.
	w.g.Eventually(func(g Gomega) []string { return w.dependents(g) }).Should(ConsistOf("LoginLink fg-holder", "Secret "+held.Name))
	w.g.Consistently(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, w.key("fg"), pa)).To(Succeed(), "the PartnerAccount stays while a dependent does")
		g.Expect(pa.DeletionTimestamp).NotTo(BeNil())
		g.Expect(pa.Finalizers).To(ContainElement(metav1.FinalizerDeleteDependents))
		ll := &partnersv1.LoginLink{}
		g.Expect(k8s.Get(ctx, w.key("fg-holder"), ll)).To(Succeed())
		g.Expect(ll.DeletionTimestamp).NotTo(BeNil())
		g.Expect(w.dependents(g)).To(ConsistOf("LoginLink fg-holder", "Secret "+held.Name))
	}).Should(Succeed())

	release(w.g, held)
	w.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, w.key("fg"), &partnersv1.PartnerAccount{})).To(Satisfy(isGone))
	}).Should(Succeed())
	// Gone only now, so after its dependents.
	w.g.Expect(w.dependents(w.g)).To(BeEmpty())

	w.g.Expect(w.apiCalls()).To(Equal(calls), "deleting a PartnerAccount calls nothing")
	w.expectAccountsKept(id)
	w.expectNoTokenInEvents()
}

// A PartnerAccount held Terminating (by a finalizer, as another controller or a foreground
// deletion would) keeps its LoginLinks; when their Secrets are deleted meanwhile, they never
// generate a link: the Secret would be collected with its owner, and the link with it.
func TestOwnerTerminatingNeverGenerates(t *testing.T) {
	w := newWorld(t)
	id := w.account("owner")
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "owner"}}
	hold(w.g, pa)
	t.Cleanup(func() { release(w.g, pa) })
	holderSecret, spouseSecret := w.secretOf("owner-holder"), w.secretOf("owner-spouse")
	calls := w.apiCalls()

	w.g.Expect(k8s.Delete(ctx, pa, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	w.g.Expect(k8s.Get(ctx, w.key("owner"), pa)).To(Succeed())
	w.g.Expect(pa.DeletionTimestamp).NotTo(BeNil())
	w.g.Expect(k8s.Delete(ctx, holderSecret)).To(Succeed())
	w.g.Expect(k8s.Delete(ctx, spouseSecret)).To(Succeed())
	w.g.Consistently(func(g Gomega) {
		g.Expect(w.dependents(g)).To(ConsistOf("LoginLink owner-holder", "LoginLink owner-spouse"))
		g.Expect(w.apiCalls()).To(Equal(calls))
	}).Should(Succeed(), "no link is generated for a LoginLink whose owner is Terminating")

	release(w.g, pa)
	w.g.Eventually(func(g Gomega) []string { return w.dependents(g) }).Should(BeEmpty())
	w.g.Expect(w.apiCalls()).To(Equal(calls))
	w.expectAccountsKept(id)
}

// Deleting a namespace removes every PartnerAccount, LoginLink and Secret in it, without a
// single call to the API, and keeps the accounts.
func TestDeleteNamespace(t *testing.T) {
	w := newWorld(t)
	var ids []int64
	for _, name := range []string{"a", "b", "c"} {
		ids = append(ids, w.account(name))
	}
	// A LoginLink by accountID, not owned by any PartnerAccount.
	w.g.Expect(k8s.Create(ctx, &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "by-id"},
		Spec: partnersv1.LoginLinkSpec{AccountID: &ids[0], UserEmail: "a@example.com", SendNotification: ptr.To(false)}})).To(Succeed())
	w.g.Eventually(func(g Gomega) {
		var lls partnersv1.LoginLinkList
		g.Expect(k8s.List(ctx, &lls, client.InNamespace(w.ns))).To(Succeed())
		for _, ll := range lls.Items {
			_, r := readyReason(ll.Status.Conditions)
			g.Expect(r).NotTo(BeEmpty(), "LoginLink %s reconciled", ll.Name)
		}
		// The holder's two LoginLinks settle: one holds the user, the other is Superseded.
		g.Expect(w.simAccounts()).To(ContainElement(HaveField("ID", ids[0])))
	}).Should(Succeed())
	calls := w.settle()

	w.g.Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}})).To(Succeed())
	w.g.Eventually(func() error {
		return k8s.Get(ctx, client.ObjectKey{Name: w.ns}, &corev1.Namespace{})
	}).Should(Satisfy(isGone), "the namespace controller empties and removes the namespace")
	w.g.Expect(w.dependents(w.g)).To(BeEmpty())
	var pas partnersv1.PartnerAccountList
	w.g.Expect(k8s.List(ctx, &pas, client.InNamespace(w.ns))).To(Succeed())
	w.g.Expect(pas.Items).To(BeEmpty())
	w.g.Expect(w.apiCalls()).To(Equal(calls), "deleting a namespace calls nothing")
	w.expectAccountsKept(ids...)
}

// A LoginLink of a Terminating namespace never generates a link, even when its Secret is
// deleted before it: kube-controller-manager is paused so that the namespace controller has
// not deleted the LoginLinks yet, as it may not have in a large namespace.
func TestNamespaceTerminatingNeverGenerates(t *testing.T) {
	w := newWorld(t)
	id := w.account("ns")
	byID := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "by-id"},
		Spec: partnersv1.LoginLinkSpec{AccountID: &id, UserEmail: "ns-spouse@example.com", SecretName: "by-id",
			SendNotification: ptr.To(false)}}
	w.g.Expect(k8s.Create(ctx, byID)).To(Succeed())
	w.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, w.key("by-id"), byID)).To(Succeed())
		_, r := readyReason(byID.Status.Conditions)
		g.Expect(r).NotTo(BeEmpty())
	}).Should(Succeed())
	w.settle()
	secrets := []*corev1.Secret{w.secretOf("ns-holder")}
	var spouse corev1.SecretList
	w.g.Expect(k8s.List(ctx, &spouse, client.InNamespace(w.ns), client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue})).To(Succeed())
	for i := range spouse.Items {
		if spouse.Items[i].Name != secrets[0].Name {
			secrets = append(secrets, &spouse.Items[i])
		}
	}
	calls := w.apiCalls()

	resume, err := testenv.PauseControllerManager(env)
	w.g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(resume)
	w.g.Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}})).To(Succeed())
	ns := &corev1.Namespace{}
	w.g.Expect(k8s.Get(ctx, client.ObjectKey{Name: w.ns}, ns)).To(Succeed())
	w.g.Expect(ns.DeletionTimestamp).NotTo(BeNil())
	for _, s := range secrets {
		w.g.Expect(k8s.Delete(ctx, s)).To(Succeed())
	}
	w.g.Consistently(func(g Gomega) {
		g.Expect(w.dependents(g)).To(ConsistOf("LoginLink ns-holder", "LoginLink ns-spouse", "LoginLink by-id"))
		g.Expect(w.apiCalls()).To(Equal(calls))
	}).Should(Succeed(), "no link is generated for a LoginLink whose namespace is Terminating")

	resume()
	w.g.Eventually(func() error {
		return k8s.Get(ctx, client.ObjectKey{Name: w.ns}, &corev1.Namespace{})
	}).Should(Satisfy(isGone))
	w.g.Expect(w.apiCalls()).To(Equal(calls))
	w.expectAccountsKept(id)
}

// The deployment controller runs: a new pod template annotation (a restart, as kubectl
// rollout restart writes it) makes a new ReplicaSet.
func TestDeploymentRestartAnnotation(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(timeout)
	g.SetDefaultEventuallyPollingInterval(poll)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-deploy-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, ns) })
	const annotation = "partners.fifteenth.com/restartedAt"
	labels := map[string]string{"app": "consumer"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "consumer"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{annotation: "2026-01-01T00:00:00Z"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/consumer:1"}}}}}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())

	replicaSets := func(g Gomega) map[string]string { // name -> the annotation in its template
		var rss appsv1.ReplicaSetList
		g.Expect(k8s.List(ctx, &rss, client.InNamespace(ns.Name))).To(Succeed())
		out := map[string]string{}
		for _, rs := range rss.Items {
			if metav1.IsControlledBy(&rs, d) {
				out[rs.Name] = rs.Spec.Template.Annotations[annotation]
			}
		}
		return out
	}
	g.Eventually(replicaSets).Should(HaveLen(1))
	g.Expect(replicaSets(g)).To(ContainElement("2026-01-01T00:00:00Z"))

	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Annotations[annotation] = "2026-01-02T00:00:00Z"
	g.Expect(k8s.Patch(ctx, d, patch)).To(Succeed())
	g.Eventually(replicaSets).Should(And(HaveLen(2), ContainElement("2026-01-01T00:00:00Z"), ContainElement("2026-01-02T00:00:00Z")))
}

package controllers_test

// Adversarial tests of the election (review of issue 9). Each drives the real reconcilers
// against the simulator.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// startSecondManager starts another manager on the harness's namespace (no leader election),
// with cfg's transport optionally wrapped. It is stopped at cleanup.
func (h *harness) startSecondManager(wrap func(http.RoundTripper) http.RoundTripper) *testenv.LogBuffer {
	h.t.Helper()
	cfg := rest.CopyConfig(restCfg)
	if wrap != nil {
		cfg.WrapTransport = wrap
	}
	logs := &testenv.LogBuffer{}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapcore.Level(-1))),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	c, cancel := context.WithCancel(context.Background())
	h.g.Expect(controllers.Setup(c, mgr, controllers.Config{
		API: h.api, APIEndpoint: h.simURL, APITimeout: 5 * time.Second, ElectionNamespace: h.ns,
		AccountAccessNamespaces: strings.Join(h.grants, ","), SecretTTL: 300 * time.Millisecond,
		Controller: controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4},
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(c)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
		if dir := os.Getenv("TEST_LOG_DIR"); dir != "" && h.t.Failed() {
			_ = os.WriteFile(dir+"/"+h.t.Name()+".second.log", []byte(logs.String()), 0o600)
		}
		if strings.Contains(logs.String(), "tk_") {
			h.t.Errorf("a token appears in the second manager's logs")
		}
	})
	return logs
}

// slowLeaseReads delays every GET of a Lease by d: a replica with a slow API server.
type slowLeaseReads struct {
	next http.RoundTripper
	d    time.Duration
	n    *atomic.Int64
}

func (s slowLeaseReads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/leases/") {
		s.n.Add(1)
		time.Sleep(s.d)
	}
	return s.next.RoundTrip(req)
}

// Two replicas without leader election (or a leader handover), one of them with slow Lease
// reads. One LoginLink, no competitor: exactly one generation is needed. The slow replica
// decides on a Secret read taken before the fast one stored its link, then finds the Lease no
// longer in flight and generates again, killing the link the fast one stored and reported.
func TestReviewTwoManagersSlowLeaseReadGeneratesTwice(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{Faults: sim.Faults{Latency: sim.Duration(time.Second), LatencyRate: 1}}})
	var n atomic.Int64
	h.startSecondManager(func(rt http.RoundTripper) http.RoundTripper {
		return slowLeaseReads{next: rt, d: 1500 * time.Millisecond, n: &n}
	})
	id := h.createAccount("slow@example.com")
	h.create(linkFor("a", id))
	first := h.expectHolds("a")
	// While the slow replica finishes its pass: still one generation, the first link valid.
	h.g.Consistently(func(g Gomega) {
		g.Expect(h.linkCalls()["200"]).To(Equal(1), "generations for one LoginLink and one user")
		g.Expect(h.linkState(first)).To(Equal(sim.StateValid), "the link a was first Ready with is still valid")
	}).WithTimeout(5 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	t.Logf("slow Lease reads: %d; link calls: %v", n.Load(), h.linkCalls())
	h.assertInvariant()
}

// Two replicas, no artificial delay: ten users, each with two LoginLinks created in the same
// second. At most two generations per user, as with one manager, and the invariant holds.
func TestReviewTwoManagersSameSecond(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.startSecondManager(nil)
	const n = 10
	ids := make([]int64, n)
	for i := range n {
		ids[i] = h.createAccount(fmt.Sprintf("two%d@example.com", i))
	}
	for i := range n {
		email := fmt.Sprintf("two%d@example.com", i)
		h.create(linkFor(fmt.Sprintf("t%d-a", i), ids[i]))
		h.create(linkFor(fmt.Sprintf("t%d-b", i), ids[i], forUser(strings.ToUpper(email))))
	}
	for i := range n {
		h.expectHolds(fmt.Sprintf("t%d-b", i))
		h.expectLinkReason(fmt.Sprintf("t%d-a", i), metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	}
	h.assertInvariant()
	for i := range n {
		acct := h.simAccount(h.g, ids[i])
		h.g.Expect(total(acct.Links)-1).To(BeNumerically("<=", 2), "generations for %s", acct.Email)
	}
}

// Two replicas renewing at 3600x: the holder's renewals are not doubled and the invariant
// holds at the end.
func TestReviewTwoManagersRenewals(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	h.startSecondManager(nil)
	id := h.createAccount("renew2@example.com")
	h.create(linkFor("a", id, oneHourLinks))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, oneHourLinks, forUser("renew2@example.com")))
	h.expectHolds("b")
	start := h.linkCalls()["200"]
	begin := time.Now()
	h.expectRenews("b", 5)
	elapsed := time.Since(begin)
	gens := h.linkCalls()["200"] - start
	t.Logf("%d generations in %s (1-hour links at 3600x: one renewal every ~0.67 s)", gens, elapsed)
	h.g.Expect(float64(gens)).To(BeNumerically("<=", elapsed.Seconds()/0.6+2), "renewals are not doubled")
	h.g.Eventually(h.invariant).Should(Succeed())
}

// A LoginLink whose link expired with renewal Disabled, then annotated renew-requested-at:
// docs/operations.md says the annotation ends Expired ("change the spec or annotate
// renew-requested-at"), and reference.md "renew once, now".
func TestReviewExpiredThenRenewRequested(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	id := h.createAccount("expired@example.com")
	h.create(linkFor("d", id, oneHourLinks, func(s *partnersv1.LoginLinkSpec) {
		s.Renewal = &partnersv1.Renewal{Policy: partnersv1.RenewalPolicyDisabled}
	}))
	h.expectLinkReason("d", metav1.ConditionFalse, partnersv1.ReasonExpired)
	before := h.linkCalls()["200"]
	h.updateLL("d", func(ll *partnersv1.LoginLink) {
		ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	})
	h.g.Eventually(func() int { return h.linkCalls()["200"] }).WithTimeout(5*time.Second).
		Should(Equal(before+1), "the renewal request generates a link")
}

// The holder renews at 3600x while a newer LoginLink's spec flaps between a forbidden and a
// permitted redirect URL. At every sample no Ready LoginLink holds an invalidated link (up to
// the renewal window), and at the end the invariant holds.
func TestReviewFlappingEligibility(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	h.dumpOnFailure()
	id := h.createAccount("flap@example.com")
	h.create(linkFor("a", id, oneHourLinks))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, oneHourLinks, forUser("flap@example.com")))
	h.expectHolds("b")
	for i := range 8 {
		h.updateLL("b", func(b *partnersv1.LoginLink) {
			if i%2 == 0 {
				b.Spec.RedirectURL = badRedirect
			} else {
				b.Spec.RedirectURL = ""
			}
		})
		time.Sleep(700 * time.Millisecond)
	}
	// Last state: b permitted again (i=7 → ""): b holds.
	h.expectHolds("b")
	h.g.Eventually(h.invariant).Should(Succeed())
	// Then b forbidden: a takes over.
	h.updateLL("b", func(b *partnersv1.LoginLink) { b.Spec.RedirectURL = badRedirect })
	h.expectLinkReason("b", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
	h.expectHolds("a")
	h.g.Eventually(h.invariant).Should(Succeed())
}

// An accountRef LoginLink (the PartnerAccount's holder) and a newer accountID LoginLink for the
// same user in another case: the newer holds, the PartnerAccount is Ready and names it; after
// it is deleted the PartnerAccount's holder takes over with a fresh link.
func TestReviewAccountIDAndAccountRefCase(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.create(account("acme", "Acme@Example.com"))
	h.expectAccountReason("acme", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectHolds("acme-holder")
	id := h.partnerAccount("acme").Status.AccountID
	h.afterCreationSecond(h.loginLink("acme-holder"))
	h.create(linkFor("x", id, forUser("ACME@example.COM")))
	h.expectHolds("x")
	h.expectLinkReason("acme-holder", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.assertInvariant()
	h.expectAccountReady("acme")
	// And one without userEmail (the primary holder): newer still.
	h.afterCreationSecond(h.loginLink("x"))
	h.create(linkFor("y", id))
	h.expectHolds("y")
	h.expectLinkReason("x", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.assertInvariant()
	h.g.Expect(k8s.Delete(ctx, h.loginLink("y"))).To(Succeed())
	h.g.Expect(k8s.Delete(ctx, h.loginLink("x"))).To(Succeed())
	h.expectHolds("acme-holder")
	h.assertInvariant()
	h.g.Eventually(func(g Gomega) int { return h.simAccount(g, id).Links[sim.StateValid] }).Should(Equal(1))
}

// Steady state with competing LoginLinks and a PartnerAccount: few reconciles, no status
// writes, also after an unrelated annotation change on a Superseded and on a Ready LoginLink.
func TestReviewSteadyStateQuiet(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: time.Hour})
	h.create(account("fam", "fam@example.com", withSpouse("sp@example.com")))
	h.expectHolds("fam-holder")
	h.expectHolds("fam-spouse")
	id := h.partnerAccount("fam").Status.AccountID
	h.afterCreationSecond(h.loginLink("fam-holder"))
	h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "z-old"},
		Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: "fam"}, SendNotification: ptr.To(false)}})
	h.expectHolds("z-old")
	h.afterCreationSecond(h.loginLink("z-old"))
	h.create(linkFor("x", id, forUser("FAM@example.com")))
	h.create(linkFor("y", id, forUser("sp@example.com")))
	h.expectHolds("x")
	h.expectHolds("y")
	h.assertInvariant()
	h.expectAccountReady("fam")

	rvs := func(g Gomega) map[string]string { return h.resourceVersions(g, true) }
	snapshot := h.settled(true)
	baseLL, basePA := reconciles("loginlink"), reconciles("partneraccount")
	h.g.Consistently(func(g Gomega) {
		g.Expect(reconciles("loginlink") - baseLL).To(BeNumerically("<=", 3))
		g.Expect(reconciles("partneraccount") - basePA).To(BeNumerically("<=", 3))
	}).WithTimeout(3 * time.Second).Should(Succeed())
	t.Logf("steady 3 s: loginlink reconciles %v, partneraccount %v", reconciles("loginlink")-baseLL, reconciles("partneraccount")-basePA)

	for _, name := range []string{"fam-holder", "x", "z-old"} {
		ll := h.loginLink(name)
		if ll.Annotations == nil {
			ll.Annotations = map[string]string{}
		}
		ll.Annotations["example.com/unrelated"] = "1"
		h.g.Expect(k8s.Update(ctx, ll)).To(Succeed())
		snapshot["LoginLink/"+name] = ll.ResourceVersion
	}
	baseLL = reconciles("loginlink")
	h.g.Consistently(rvs).WithTimeout(2*time.Second).Should(Equal(snapshot), "resourceVersions after unrelated annotations")
	t.Logf("after annotations: loginlink reconciles %v", reconciles("loginlink")-baseLL)
	h.g.Expect(reconciles("loginlink") - baseLL).To(BeNumerically("<=", 10))
	h.assertInvariant()
}

var _ = sync.Mutex{}

// deadLinks returns the Secrets of the namespace that hold a link the simulator reports
// invalidated while they do not say who holds the user (no held-by annotation): a consumer
// cannot tell them from a working link (expires_at is in the future).
func (h *harness) deadLinks(g Gomega) []string {
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, inNS(h.ns))).To(Succeed())
	var out []string
	for i := range secrets.Items {
		s := &secrets.Items[i]
		link := secretLinkOf(s)
		if link == "" {
			continue
		}
		if st := h.linkInfo(g, link); st.State == sim.StateInvalidated {
			if _, ok := s.Annotations[partnersv1.AnnotationHeldBy]; !ok {
				out = append(out, s.Name)
			}
		}
	}
	return out
}

// Two PartnerAccounts adopting the same account in one apply, five times: the older keeps the
// account; the younger loses its claim after its holder may have generated. At the end the
// older's holder holds a valid link, the invariant holds, and no Secret keeps an invalidated
// link that looks valid.
func TestReviewSimultaneousAdoptionLosesClaim(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.dumpOnFailure()
	const n = 5
	ids := make([]int64, n)
	for i := range n {
		ids[i] = h.createAccount(fmt.Sprintf("both%d@example.com", i))
	}
	for i := range n {
		id := ids[i]
		pin := func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &id }
		h.create(account(fmt.Sprintf("p%d-a", i), fmt.Sprintf("both%d@example.com", i), pin))
		h.create(account(fmt.Sprintf("p%d-b", i), fmt.Sprintf("both%d@example.com", i), pin))
	}
	for i := range n {
		h.expectAccountReady(fmt.Sprintf("p%d-a", i))
		h.expectAccountReason(fmt.Sprintf("p%d-b", i), metav1.ConditionFalse, partnersv1.ReasonAccountClaimed)
		h.expectHolds(fmt.Sprintf("p%d-a-holder", i))
	}
	h.assertInvariant()
	h.g.Eventually(func(g Gomega) []string { return h.deadLinks(g) }).Should(BeEmpty(), "Secrets holding an invalidated link")
	for i := range n {
		h.g.Expect(h.simAccount(h.g, ids[i]).Links[sim.StateValid]).To(Equal(1))
		t.Logf("account %d: links %v", ids[i], h.simAccount(h.g, ids[i]).Links)
	}
}

// A PartnerAccount deleted (with what the garbage collector would delete) and re-created with
// the same name: the new one adopts the account after the 409 and its holder holds.
func TestReviewPartnerAccountRecreated(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.create(account("re", "re@example.com", withSpouse("re-sp@example.com")))
	h.expectAccountReason("re", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectHolds("re-holder")
	h.expectHolds("re-spouse")
	id := h.partnerAccount("re").Status.AccountID
	old := h.partnerAccount("re")
	h.g.Expect(k8s.Delete(ctx, old)).To(Succeed())
	var lls partnersv1.LoginLinkList
	h.g.Expect(k8s.List(ctx, &lls, inNS(h.ns))).To(Succeed())
	for i := range lls.Items {
		if metav1.IsControlledBy(&lls.Items[i], old) {
			var ss corev1.SecretList
			h.g.Expect(k8s.List(ctx, &ss, inNS(h.ns))).To(Succeed())
			for j := range ss.Items {
				if metav1.IsControlledBy(&ss.Items[j], &lls.Items[i]) {
					h.g.Expect(k8s.Delete(ctx, &ss.Items[j])).To(Succeed())
				}
			}
			h.g.Expect(k8s.Delete(ctx, &lls.Items[i])).To(Succeed())
		}
	}
	h.create(account("re", "re@example.com", withSpouse("re-sp@example.com")))
	h.expectAccountReady("re")
	h.g.Expect(h.partnerAccount("re").Status.AccountID).To(Equal(id))
	h.expectHolds("re-holder")
	h.expectHolds("re-spouse")
	h.assertInvariant()
}

// A superseded LoginLink: its spec.secretName changes, it is annotated renew-requested-at, and
// its retired Secret is edited back to the old (invalidated) link by hand. It calls nothing,
// shows no dead link, and takes over with a fresh link when the holder goes.
func TestReviewSupersededEdits(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id := h.createAccount("sup@example.com")
	h.create(linkFor("a", id))
	h.expectHolds("a")
	snap := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, h.key("a"), snap)).To(Succeed())
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, forUser("sup@example.com")))
	h.expectHolds("b")
	h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.g.Eventually(func() string { return h.secretLink("a") }).Should(BeEmpty())
	calls := h.linkCalls()["200"]

	// The Secret edited back by hand to the old link.
	cur := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, h.key("a"), cur)).To(Succeed())
	cur.Data, cur.Annotations = snap.Data, snap.Annotations
	h.g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	h.g.Eventually(func(g Gomega) []string { return h.deadLinks(g) }).Should(BeEmpty(), "the restored dead link is removed again")

	// renew-requested-at on the superseded one: no call.
	h.updateLL("a", func(a *partnersv1.LoginLink) {
		a.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	})
	h.g.Consistently(func() int { return h.linkCalls()["200"] }).WithTimeout(2 * time.Second).Should(Equal(calls))

	// secretName changes while superseded: no call; the old Secret goes.
	h.updateLL("a", func(a *partnersv1.LoginLink) { a.Spec.SecretName = "a2" })
	h.g.Consistently(func() int { return h.linkCalls()["200"] }).WithTimeout(2 * time.Second).Should(Equal(calls))
	h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.assertInvariant()

	// The holder goes: a takes over into a2.
	h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
	h.expectHolds("a")
	h.g.Expect(h.linkCalls()["200"]).To(Equal(calls + 1))
	h.assertInvariant()
}

// The holder's Secret deleted, then the user's Lease deleted by hand, then the holder deleted:
// every step ends with one valid link held by a Ready LoginLink.
func TestReviewLeaseAndSecretDeleted(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id := h.createAccount("del@example.com")
	h.create(linkFor("a", id))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, forUser("del@example.com")))
	first := h.expectHolds("b")
	h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)

	h.g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "b"}})).To(Succeed())
	h.g.Eventually(func(g Gomega) { g.Expect(h.holds(g, "b")).NotTo(Equal(first)) }).Should(Succeed())
	h.assertInvariant()

	var leases coordinationv1.LeaseList
	h.g.Expect(k8s.List(ctx, &leases, inNS(h.ns))).To(Succeed())
	for i := range leases.Items {
		h.g.Expect(k8s.Delete(ctx, &leases.Items[i])).To(Succeed())
	}
	h.assertInvariant()
	h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
	h.expectHolds("a")
	h.assertInvariant()
	h.g.Eventually(func(g Gomega) int { return h.simAccount(g, id).Links[sim.StateValid] }).Should(Equal(1))
}

// dumpOnFailure logs the LoginLinks', PartnerAccounts' and Leases' state when the test fails.
func (h *harness) dumpOnFailure() {
	h.t.Cleanup(func() {
		if !h.t.Failed() {
			return
		}
		var lls partnersv1.LoginLinkList
		_ = k8s.List(ctx, &lls, inNS(h.ns))
		for _, ll := range lls.Items {
			s, r := readyOf(ll.Status.Conditions)
			msg := ""
			for _, c := range ll.Status.Conditions {
				msg = c.Message
			}
			h.t.Logf("LoginLink %s created %s: %s %s %q status.accountID=%d userEmail=%s", ll.Name,
				ll.CreationTimestamp.Format(time.RFC3339), s, r, msg, ll.Status.AccountID, ll.Status.UserEmail)
		}
		var pas partnersv1.PartnerAccountList
		_ = k8s.List(ctx, &pas, inNS(h.ns))
		for _, pa := range pas.Items {
			s, r := readyOf(pa.Status.Conditions)
			h.t.Logf("PartnerAccount %s created %s: %s %s %q accountID=%d users=%+v", pa.Name,
				pa.CreationTimestamp.Format(time.RFC3339), s, r, paMessage(&pa), pa.Status.AccountID, pa.Status.Users)
		}
		var leases coordinationv1.LeaseList
		_ = k8s.List(ctx, &leases, inNS(h.ns))
		for _, l := range leases.Items {
			h.t.Logf("Lease %s holder=%s annotations=%v", l.Name, ptr.Deref(l.Spec.HolderIdentity, ""), l.Annotations)
		}
	})
}

// The holder of a user is re-targeted to another account (spec.accountID edited): it no longer
// competes for the user, so the older LoginLink of the user takes over with a fresh link.
func TestReviewHolderRetargeted(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.dumpOnFailure()
	id := h.createAccount("retarget@example.com")
	other := h.createAccount("elsewhere@example.com")
	h.create(linkFor("a", id))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, forUser("retarget@example.com")))
	h.expectHolds("b")
	h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)

	h.updateLL("b", func(b *partnersv1.LoginLink) { b.Spec.AccountID, b.Spec.UserEmail = &other, "" })
	h.expectHolds("b") // for its new account
	// Wake a (in case only a watch is missing): an unrelated annotation.
	h.updateLL("a", func(a *partnersv1.LoginLink) { a.Annotations = map[string]string{"example.com/poke": "1"} })
	h.expectHolds("a")
	h.assertInvariant()
}

// Faults and restarts with competing LoginLinks: 8 PartnerAccounts, each with an older and a
// newer LoginLink for its holder, the simulator failing 10 % of calls before and 25 % after
// their effect, the manager restarted three times; then the faults stop. The invariant holds
// and no Secret keeps an invalidated link that looks valid.
func TestReviewFaultsAndRestarts(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{Seed: 7}})
	h.dumpOnFailure()
	h.simPost("/_sim/faults", `{"fail_rate": 0.1, "fail_after_commit_rate": 0.25}`)
	const n = 8
	for i := range n {
		h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("f%d-old", i)},
			Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: fmt.Sprintf("f%d", i)}, SendNotification: ptr.To(false)}})
		h.create(account(fmt.Sprintf("f%d", i), fmt.Sprintf("f%d@example.com", i)))
	}
	time.Sleep(1100 * time.Millisecond)
	for i := range n {
		h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("f%d-new", i)},
			Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: fmt.Sprintf("f%d", i)},
				UserEmail: fmt.Sprintf("F%d@example.com", i), SendNotification: ptr.To(false)}})
	}
	for range 3 {
		time.Sleep(1500 * time.Millisecond)
		h.stopManager()
		h.startManager(0)
	}
	h.simPost("/_sim/faults", `{}`)
	for i := range n {
		h.g.Eventually(func(g Gomega) { h.holds(g, fmt.Sprintf("f%d-new", i)) }).WithTimeout(90 * time.Second).Should(Succeed())
	}
	h.assertInvariant()
	h.g.Eventually(func(g Gomega) []string { return h.deadLinks(g) }).Should(BeEmpty(), "Secrets holding an invalidated link")
	for i := range n {
		h.expectAccountReady(fmt.Sprintf("f%d", i))
	}
	t.Logf("link calls: %v", h.linkCalls())
}

// The same with a spec change (the other remedy docs/operations.md names for Expired): a new
// spec means a new link.
func TestReviewExpiredThenSpecChanged(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	id := h.createAccount("expired2@example.com")
	h.create(linkFor("d", id, oneHourLinks, func(s *partnersv1.LoginLinkSpec) {
		s.Renewal = &partnersv1.Renewal{Policy: partnersv1.RenewalPolicyDisabled}
	}))
	h.expectLinkReason("d", metav1.ConditionFalse, partnersv1.ReasonExpired)
	before := h.linkCalls()["200"]
	h.updateLL("d", func(ll *partnersv1.LoginLink) { ll.Spec.ExpiryHours = ptr.To[int32](2) })
	h.g.Eventually(func() int { return h.linkCalls()["200"] }).WithTimeout(5*time.Second).
		Should(Equal(before+1), "the new spec generates a link")
}

// The holder renews at 3600x while a newer LoginLink of the same name is created and deleted
// repeatedly (without waiting for it to settle). At the end the invariant holds.
func TestReviewChurnDuringRenewals(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	h.dumpOnFailure()
	id := h.createAccount("churn@example.com")
	h.create(linkFor("a", id, oneHourLinks))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	for i := range 8 {
		h.create(linkFor("b", id, oneHourLinks, forUser("churn@example.com")))
		time.Sleep(time.Duration(150+100*i) * time.Millisecond)
		h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
		h.g.Eventually(func() bool { return k8s.Get(ctx, h.key("b"), &partnersv1.LoginLink{}) != nil }).Should(BeTrue())
		// envtest has no garbage collector.
		_ = k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "b"}})
		time.Sleep(200 * time.Millisecond)
	}
	h.expectHolds("a")
	h.g.Eventually(h.invariant).Should(Succeed())
	h.expectRenews("a", 2)
	t.Logf("link calls: %v", h.linkCalls())
}

// The manager is killed while a newer LoginLink's generation is in flight (the API committed
// it: the older one's link is invalidated), and the newer LoginLink is deleted before the
// manager comes back. The user's Lease still records the older one's link as current, so the
// older one takes over without generating: Ready with an invalidated link.
func TestReviewKilledMidGenerationThenNewcomerDeleted(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.dumpOnFailure()
	id := h.createAccount("killed@example.com")
	h.create(linkFor("a", id))
	first := h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	// Answers come 2 s after their effect.
	h.simPost("/_sim/faults", `{"latency": "2s", "latency_rate": 1}`)
	h.create(linkFor("b", id, forUser("killed@example.com")))
	h.g.Eventually(func(g Gomega) string { return h.linkInfo(g, first).State }).Should(Equal(sim.StateInvalidated),
		"b's generation took effect")
	h.stopManager()
	h.simPost("/_sim/faults", `{}`)
	h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
	_ = k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "b"}})
	h.startManager(0)
	h.expectHolds("a")
	h.assertInvariant()
}

// A newer LoginLink with a forbidden redirect URL, annotated renew-requested-at with a
// sub-second time (date +%FT%T.%NZ): one more call, not a burst, and the older one keeps
// holding with a valid link.
func TestReviewTerminalRenewRequestSubSecond(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id := h.createAccount("subsec@example.com")
	h.create(linkFor("a", id))
	h.expectHolds("a")
	h.afterCreationSecond(h.loginLink("a"))
	h.create(linkFor("b", id, forUser("subsec@example.com"), func(s *partnersv1.LoginLinkSpec) { s.RedirectURL = badRedirect }))
	h.expectLinkReason("b", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
	h.g.Expect(h.linkCalls()["400"]).To(Equal(1))
	for i := range 3 {
		h.updateLL("b", func(b *partnersv1.LoginLink) {
			b.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		})
		h.g.Eventually(func() int { return h.linkCalls()["400"] }).Should(BeNumerically(">=", 2+i))
		h.g.Consistently(func() int { return h.linkCalls()["400"] }).WithTimeout(3500*time.Millisecond).
			Should(Equal(2+i), "calls after renewal request %d", i+1)
	}
	h.expectHolds("a")
	h.assertInvariant()
}

// A LoginLink whose generations fail with 5xx backs off exponentially (base 1 s, cap 1 min):
// over 4 s a handful of calls, not one per Lease write.
func TestReviewBackoffOn5xx(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id := h.createAccount("backoff@example.com")
	h.simPost("/_sim/faults", `{"fail_rate": 1}`)
	base := reconciles("loginlink")
	h.create(linkFor("a", id, forUser("backoff@example.com")))
	time.Sleep(4 * time.Second)
	calls := h.linkCalls()
	t.Logf("over 4 s: link calls %v, loginlink reconciles %v", calls, reconciles("loginlink")-base)
	h.g.Expect(total(calls)).To(BeNumerically("<=", 5), "link calls while the API fails")
	h.simPost("/_sim/faults", `{}`)
}

// A LoginLink meeting a 429 (reset in 2 s) waits for the reset: one call before, one after.
func TestReviewWaitOn429(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id := h.createAccount("wait429@example.com")
	h.simPost("/_sim/faults", `{"rate_limit_next": 1}`)
	base := reconciles("loginlink")
	h.create(linkFor("a", id, forUser("wait429@example.com")))
	h.expectHolds("a")
	time.Sleep(time.Second)
	t.Logf("link calls %v, loginlink reconciles %v", h.linkCalls(), reconciles("loginlink")-base)
	h.g.Expect(total(h.linkCalls())).To(Equal(2))
	h.g.Expect(reconciles("loginlink") - base).To(BeNumerically("<=", 8))
}

// updateLL changes a LoginLink, retrying on conflicts (the controller writes its status).
func (h *harness) updateLL(name string, mutate func(*partnersv1.LoginLink)) {
	h.t.Helper()
	h.g.Eventually(func() error {
		ll := &partnersv1.LoginLink{}
		if err := k8s.Get(ctx, h.key(name), ll); err != nil {
			return err
		}
		mutate(ll)
		return k8s.Update(ctx, ll)
	}).Should(Succeed())
}

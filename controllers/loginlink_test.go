package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

var ctx = context.Background()

// Renewal runs for real at 1800x: a 1-hour link lasts 2 s and is renewed at about 1.3 s.
// Each renewed link is valid while its predecessor is invalidated.
func TestLoginLinkRenewsBeforeExpiry(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 1800}})
	g := h.g
	id := h.createAccount("renew@example.com")
	h.create(linkFor("renew", id, func(s *partnersv1.LoginLinkSpec) {
		s.ExpiryHours = ptr.To[int32](1)
		s.SecretTemplate = &partnersv1.SecretTemplate{Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "x"}}
	}))

	ll := h.expectLinkReason("renew", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Expect(ll.Status.AccountID).To(Equal(id))
	g.Expect(ll.Status.UserEmail).To(Equal("renew@example.com"))
	g.Expect(ll.Status.SecretName).To(Equal("renew"))
	// Status times have one-second precision (metav1.Time); the Secret keeps nanoseconds.
	g.Expect(ll.Status.ExpiresAt.Sub(ll.Status.GeneratedAt.Time)).To(BeNumerically("~", 2*time.Second, time.Second))
	g.Expect(ll.Status.RenewalTime.Time).To(BeTemporally(">=", ll.Status.GeneratedAt.Time))
	g.Expect(ll.Status.RenewalTime.Time).To(BeTemporally("<=", ll.Status.ExpiresAt.Time))
	g.Expect(ll.Status.RenewBefore.Duration).To(BeNumerically("~", 2*time.Second/3, 50*time.Millisecond), "a third of the actual lifetime")
	g.Expect(ll.Status.NotificationSent).To(Equal(ptr.To(false)))

	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, h.key("renew"), s)).To(Succeed())
	g.Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(s.Data).To(HaveKey(partnersv1.SecretKeyLoginLink))
	g.Expect(string(s.Data[partnersv1.SecretKeyUserEmail])).To(Equal("renew@example.com"))
	g.Expect(string(s.Data[partnersv1.SecretKeyAccountID])).To(Equal(fmt.Sprint(id)))
	_, err := time.Parse(time.RFC3339, string(s.Data[partnersv1.SecretKeyExpiresAt]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Labels).To(HaveKeyWithValue(partnersv1.LabelManagedBy, partnersv1.ManagedByValue))
	g.Expect(s.Labels).To(HaveKeyWithValue("team", "a"))
	g.Expect(s.Annotations).To(HaveKeyWithValue("note", "x"))
	g.Expect(metav1.IsControlledBy(s, ll)).To(BeTrue())

	// Follow three renewals.
	prev := string(s.Data[partnersv1.SecretKeyLoginLink])
	g.Expect(h.linkState(prev)).To(Equal("valid"))
	for i := range 3 {
		var next string
		g.Eventually(func() string { next = h.secretLink("renew"); return next }).WithPolling(10*time.Millisecond).
			ShouldNot(Equal(prev), "renewal %d", i+1)
		g.Expect(h.linkState(next)).To(Equal("valid"), "renewal %d: the new link", i+1)
		g.Expect(h.linkState(prev)).To(Equal("invalidated"), "renewal %d: its predecessor", i+1)
		prev = next
	}
	g.Eventually(func() map[string]int { return h.events("renew") }).Should(And(
		HaveKeyWithValue("Generated", 1), HaveKeyWithValue("Renewed", BeNumerically(">=", 3))))
	h.expectLinkReason("renew", metav1.ConditionTrue, partnersv1.ReasonRenewed)
	g.Expect(h.linkCalls()).To(HaveKeyWithValue("200", BeNumerically(">=", 4)))
	g.Expect(h.linkCalls()).NotTo(HaveKey("429"))

	exp, ok := gauge("fifteenth_login_link_expiration_timestamp_seconds", h.ns, "renew")
	g.Expect(ok).To(BeTrue())
	g.Expect(exp).To(BeNumerically(">", float64(time.Now().Add(-time.Minute).Unix())))
	ready, _ := gauge("fifteenth_login_link_ready", h.ns, "renew")
	g.Expect(ready).To(Equal(1.0))
	_, ok = gauge("fifteenth_login_link_renewal_timestamp_seconds", h.ns, "renew")
	g.Expect(ok).To(BeTrue())
}

// Restarts and resyncs cost nothing: 20 valid LoginLinks, the manager stopped and started
// five times, and the simulator sees zero new calls of any kind.
func TestLoginLinkRestartCostsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	const n = 20
	for i := range n {
		id := h.createAccount(fmt.Sprintf("restart%d@example.com", i))
		h.create(linkFor(fmt.Sprintf("link-%d", i), id))
	}
	for i := range n {
		h.expectLinkReason(fmt.Sprintf("link-%d", i), metav1.ConditionTrue, partnersv1.ReasonGenerated)
	}
	before := h.apiCalls()
	g.Expect(h.linkCalls()["200"]).To(Equal(n))

	for restart := range 5 {
		h.stopManager()
		base := reconciles("loginlink")
		h.startManager(0)
		// Every LoginLink is reconciled again by the new manager...
		g.Eventually(func() float64 { return reconciles("loginlink") - base }).Should(BeNumerically(">=", n), "restart %d", restart+1)
		// ...and none of them calls the API.
		g.Expect(h.apiCalls()).To(Equal(before), "restart %d", restart+1)
	}
	for i := range n {
		g.Expect(h.linkState(h.secretLink(fmt.Sprintf("link-%d", i)))).To(Equal("valid"))
	}
}

// Two LoginLinks for one user: the newer is active, the older calls nothing, and over ten
// renewal periods the generations are the winner's plus at most one. Deleting the winner
// hands the user over to the older one.
func TestLoginLinkSupersededNeverFights(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
	g := h.g
	id := h.createAccount("shared@example.com")
	oneHour := func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }
	// creationTimestamp has one-second precision and ties go to the greater name, so the names
	// sort in creation order.
	h.create(linkFor("a-older", id, oneHour))
	h.expectLinkReason("a-older", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	// Same user, named explicitly: it competes with the one that uses the default user.
	h.create(linkFor("b-newer", id, oneHour, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "SHARED@example.com" }))
	older := h.expectLinkReason("a-older", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	g.Expect(h.events("a-older")).To(HaveKey("Superseded"))
	loserGenerated := older.Status.GeneratedAt

	start := time.Now()
	var winnerGens int
	g.Eventually(func() int {
		ev := h.events("b-newer")
		winnerGens = ev["Generated"] + ev["Renewed"]
		return winnerGens
	}).WithTimeout(30 * time.Second).Should(BeNumerically(">=", 11)) // the first link and ten renewals
	t.Logf("ten renewal periods took %v", time.Since(start).Round(time.Millisecond))

	var accounts []sim.Account
	h.simGet("/_sim/accounts", &accounts)
	ev := h.events("b-newer")
	winnerGens = ev["Generated"] + ev["Renewed"]
	loser := h.events("a-older")
	generations := total(accounts[0].Links) - 1 // minus the creation link
	g.Expect(loser["Generated"]+loser["Renewed"]).To(Equal(1), "the loser generated once, before the winner existed")
	g.Expect(generations).To(BeNumerically("<=", winnerGens+1))
	g.Expect(generations).To(BeNumerically(">=", winnerGens))
	g.Expect(h.loginLink("a-older").Status.GeneratedAt).To(Equal(loserGenerated), "the loser never generated again")
	g.Expect(h.linkCalls()).NotTo(HaveKey("429"))

	g.Expect(k8s.Delete(ctx, h.loginLink("b-newer"))).To(Succeed())
	h.expectLinkReason("a-older", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Eventually(func() string { return h.linkState(h.secretLink("a-older")) }).Should(Equal("valid"))
}

// A redirect URL on a domain the partner may not use costs exactly one call; fixing the spec
// costs one more.
func TestLoginLinkTerminalErrorCostsOneCall(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("terminal@example.com")
	h.create(linkFor("bad-redirect", id, func(s *partnersv1.LoginLinkSpec) { s.RedirectURL = "https://untrusted.com/dashboard" }))
	ll := h.expectLinkReason("bad-redirect", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
	g.Expect(meta(ll).Message).To(ContainSubstring("Redirect URL is not permitted"))
	g.Eventually(func() map[string]int { return h.events("bad-redirect") }).Should(HaveKey("GenerationFailed"))

	// Wake it up a few times: annotations trigger reconciles, none of which calls again.
	for i := range 3 {
		ll = h.loginLink("bad-redirect")
		ll.Annotations = map[string]string{"poke": fmt.Sprint(i)}
		g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	}
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(1))

	ll = h.loginLink("bad-redirect")
	ll.Spec.RedirectURL = "https://app.yourplatform.com/dashboard"
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	h.expectLinkReason("bad-redirect", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Consistently(func() map[string]int { return h.linkCalls() }).Should(Equal(map[string]int{"400": 1, "200": 1}))
}

// The Secret: a foreign one is never overwritten; a deleted or edited one is put back with a
// fresh link; a renewal request renews once.
func TestLoginLinkSecretRules(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("secret@example.com")

	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: h.ns}, StringData: map[string]string{"mine": "yes"}}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
	h.create(linkFor("conflict", id, func(s *partnersv1.LoginLinkSpec) { s.SecretName = "taken" }))
	h.expectLinkReason("conflict", metav1.ConditionFalse, partnersv1.ReasonSecretConflict)
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(0))
	g.Expect(k8s.Get(ctx, h.key("taken"), foreign)).To(Succeed())
	g.Expect(foreign.Data).To(Equal(map[string][]byte{"mine": []byte("yes")}))
	g.Expect(k8s.Delete(ctx, h.loginLink("conflict"))).To(Succeed())

	h.create(linkFor("kept", id, func(s *partnersv1.LoginLinkSpec) { s.SecretName = "kept-secret" }))
	h.expectLinkReason("kept", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	first := h.secretLink("kept-secret")

	// Deleted: put back with a fresh link.
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, h.key("kept-secret"), s)).To(Succeed())
	g.Expect(k8s.Delete(ctx, s)).To(Succeed())
	var second string
	g.Eventually(func() string { second = h.secretLink("kept-secret"); return second }).ShouldNot(Or(BeEmpty(), Equal(first)))
	g.Expect(h.linkState(first)).To(Equal("invalidated"))
	g.Expect(h.linkState(second)).To(Equal("valid"))

	// Edited: put back with a fresh link.
	g.Expect(k8s.Get(ctx, h.key("kept-secret"), s)).To(Succeed())
	s.Data[partnersv1.SecretKeyLoginLink] = []byte("https://example.com/not-a-link")
	g.Expect(k8s.Update(ctx, s)).To(Succeed())
	var third string
	g.Eventually(func() string { third = h.secretLink("kept-secret"); return third }).Should(HavePrefix("https://app.fifteenth.com/"))
	g.Expect(third).NotTo(Equal(second))
	g.Expect(h.linkState(third)).To(Equal("valid"))
	g.Expect(h.linkState(second)).To(Equal("invalidated"))

	// A renewal request renews exactly once.
	calls := total(h.linkCalls())
	ll := h.loginLink("kept")
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() string { return h.secretLink("kept-secret") }).ShouldNot(Equal(third))
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(calls + 1))
	h.expectLinkReason("kept", metav1.ConditionTrue, partnersv1.ReasonRenewed)

	// A changed secretName moves the link and removes the old Secret.
	ll = h.loginLink("kept")
	ll.Spec.SecretName = "moved-secret"
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	g.Eventually(func() string { return h.secretLink("moved-secret") }).ShouldNot(BeEmpty())
	g.Eventually(func() error { return k8s.Get(ctx, h.key("kept-secret"), &corev1.Secret{}) }).Should(MatchError(ContainSubstring("not found")))
}

// API errors become conditions, and none of them loops.
func TestLoginLinkErrorsBecomeConditions(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}, syncPeriod: time.Hour})
	g := h.g
	id := h.createAccount("errors@example.com")

	h.create(linkFor("no-user", id, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "nobody@example.com" }))
	h.expectLinkReason("no-user", metav1.ConditionFalse, partnersv1.ReasonUserNotFound)
	h.create(linkFor("no-account", 999999, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "x@example.com" }))
	h.expectLinkReason("no-account", metav1.ConditionFalse, partnersv1.ReasonAccountNotFound)
	h.create(linkFor("no-account-default-user", 999998))
	h.expectLinkReason("no-account-default-user", metav1.ConditionFalse, partnersv1.ReasonAccountNotFound)
	// The default user of an accountID LoginLink is the holder, learned with one Retrieve
	// Account before anything competes or generates: that read meets the 404.
	g.Consistently(func() map[string]int { return h.linkCalls() }).Should(Equal(map[string]int{"404": 2}), "one call each")
	g.Expect(h.stats().Requests["GET /v1beta/accounts/{id}"]).To(Equal(map[string]int{"404": 1}))

	// The accountant is added to the account: the spec has not changed, so nothing happens
	// until a renewal is requested.
	h.simPost(fmt.Sprintf("/_sim/accounts/%d/users", id), `{"email": "nobody@example.com"}`)
	ll := h.loginLink("no-user")
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	h.expectLinkReason("no-user", metav1.ConditionTrue, partnersv1.ReasonGenerated)

	// A suspended account: one refused call, then it waits.
	suspended := h.createAccount("suspended@example.com")
	h.simPost(fmt.Sprintf("/_sim/accounts/%d/suspend", suspended), "")
	h.create(linkFor("suspended", suspended, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "suspended@example.com" }))
	h.expectLinkReason("suspended", metav1.ConditionFalse, partnersv1.ReasonAccountSuspended)
	g.Consistently(func() int { return h.linkCalls()["403"] }).Should(Equal(1))

	// A 429 burst: RateLimited, then a retry at the reset time succeeds.
	other := h.createAccount("limited@example.com")
	h.simPost("/_sim/faults", `{"rate_limit_next": 1}`)
	h.create(linkFor("limited", other, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "limited@example.com" }))
	h.expectLinkReason("limited", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
	h.expectLinkReason("limited", metav1.ConditionTrue, partnersv1.ReasonGenerated)

	// Renewal disabled: the link expires (1 h at 3600x is one second) and nothing is called.
	third := h.createAccount("expire@example.com")
	h.create(linkFor("expire", third, func(s *partnersv1.LoginLinkSpec) {
		s.ExpiryHours = ptr.To[int32](1)
		s.Renewal = &partnersv1.Renewal{Policy: partnersv1.RenewalPolicyDisabled}
	}))
	h.expectLinkReason("expire", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	calls := total(h.linkCalls())
	h.expectLinkReason("expire", metav1.ConditionFalse, partnersv1.ReasonExpired)
	g.Expect(h.loginLink("expire").Status.RenewalTime).To(BeNil())
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(calls))
}

// accountRef: the LoginLink waits for its PartnerAccount (woken by a watch), then keeps an
// accountant's link; it stops while the account is suspended.
func TestLoginLinkWaitsForItsAccount(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: 300 * time.Millisecond})
	g := h.g
	h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "accountant"},
		Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: "ref"},
			UserEmail: "accountant@example.com", Purpose: "additional_user", SendNotification: ptr.To(false)}})
	h.expectLinkReason("accountant", metav1.ConditionFalse, partnersv1.ReasonAccountNotReady)
	g.Expect(total(h.linkCalls())).To(Equal(0))

	h.create(account("ref", "ref@example.com"))
	pa := h.expectAccountReason("ref", metav1.ConditionTrue, partnersv1.ReasonCreated)
	// The accountant is not a user of the account yet: a terminal UserNotFound.
	h.expectLinkReason("accountant", metav1.ConditionFalse, partnersv1.ReasonUserNotFound)
	h.simPost(fmt.Sprintf("/_sim/accounts/%d/users", pa.Status.AccountID), `{"email": "accountant@example.com"}`)
	ll := h.loginLink("accountant")
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: time.Now().Add(time.Second).UTC().Format(time.RFC3339)}
	g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	ll = h.expectLinkReason("accountant", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	g.Expect(ll.Status.UserEmail).To(Equal("accountant@example.com"))
	g.Expect(ll.Status.AccountID).To(Equal(pa.Status.AccountID))
	g.Expect(h.linkState(h.secretLink("accountant"))).To(Equal("valid"))
	g.Expect(h.linkState(h.secretLink("ref-login-link"))).To(Equal("valid"), "another user's link is left alone")

	h.simPost(fmt.Sprintf("/_sim/accounts/%d/suspend", pa.Status.AccountID), "")
	h.expectLinkReason("accountant", metav1.ConditionFalse, partnersv1.ReasonAccountSuspended)
	g.Expect(h.linkCalls()).NotTo(HaveKey("403"))
}

func meta(ll *partnersv1.LoginLink) metav1.Condition {
	for _, c := range ll.Status.Conditions {
		if c.Type == partnersv1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}

// A LoginLink of a Terminating namespace generates nothing, even when its Secret is deleted
// before it. This suite runs no namespace controller: a deleted namespace stays Terminating
// with its content, as in a cluster before the namespace controller reaches the LoginLinks
// (test/cluster shows the whole deletion).
func TestLoginLinkNamespaceTerminating(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	id := h.createAccount("terminating@example.com")
	h.create(linkFor("going", id))
	h.expectLinkReason("going", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	calls := total(h.linkCalls())

	g.Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})).To(Succeed())
	g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "going"}})).To(Succeed())
	g.Consistently(func() int { return total(h.linkCalls()) }).WithTimeout(2*time.Second).Should(Equal(calls),
		"no link is generated for a LoginLink whose namespace is Terminating")
}

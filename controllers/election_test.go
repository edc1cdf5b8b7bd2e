package controllers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// The election of the LoginLink that holds a user, the Secrets of the others, and what a
// PartnerAccount says about its users. Acceptance tests of the spec:
//
//   - among the LoginLinks of one user (account + email, case-insensitive) the newest eligible
//     one holds the user; the others are Ready=False Superseded and call nothing;
//   - every Ready=True LoginLink's Secret holds a link the simulator reports valid, and every
//     user with an active LoginLink has exactly one valid link.

// badRedirect is not on a permitted domain of the simulator (sim.DefaultPermittedDomains).
const badRedirect = "https://evil.example.net/x"

func oneHourLinks(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }

func forUser(email string) func(*partnersv1.LoginLinkSpec) {
	return func(s *partnersv1.LoginLinkSpec) { s.UserEmail = email }
}

// simGetG is simGet for use inside Eventually and Consistently.
func (h *harness) simGetG(g Gomega, path string, v any) {
	resp, err := http.Get(h.simURL + path)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}

// linkInfo asks the simulator about a link ("" state when there is no such link).
func (h *harness) linkInfo(g Gomega, link string) sim.LinkState {
	var st sim.LinkState
	if link == "" {
		return st
	}
	h.simGetG(g, "/_sim/links/"+link[strings.LastIndex(link, "/")+1:], &st)
	return st
}

// secretNameOf is the Secret a LoginLink writes.
func secretNameOf(ll *partnersv1.LoginLink) string {
	if ll.Spec.SecretName != "" {
		return ll.Spec.SecretName
	}
	return ll.Name
}

// getSecret returns a Secret, or nil when it does not exist.
func (h *harness) getSecret(g Gomega, name string) *corev1.Secret {
	s := &corev1.Secret{}
	err := k8s.Get(ctx, h.key(name), s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	g.Expect(err).NotTo(HaveOccurred())
	return s
}

func secretLinkOf(s *corev1.Secret) string {
	if s == nil {
		return ""
	}
	return string(s.Data[partnersv1.SecretKeyLoginLink])
}

// invariant checks, once, that every Ready=True LoginLink of the namespace has a valid link in
// its Secret, that no user is held by two Ready LoginLinks, and that every user with an active
// LoginLink has exactly one valid link (among the namespace's Secrets and, where every user of
// the account is held, in the simulator's count for the account).
func (h *harness) invariant(g Gomega) {
	var lls partnersv1.LoginLinkList
	g.Expect(k8s.List(ctx, &lls, inNS(h.ns))).To(Succeed())
	holders := map[string][]string{} // "<account>/<lower email>" -> Ready LoginLinks
	for i := range lls.Items {
		ll := &lls.Items[i]
		if !ll.DeletionTimestamp.IsZero() {
			continue
		}
		if s, _ := readyOf(ll.Status.Conditions); s != metav1.ConditionTrue {
			continue
		}
		name := secretNameOf(ll)
		link := secretLinkOf(h.getSecret(g, name))
		g.Expect(link).NotTo(BeEmpty(), "LoginLink %s is Ready but its Secret %s holds no link", ll.Name, name)
		st := h.linkInfo(g, link)
		g.Expect(st.State).To(Equal(sim.StateValid), "LoginLink %s is Ready but the link in its Secret %s is %q", ll.Name, name, st.State)
		key := fmt.Sprintf("%d/%s", st.AccountID, strings.ToLower(st.UserEmail))
		holders[key] = append(holders[key], ll.Name)
	}
	for key, names := range holders {
		g.Expect(names).To(HaveLen(1), "user %s is held by more than one Ready LoginLink", key)
	}

	// Valid links per user among the namespace's Secrets.
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, inNS(h.ns))).To(Succeed())
	valid := map[string]map[string]bool{}
	for i := range secrets.Items {
		link := secretLinkOf(&secrets.Items[i])
		if link == "" {
			continue
		}
		if st := h.linkInfo(g, link); st.State == sim.StateValid {
			key := fmt.Sprintf("%d/%s", st.AccountID, strings.ToLower(st.UserEmail))
			if valid[key] == nil {
				valid[key] = map[string]bool{}
			}
			valid[key][link] = true
		}
	}
	for key := range holders {
		g.Expect(valid[key]).To(HaveLen(1), "user %s: valid links held in Secrets", key)
	}

	// The simulator's count: an account whose users all have an active LoginLink has exactly
	// one valid link per user.
	var accounts []sim.Account
	h.simGetG(g, "/_sim/accounts", &accounts)
	for _, a := range accounts {
		held := 0
		for _, u := range a.Users {
			if _, ok := holders[fmt.Sprintf("%d/%s", a.ID, strings.ToLower(u.Email))]; ok {
				held++
			}
		}
		if held > 0 && held == len(a.Users) {
			g.Expect(a.Links[sim.StateValid]).To(Equal(len(a.Users)), "valid links of account %d (%d users, all held)", a.ID, len(a.Users))
		}
	}
}

// assertInvariant waits until the invariant holds. Call it once the end state is reached.
// Without time scaling nothing renews, so it must then keep holding; with it, a renewal has a
// short window (between the call and the Secret's update) that a poll may see.
func (h *harness) assertInvariant() {
	h.t.Helper()
	h.g.Eventually(h.invariant).Should(Succeed(), "the invariant")
	if h.scale == 1 {
		h.g.Consistently(h.invariant).Should(Succeed(), "the invariant keeps holding")
	}
}

// expectHolds waits until a LoginLink is Ready=True and its Secret's link is valid, and
// returns that link.
func (h *harness) expectHolds(name string) string {
	h.t.Helper()
	var link string
	h.g.Eventually(func(g Gomega) { link = h.holds(g, name) }).Should(Succeed())
	return link
}

// holds checks once that a LoginLink is Ready=True with a valid link in its Secret.
func (h *harness) holds(g Gomega, name string) string {
	ll := &partnersv1.LoginLink{}
	g.Expect(k8s.Get(ctx, h.key(name), ll)).To(Succeed())
	s, r := readyOf(ll.Status.Conditions)
	g.Expect(s).To(Equal(metav1.ConditionTrue), "Ready of %s (reason %s)", name, r)
	g.Expect(ll.Status.ObservedGeneration).To(Equal(ll.Generation))
	link := secretLinkOf(h.getSecret(g, secretNameOf(ll)))
	g.Expect(h.linkInfo(g, link).State).To(Equal(sim.StateValid), "the link in the Secret of %s", name)
	return link
}

// expectRenews waits for n renewals of a holding LoginLink: each time its Secret holds a new
// link and that link is valid.
func (h *harness) expectRenews(name string, n int) {
	h.t.Helper()
	prev := h.expectHolds(name)
	for i := range n {
		h.g.Eventually(func(g Gomega) {
			ll := &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, h.key(name), ll)).To(Succeed())
			s, r := readyOf(ll.Status.Conditions)
			g.Expect(s).To(Equal(metav1.ConditionTrue), "Ready of %s (reason %s)", name, r)
			link := secretLinkOf(h.getSecret(g, secretNameOf(ll)))
			g.Expect(link != "" && link != prev).To(BeTrue(), "%s renews its link (renewal %d)", name, i+1)
			g.Expect(h.linkInfo(g, link).State).To(Equal(sim.StateValid), "%s: the renewed link", name)
			prev = link
		}).Should(Succeed())
	}
}

// neverHolds checks, for a short while, that a LoginLink is not Ready=True and its Secret
// holds no valid link.
func (h *harness) neverHolds(name string) {
	h.t.Helper()
	h.g.Consistently(func(g Gomega) {
		ll := &partnersv1.LoginLink{}
		g.Expect(k8s.Get(ctx, h.key(name), ll)).To(Succeed())
		s, r := readyOf(ll.Status.Conditions)
		g.Expect(s).NotTo(Equal(metav1.ConditionTrue), "Ready of %s (reason %s)", name, r)
		g.Expect(h.linkInfo(g, secretLinkOf(h.getSecret(g, secretNameOf(ll)))).State).NotTo(Equal(sim.StateValid),
			"the Secret of %s holds a valid link", name)
	}).WithTimeout(1500 * time.Millisecond).Should(Succeed())
}

// expectAccountReady waits until a PartnerAccount is Ready=True, whatever the reason.
func (h *harness) expectAccountReady(name string) {
	h.t.Helper()
	h.g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key(name), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "Ready of %s (reason %s, message %q)", name, r, paMessage(pa))
		g.Expect(pa.Status.ObservedGeneration).To(Equal(pa.Generation))
	}).Should(Succeed())
}

func paMessage(pa *partnersv1.PartnerAccount) string {
	for _, c := range pa.Status.Conditions {
		if c.Type == partnersv1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

// simAccount returns the simulator's view of one account.
func (h *harness) simAccount(g Gomega, id int64) sim.Account {
	var accounts []sim.Account
	h.simGetG(g, "/_sim/accounts", &accounts)
	for _, a := range accounts {
		if a.ID == id {
			return a
		}
	}
	g.Expect(false).To(BeTrue(), "account %d is not in the simulator", id)
	return sim.Account{}
}

// afterCreationSecond waits until an object created now gets a later creationTimestamp than
// obj (creationTimestamp has one-second precision), so that the next object is strictly newer.
func (h *harness) afterCreationSecond(obj metav1.Object) {
	h.t.Helper()
	next := obj.GetCreationTimestamp().Add(time.Second + 20*time.Millisecond)
	h.g.Eventually(func() bool { return time.Now().After(next) }).Should(BeTrue())
}

// paUsers reads status.users of a PartnerAccount (not in the Go types yet).
func (h *harness) paUsers(g Gomega, name string) []any {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(partnersv1.GroupVersion.WithKind("PartnerAccount"))
	g.Expect(k8s.Get(ctx, h.key(name), u)).To(Succeed())
	users, _, err := unstructured.NestedSlice(u.Object, "status", "users")
	g.Expect(err).NotTo(HaveOccurred())
	return users
}

// 1. A LoginLink for a PartnerAccount's holder created just before the PartnerAccount: the
// PartnerAccount's own <name>-holder is newer and holds; the older one is Superseded, and the
// link seeded at creation is not invalidated behind the holder's back.
func TestElectionPartnerAccountWithOlderLoginLink(t *testing.T) {
	t.Run("accountRef", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		const n = 3
		for i := range n {
			// "app-portal-*" sorts before "john-*-holder": in a same-second tie the holder is newer.
			h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-portal-%d", i)},
				Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: fmt.Sprintf("john-%d", i)},
					SendNotification: ptr.To(false)}})
			h.create(account(fmt.Sprintf("john-%d", i), fmt.Sprintf("john%d@example.com", i)))
		}
		for i := range n {
			pa, holder, portal := fmt.Sprintf("john-%d", i), fmt.Sprintf("john-%d-holder", i), fmt.Sprintf("app-portal-%d", i)
			h.expectHolds(holder)
			h.expectLinkReason(portal, metav1.ConditionFalse, partnersv1.ReasonSuperseded)
			h.expectAccountReady(pa)
			id := h.partnerAccount(pa).Status.AccountID
			h.g.Eventually(func(g Gomega) int { return h.simAccount(g, id).Links[sim.StateValid] }).
				Should(Equal(1), "exactly one valid link for %s's holder", pa)
		}
		h.assertInvariant()
	})

	t.Run("accountID-rate-limited", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		id := h.createAccount("adopt@example.com")
		// The older LoginLink's first try meets a 429 (reset in 2 s).
		h.simPost("/_sim/faults", `{"rate_limit_next": 1}`)
		h.create(linkFor("a-older", id))
		h.expectLinkReason("a-older", metav1.ConditionFalse, partnersv1.ReasonRateLimited)
		// Meanwhile a PartnerAccount adopts the account: its holder is newer.
		h.create(account("adopt", "adopt@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &id }))
		h.expectAccountReady("adopt")
		h.expectHolds("adopt-holder")
		// Past the 429's reset time (2 s): still one holder, its link valid.
		h.g.Consistently(func(g Gomega) {
			h.holds(g, "adopt-holder")
			h.invariant(g)
		}).WithTimeout(3*time.Second).Should(Succeed(), "adopt-holder keeps the user past a-older's retry time")
		h.expectLinkReason("a-older", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
		h.assertInvariant()
		h.g.Eventually(func(g Gomega) int { return h.simAccount(g, id).Links[sim.StateValid] }).Should(Equal(1))
	})
}

// 2. A newer LoginLink that cannot hold (a terminal failure, a Secret conflict, an expired
// link with renewal disabled) leaves the user to the older one, which keeps renewing.
func TestElectionIneligibleNewcomer(t *testing.T) {
	setup := func(t *testing.T) (*harness, int64) {
		h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 3600}})
		id := h.createAccount("elect@example.com")
		h.create(linkFor("a", id, oneHourLinks))
		h.expectHolds("a")
		return h, id
	}

	t.Run("InvalidRedirectURL", func(t *testing.T) {
		h, id := setup(t)
		h.create(linkFor("b", id, oneHourLinks, forUser("elect@example.com"), func(s *partnersv1.LoginLinkSpec) { s.RedirectURL = badRedirect }))
		h.expectLinkReason("b", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
		h.expectRenews("a", 2)
		h.neverHolds("b")
		h.g.Expect(h.linkCalls()).To(HaveKeyWithValue("400", 1), "b tried once")
		h.expectLinkReason("b", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
		h.assertInvariant()
	})

	t.Run("SecretConflict", func(t *testing.T) {
		h, id := setup(t)
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: h.ns}, StringData: map[string]string{"mine": "yes"}}
		h.g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
		h.create(linkFor("c", id, oneHourLinks, forUser("ELECT@example.com"), func(s *partnersv1.LoginLinkSpec) { s.SecretName = "taken" }))
		h.expectLinkReason("c", metav1.ConditionFalse, partnersv1.ReasonSecretConflict)
		h.expectRenews("a", 2)
		h.neverHolds("c")
		h.g.Expect(k8s.Get(ctx, h.key("taken"), foreign)).To(Succeed())
		h.g.Expect(foreign.Data).To(Equal(map[string][]byte{"mine": []byte("yes")}), "the foreign Secret is untouched")
		h.assertInvariant()
	})

	t.Run("ExpiredRenewalDisabled", func(t *testing.T) {
		h, id := setup(t)
		h.create(linkFor("d", id, oneHourLinks, forUser("elect@example.com"), func(s *partnersv1.LoginLinkSpec) {
			s.Renewal = &partnersv1.Renewal{Policy: partnersv1.RenewalPolicyDisabled}
		}))
		h.expectLinkReason("d", metav1.ConditionFalse, partnersv1.ReasonExpired)
		h.expectRenews("a", 2)
		h.neverHolds("d")
		h.g.Expect(h.events("d")["Generated"]+h.events("d")["Renewed"]).To(BeNumerically("<=", 1), "d generated at most once")
		h.assertInvariant()
	})
}

// 3. The holder is deleted while the next generation fails: the one that takes over ends
// Ready with a valid link, never Ready on the link its predecessor invalidated.
func TestElectionTakeOverSurvivesFailure(t *testing.T) {
	setup := func(t *testing.T) (*harness, int64) {
		h := newHarness(t, harnessOpts{})
		id := h.createAccount("takeover@example.com")
		h.create(linkFor("a", id))
		h.expectHolds("a")
		h.create(linkFor("b", id, forUser("takeover@example.com")))
		h.expectHolds("b")
		h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
		return h, id
	}

	t.Run("RateLimited", func(t *testing.T) {
		h, _ := setup(t)
		h.simPost("/_sim/faults", `{"rate_limit_next": 1}`)
		h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
		h.g.Eventually(func() map[string]int { return h.linkCalls() }).Should(HaveKeyWithValue("429", 1), "a's take-over met the 429")
		h.expectHolds("a")
		h.g.Consistently(func(g Gomega) {
			ll := &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, h.key("a"), ll)).To(Succeed())
			if s, _ := readyOf(ll.Status.Conditions); s == metav1.ConditionTrue {
				g.Expect(h.linkInfo(g, secretLinkOf(h.getSecret(g, "a"))).State).To(Equal(sim.StateValid))
			}
		}).Should(Succeed())
		h.assertInvariant()
	})

	t.Run("InvalidRedirectThenFixed", func(t *testing.T) {
		h, _ := setup(t)
		a := h.loginLink("a")
		a.Spec.RedirectURL = badRedirect
		h.g.Expect(k8s.Update(ctx, a)).To(Succeed())
		h.g.Expect(k8s.Delete(ctx, h.loginLink("b"))).To(Succeed())
		h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
		h.g.Expect(h.linkCalls()).To(HaveKeyWithValue("400", 1))

		// The fix reverts the spec to what a's stored link was generated with.
		a = h.loginLink("a")
		a.Spec.RedirectURL = ""
		h.g.Expect(k8s.Update(ctx, a)).To(Succeed())
		h.expectHolds("a")
		h.g.Eventually(func() int { return h.linkCalls()["200"] }).Should(Equal(3), "a, b, then a again after the fix")
		h.assertInvariant()
	})
}

// 4. A superseded LoginLink's Secret: once the holder generated, its dead link is removed and
// the Secret names the holder; while the newcomer failed, the old link is kept and valid.
func TestElectionSupersededSecret(t *testing.T) {
	t.Run("NewcomerSucceeded", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		id := h.createAccount("held@example.com")
		h.create(linkFor("a", id))
		h.expectHolds("a")
		h.create(linkFor("b", id, forUser("held@example.com")))
		h.expectHolds("b")
		h.expectLinkReason("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
		h.g.Eventually(func(g Gomega) {
			s := h.getSecret(g, "a")
			g.Expect(s).NotTo(BeNil(), "a's Secret still exists")
			_, has := s.Data[partnersv1.SecretKeyLoginLink]
			g.Expect(has).To(BeFalse(), "a's Secret still has %s", partnersv1.SecretKeyLoginLink)
			g.Expect(s.Annotations).To(HaveKeyWithValue(partnersv1.AnnotationHeldBy, "b"))
		}).Should(Succeed())
		h.assertInvariant()
	})

	t.Run("NewcomerFailed", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		id := h.createAccount("kept@example.com")
		h.create(linkFor("a", id))
		original := h.expectHolds("a")
		h.create(linkFor("b", id, forUser("kept@example.com"), func(s *partnersv1.LoginLinkSpec) { s.RedirectURL = badRedirect }))
		h.expectLinkReason("b", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)
		h.g.Consistently(func(g Gomega) {
			s := h.getSecret(g, "a")
			g.Expect(secretLinkOf(s) == original).To(BeTrue(), "a's Secret keeps its link")
			g.Expect(h.linkInfo(g, original).State).To(Equal(sim.StateValid))
			g.Expect(s.Annotations).NotTo(HaveKey(partnersv1.AnnotationHeldBy))
		}).WithTimeout(1500 * time.Millisecond).Should(Succeed())
		// a is the newest eligible LoginLink: it holds, with the link it kept.
		h.g.Expect(h.expectHolds("a") == original).To(BeTrue(), "a holds with the link it kept")
		h.assertInvariant()
	})
}

// 5. A PartnerAccount is Ready when its holder is held by another LoginLink, and says which.
func TestElectionPartnerAccountReadyWhenUserHeldElsewhere(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.create(account("acme", "acme@example.com"))
	h.expectAccountReason("acme", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectHolds("acme-holder")
	h.afterCreationSecond(h.loginLink("acme-holder"))
	h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "accountant"},
		Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: "acme"},
			UserEmail: "acme@example.com", SendNotification: ptr.To(false)}})
	h.expectHolds("accountant")
	h.expectLinkReason("acme-holder", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.assertInvariant()
	h.expectAccountReady("acme")
	h.g.Eventually(func(g Gomega) []any { return h.paUsers(g, "acme") }).Should(ContainElement(And(
		HaveKeyWithValue("email", "acme@example.com"),
		HaveKeyWithValue("role", "holder"),
		HaveKeyWithValue("heldBy", "accountant"))))
}

// 6. Two LoginLinks for one user created in the same second, twenty times (today's failure is
// a race): the newer holds (the greater name breaks a tie), at most two generations per user,
// and the invariant holds.
func TestElectionSameSecondCreation(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const n = 20
	ids := make([]int64, n)
	for i := range n {
		ids[i] = h.createAccount(fmt.Sprintf("same%d@example.com", i))
	}
	for i := range n {
		email := fmt.Sprintf("same%d@example.com", i)
		// The same user named two ways: the primary holder by default, or by its email (in
		// another case); which of the two is the newer alternates.
		older, newer := []func(*partnersv1.LoginLinkSpec){}, []func(*partnersv1.LoginLinkSpec){forUser(email)}
		if i%2 == 1 {
			older, newer = []func(*partnersv1.LoginLinkSpec){forUser(strings.ToUpper(email))}, nil
		}
		h.create(linkFor(fmt.Sprintf("s%d-a", i), ids[i], older...))
		h.create(linkFor(fmt.Sprintf("s%d-b", i), ids[i], newer...))
	}
	for i := range n {
		a, b := fmt.Sprintf("s%d-a", i), fmt.Sprintf("s%d-b", i)
		h.expectHolds(b)
		h.expectLinkReason(a, metav1.ConditionFalse, partnersv1.ReasonSuperseded)
		acct := h.simAccount(h.g, ids[i])
		h.g.Expect(total(acct.Links)-1).To(BeNumerically("<=", 2), "generations for %s (minus the creation link)", acct.Email)
		h.g.Expect(acct.Links[sim.StateValid]).To(Equal(1))
	}
	h.assertInvariant()
}

// 7a. A LoginLink named <pa>-holder that the PartnerAccount does not own: LoginLinkConflict,
// naming it, and no retry storm.
func TestPartnerAccountLoginLinkConflict(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	other := h.createAccount("other@example.com")
	h.create(linkFor("acme-holder", other))
	h.expectHolds("acme-holder")
	before := h.loginLink("acme-holder")

	base := reconciles("partneraccount")
	h.create(account("acme", "acme@example.com"))
	pa := h.expectAccountReason("acme", metav1.ConditionFalse, partnersv1.ReasonLoginLinkConflict)
	h.g.Expect(paMessage(pa)).To(ContainSubstring("acme-holder"))
	h.g.Consistently(func() float64 { return reconciles("partneraccount") - base }).WithTimeout(2*time.Second).
		Should(BeNumerically("<=", 3), "reconciles of the PartnerAccount")
	after := h.loginLink("acme-holder")
	h.g.Expect(after.Spec).To(Equal(before.Spec), "the foreign LoginLink is untouched")
	h.g.Expect(after.OwnerReferences).To(BeEmpty())
}

// 7b. Two PartnerAccounts adopting one account: the younger waits (AccountClaimed) and takes
// over within seconds once the older is deleted, even with a one-hour sync period.
func TestPartnerAccountClaimHandover(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: time.Hour})
	id := h.createAccount("claimed@example.com")
	h.create(account("first", "claimed@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &id }))
	h.expectAccountReason("first", metav1.ConditionTrue, partnersv1.ReasonAdopted)
	h.expectHolds("first-holder")
	h.afterCreationSecond(h.partnerAccount("first"))
	h.create(account("second", "claimed@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &id }))
	h.expectAccountReason("second", metav1.ConditionFalse, partnersv1.ReasonAccountClaimed)

	first := h.partnerAccount("first")
	h.g.Expect(k8s.Delete(ctx, first)).To(Succeed())
	// envtest runs no garbage collector: delete what it would delete.
	var lls partnersv1.LoginLinkList
	h.g.Expect(k8s.List(ctx, &lls, inNS(h.ns))).To(Succeed())
	for i := range lls.Items {
		if metav1.IsControlledBy(&lls.Items[i], first) {
			h.g.Expect(k8s.Delete(ctx, &lls.Items[i])).To(Succeed())
		}
	}
	h.g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key("second"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "Ready of second (reason %s)", r)
		g.Expect(pa.Status.AccountID).To(Equal(id))
	}).WithTimeout(10*time.Second).Should(Succeed(), "the younger takes over within seconds")
	h.expectHolds("second-holder")
	h.assertInvariant()
}

// 7c. spec.accountID added to an existing PartnerAccount is refused at apply time (it was
// silently ignored), unless it pins the account the PartnerAccount already manages.
func TestPartnerAccountAccountIDCannotBeAdded(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	other := h.createAccount("other@example.com")
	h.create(account("plain", "plain@example.com"))
	pa := h.expectAccountReason("plain", metav1.ConditionTrue, partnersv1.ReasonCreated)
	id := pa.Status.AccountID
	pa.Spec.AccountID = &other
	err := k8s.Update(ctx, pa)
	h.g.Expect(err).To(HaveOccurred(), "adding spec.accountID is refused")
	h.g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "an Invalid error: %v", err)
	h.g.Expect(err.Error()).To(ContainSubstring("spec.accountID can be added only with the value of status.accountID"))
	h.g.Expect(h.partnerAccount("plain").Spec.AccountID).To(BeNil())

	// Pinning the managed account is honoured: nothing is called, the account stays.
	calls := h.apiCalls()
	pa = h.partnerAccount("plain")
	pa.Spec.AccountID = &id
	h.g.Expect(k8s.Update(ctx, pa)).To(Succeed())
	h.g.Consistently(func() int { return h.apiCalls() }).Should(Equal(calls))
	h.g.Expect(h.partnerAccount("plain").Status.AccountID).To(Equal(id))
}

// 7d. A resync of Ready objects writes nothing: after a restart every object is reconciled
// again and no LoginLink or PartnerAccount changes.
func TestResyncWritesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: time.Hour})
	h.create(account("family", "parent@example.com", withSpouse("partner@example.com")))
	h.expectAccountReason("family", metav1.ConditionTrue, partnersv1.ReasonCreated)
	adopted := h.createAccount("adopted@example.com")
	h.create(account("adopted", "adopted@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &adopted }))
	solo := h.createAccount("solo@example.com")
	h.create(linkFor("solo", solo))
	familyID := h.partnerAccount("family").Status.AccountID
	h.simPost(fmt.Sprintf("/_sim/accounts/%d/users", familyID), `{"email": "accountant@example.com"}`)
	h.create(&partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "accountant"},
		Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: "family"},
			UserEmail: "accountant@example.com", Purpose: "additional_user", SendNotification: ptr.To(false)}})

	// A user held by the newer of two LoginLinks: the older one is Superseded.
	shared := h.createAccount("shared@example.com")
	h.create(linkFor("pair-a", shared))
	h.expectHolds("pair-a")
	h.create(linkFor("pair-b", shared, forUser("shared@example.com")))

	holders := []string{"family-holder", "family-spouse", "adopted-holder", "solo", "accountant", "pair-b"}
	for _, name := range holders {
		h.expectHolds(name)
	}
	h.expectLinkReason("pair-a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	h.expectAccountReady("family")
	h.expectAccountReady("adopted")
	h.assertInvariant()

	rvs := func(g Gomega) map[string]string { return h.resourceVersions(g, false) }
	snapshot := h.settled(false)
	h.g.Expect(snapshot).To(HaveLen(len(holders) + 1 + 2))

	h.stopManager()
	baseLL, basePA := reconciles("loginlink"), reconciles("partneraccount")
	h.startManager(time.Hour)
	h.g.Eventually(func() float64 { return reconciles("loginlink") - baseLL }).Should(BeNumerically(">=", len(holders)+1))
	h.g.Eventually(func() float64 { return reconciles("partneraccount") - basePA }).Should(BeNumerically(">=", 2))
	h.g.Consistently(rvs).WithTimeout(1500*time.Millisecond).Should(Equal(snapshot), "resourceVersions after the resync")
	for _, name := range holders {
		h.expectHolds(name)
	}
}

// resourceVersions maps "Kind/name" to resourceVersion for the namespace's LoginLinks and
// PartnerAccounts, and its Secrets too when secrets is true.
func (h *harness) resourceVersions(g Gomega, secrets bool) map[string]string {
	out := map[string]string{}
	var lls partnersv1.LoginLinkList
	g.Expect(k8s.List(ctx, &lls, inNS(h.ns))).To(Succeed())
	for _, ll := range lls.Items {
		out["LoginLink/"+ll.Name] = ll.ResourceVersion
	}
	var pas partnersv1.PartnerAccountList
	g.Expect(k8s.List(ctx, &pas, inNS(h.ns))).To(Succeed())
	for _, pa := range pas.Items {
		out["PartnerAccount/"+pa.Name] = pa.ResourceVersion
	}
	if secrets {
		var ss corev1.SecretList
		g.Expect(k8s.List(ctx, &ss, inNS(h.ns))).To(Succeed())
		for _, s := range ss.Items {
			out["Secret/"+s.Name] = s.ResourceVersion
		}
	}
	return out
}

// settled waits until nothing in the namespace changes for a second and returns that state.
func (h *harness) settled(secrets bool) map[string]string {
	h.t.Helper()
	var snapshot map[string]string
	h.g.Eventually(func(g Gomega) {
		snapshot = h.resourceVersions(g, secrets)
		g.Consistently(func(g Gomega) map[string]string { return h.resourceVersions(g, secrets) }).
			WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Equal(snapshot))
	}).Should(Succeed())
	return snapshot
}

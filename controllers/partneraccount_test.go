package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

func account(name, email string, mutate ...func(*partnersv1.PartnerAccountSpec)) *partnersv1.PartnerAccount {
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: partnersv1.PartnerAccountSpec{Email: email, FirstName: "John", LastName: "Doe"}}
	for _, m := range mutate {
		m(&pa.Spec)
	}
	return pa
}

func withSpouse(email string) func(*partnersv1.PartnerAccountSpec) {
	return func(s *partnersv1.PartnerAccountSpec) {
		s.Spouse = &partnersv1.SpouseSpec{Email: email, FirstName: "Jane", LastName: "Doe"}
	}
}

func (h *harness) partnerAccount(name string) *partnersv1.PartnerAccount {
	pa := &partnersv1.PartnerAccount{}
	h.g.Expect(k8s.Get(ctx, h.key(name), pa)).To(Succeed())
	return pa
}

func (h *harness) expectAccountReason(name string, status metav1.ConditionStatus, reason string) *partnersv1.PartnerAccount {
	h.t.Helper()
	var pa *partnersv1.PartnerAccount
	h.g.Eventually(func(g Gomega) {
		pa = &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, h.key(name), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(r).To(Equal(reason), "Ready reason of %s", name)
		g.Expect(s).To(Equal(status))
		g.Expect(pa.Status.ObservedGeneration).To(Equal(pa.Generation))
	}).Should(Succeed())
	return pa
}

func (h *harness) simAccounts() []sim.Account {
	var accounts []sim.Account
	h.simGet("/_sim/accounts", &accounts)
	return accounts
}

func (h *harness) createCalls() map[string]int { return h.stats().Requests["POST /v1beta/accounts"] }

// Create with and without a spouse: one creation call, no link call (the create answer's
// links go straight into the Secrets), and every Secret holds a valid link.
func TestPartnerAccountCreate(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("solo", "solo@example.com"))
	h.create(account("couple", "john@couple.example", withSpouse("jane@couple.example"), func(s *partnersv1.PartnerAccountSpec) {
		s.LoginLink = &partnersv1.AccountLoginLinkSpec{SecretName: "couple-link", ExpiryHours: ptr.To[int32](72)}
	}))

	solo := h.expectAccountReason("solo", metav1.ConditionTrue, partnersv1.ReasonCreated)
	g.Expect(solo.Status.AccountID).NotTo(BeZero())
	g.Expect(solo.Status.AccountStatus).To(Equal("active"))
	g.Expect(solo.Status.CreatedAt).NotTo(BeNil())
	g.Expect(solo.Status.LoginLinkSecretName).To(Equal("solo-login-link"))
	g.Expect(solo.Status.SpouseLoginLinkSecretName).To(BeEmpty())
	g.Expect(solo.Status.LoginLinkExpiresAt.Sub(solo.Status.CreatedAt.Time)).To(Equal(168 * time.Hour))
	couple := h.expectAccountReason("couple", metav1.ConditionTrue, partnersv1.ReasonCreated)
	g.Expect(couple.Status.Spouse).To(Equal(&partnersv1.SpouseStatus{ID: couple.Status.AccountID + 1, Email: "jane@couple.example", Status: "invited"}))
	g.Expect(couple.Status.LoginLinkSecretName).To(Equal("couple-link"))
	g.Expect(couple.Status.SpouseLoginLinkSecretName).To(Equal("couple-spouse-login-link"))

	for _, name := range []string{"solo-login-link", "couple-link", "couple-spouse-login-link"} {
		g.Eventually(func() string { return h.secretLink(name) }).ShouldNot(BeEmpty(), name)
		g.Expect(h.linkState(h.secretLink(name))).To(Equal("valid"), name)
	}
	g.Expect(h.secretLink("couple-spouse-login-link")).To(ContainSubstring("/auth/user-login/"))
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, h.key("couple-spouse-login-link"), s)).To(Succeed())
	g.Expect(string(s.Data[partnersv1.SecretKeyUserEmail])).To(Equal("jane@couple.example"))

	// The owned LoginLinks keep the links; they are Ready without having called the API.
	for _, name := range []string{"solo-holder", "couple-holder", "couple-spouse"} {
		ll := h.expectLinkReason(name, metav1.ConditionTrue, partnersv1.ReasonLinkValid)
		g.Expect(ll.OwnerReferences).To(ContainElement(HaveField("Controller", ptr.To(true))))
		g.Expect(ll.Spec.SendNotification).To(Equal(ptr.To(false)), "renewals default to no email")
	}
	g.Expect(h.partnerAccount("couple").Status.LoginLinkExpiresAt).NotTo(BeNil())
	g.Expect(h.createCalls()).To(Equal(map[string]int{"201": 2}))
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(BeZero())
	g.Expect(h.events("solo")).To(HaveKey("Created"))
	g.Expect(h.simAccounts()).To(HaveLen(2))

	// Deleting a PartnerAccount never deletes the client's Fifteenth account.
	g.Expect(k8s.Delete(ctx, h.partnerAccount("solo"))).To(Succeed())
	g.Eventually(func() error { return k8s.Get(ctx, h.key("solo"), &partnersv1.PartnerAccount{}) }).Should(MatchError(ContainSubstring("not found")))
	g.Expect(h.simAccounts()).To(HaveLen(2))
}

// Adopt by ID; adopt on 409; a mismatching email; one account claimed twice.
func TestPartnerAccountAdopt(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	existing := h.createAccount("existing@example.com")

	h.create(account("by-id", "existing@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &existing }))
	pa := h.expectAccountReason("by-id", metav1.ConditionTrue, partnersv1.ReasonAdopted)
	g.Expect(pa.Status.AccountID).To(Equal(existing))
	g.Expect(h.events("by-id")).To(HaveKey("Adopted"))
	g.Eventually(func() string { return h.secretLink("by-id-login-link") }).ShouldNot(BeEmpty())
	g.Expect(h.linkState(h.secretLink("by-id-login-link"))).To(Equal("valid"))
	h.expectAccountReason("by-id", metav1.ConditionTrue, partnersv1.ReasonAdopted)

	// Claimed twice: the second PartnerAccount calls nothing and says why.
	calls := h.apiCalls()
	h.create(account("by-id-again", "existing@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &existing }))
	h.expectAccountReason("by-id-again", metav1.ConditionFalse, partnersv1.ReasonAccountClaimed)
	h.expectLinkReason("by-id-again-holder", metav1.ConditionFalse, partnersv1.ReasonAccountNotReady)
	g.Expect(h.apiCalls()).To(Equal(calls))

	// Adopt on 409: the email is registered already (by the partner's old scripts).
	scripted := h.createAccount("scripted@example.com")
	h.create(account("scripted", "scripted@example.com"))
	pa = h.expectAccountReason("scripted", metav1.ConditionTrue, partnersv1.ReasonAdopted)
	g.Expect(pa.Status.AccountID).To(Equal(scripted))
	g.Expect(h.createCalls()).To(HaveKeyWithValue("409", 1))
	g.Eventually(func() string { return h.secretLink("scripted-login-link") }).ShouldNot(BeEmpty())
	g.Expect(h.linkState(h.secretLink("scripted-login-link"))).To(Equal("valid"))

	// The same email in a second PartnerAccount: it meets the 409 and finds the account claimed.
	h.create(account("scripted-twice", "scripted@example.com"))
	h.expectAccountReason("scripted-twice", metav1.ConditionFalse, partnersv1.ReasonAccountClaimed)
	g.Consistently(func() int { return h.createCalls()["409"] }).Should(Equal(2), "a lost claim is not retried in a loop")

	// Mismatch: the account belongs to somebody else.
	calls = total(h.linkCalls())
	unclaimed := h.createAccount("unclaimed@example.com")
	h.create(account("mismatch", "someone-else@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &unclaimed }))
	h.expectAccountReason("mismatch", metav1.ConditionFalse, partnersv1.ReasonAccountMismatch)
	g.Expect(h.partnerAccount("mismatch").Status.AccountID).To(BeZero())
	g.Consistently(func() int { return total(h.linkCalls()) }).Should(Equal(calls))

	// An unknown account ID.
	missing := int64(999999)
	h.create(account("missing", "missing@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &missing }))
	h.expectAccountReason("missing", metav1.ConditionFalse, partnersv1.ReasonAccountNotFound)
}

// The API refuses the data: ValidationFailed, terminal after exactly one call, with the
// API's field message. (The CRD's email pattern is deliberately loose; the API is stricter.)
func TestPartnerAccountValidationFailed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.create(account("refused", "john..doe@example.com"))
	pa := h.expectAccountReason("refused", metav1.ConditionFalse, partnersv1.ReasonValidationFailed)
	c := metav1.Condition{}
	for _, cc := range pa.Status.Conditions {
		c = cc
	}
	g.Expect(c.Message).To(ContainSubstring("email: Invalid email format"))
	g.Eventually(func() map[string]int { return h.events("refused") }).Should(HaveKey("CreateFailed"))
	g.Consistently(func() map[string]int { return h.createCalls() }).Should(Equal(map[string]int{"400": 1}))
	h.expectLinkReason("refused-holder", metav1.ConditionFalse, partnersv1.ReasonAccountNotReady)
}

// Suspended, then reactivated: observed every --account-sync-period; links stop renewing.
func TestPartnerAccountSuspendedThenReactivated(t *testing.T) {
	h := newHarness(t, harnessOpts{syncPeriod: 300 * time.Millisecond})
	g := h.g
	h.create(account("client", "client@example.com"))
	pa := h.expectAccountReason("client", metav1.ConditionTrue, partnersv1.ReasonCreated)
	id := pa.Status.AccountID

	h.simPost(fmt.Sprintf("/_sim/accounts/%d/suspend", id), "")
	pa = h.expectAccountReason("client", metav1.ConditionFalse, partnersv1.ReasonAccountSuspended)
	g.Expect(pa.Status.AccountStatus).To(Equal("suspended"))
	h.expectLinkReason("client-holder", metav1.ConditionFalse, partnersv1.ReasonAccountSuspended)
	g.Eventually(func() map[string]int { return h.events("client") }).Should(HaveKey("Suspended"))

	h.simPost(fmt.Sprintf("/_sim/accounts/%d/reactivate", id), "")
	pa = h.expectAccountReason("client", metav1.ConditionTrue, partnersv1.ReasonAccountReady)
	g.Expect(pa.Status.AccountStatus).To(Equal("active"))
	h.expectLinkReason("client-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	g.Eventually(func() map[string]int { return h.events("client") }).Should(HaveKey("Reactivated"))
	g.Expect(h.linkCalls()).NotTo(HaveKey("403"), "the LoginLink never called while the account was suspended")
}

// Identity fields are immutable, with messages a person understands.
func TestPartnerAccountImmutability(t *testing.T) {
	g := NewWithT(t)
	ns := "immutability-pa"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	pa := account("fixed", "fixed@example.com", withSpouse("spouse@example.com"))
	pa.Namespace = ns
	g.Expect(k8s.Create(ctx, pa)).To(Succeed())
	id := int64(5)
	for _, tt := range []struct {
		name   string
		mutate func(*partnersv1.PartnerAccountSpec)
		want   string
	}{
		{"email", func(s *partnersv1.PartnerAccountSpec) { s.Email = "other@example.com" }, "email is immutable: the Fifteenth API cannot change it; create a new PartnerAccount"},
		{"first name", func(s *partnersv1.PartnerAccountSpec) { s.FirstName = "Johnny" }, "firstName is immutable"},
		{"last name", func(s *partnersv1.PartnerAccountSpec) { s.LastName = "Smith" }, "lastName is immutable"},
		{"spouse changed", func(s *partnersv1.PartnerAccountSpec) { s.Spouse.FirstName = "Janet" }, "spouse is immutable"},
		{"spouse removed", func(s *partnersv1.PartnerAccountSpec) { s.Spouse = nil }, "spouse cannot be added or removed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			cur := &partnersv1.PartnerAccount{}
			g.Expect(k8s.Get(ctx, keyOf(ns, "fixed"), cur)).To(Succeed())
			tt.mutate(&cur.Spec)
			err := k8s.Update(ctx, cur)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tt.want))
		})
	}
	// accountID added later is refused (it was silently ignored), unless it pins the account
	// the PartnerAccount already manages (to move a created account under GitOps); then it
	// never changes.
	cur := &partnersv1.PartnerAccount{}
	g.Expect(k8s.Get(ctx, keyOf(ns, "fixed"), cur)).To(Succeed())
	cur.Spec.AccountID = &id
	g.Expect(k8s.Update(ctx, cur)).To(MatchError(ContainSubstring("spec.accountID can be added only with the value of status.accountID")))
	g.Expect(k8s.Get(ctx, keyOf(ns, "fixed"), cur)).To(Succeed())
	cur.Status.AccountID = id
	g.Expect(k8s.Status().Update(ctx, cur)).To(Succeed())
	cur.Spec.AccountID = ptr.To[int64](4)
	g.Expect(k8s.Update(ctx, cur)).To(MatchError(ContainSubstring("spec.accountID can be added only with the value of status.accountID")))
	cur.Spec.AccountID = &id
	g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	cur.Spec.AccountID = ptr.To[int64](6)
	g.Expect(k8s.Update(ctx, cur)).To(MatchError(ContainSubstring("accountID is immutable once set")))

	bad := account("same-spouse", "same@example.com", withSpouse("SAME@example.com"))
	bad.Namespace = ns
	g.Expect(k8s.Create(ctx, bad)).To(MatchError(ContainSubstring("spouse.email must differ from email")))
	long := account("long", "long@example.com", func(s *partnersv1.PartnerAccountSpec) { s.LastName = strings.Repeat("x", 51) })
	long.Namespace = ns
	g.Expect(k8s.Create(ctx, long)).To(MatchError(ContainSubstring("spec.lastName")))
	noAdd := account("no-spouse", "nospouse@example.com")
	noAdd.Namespace = ns
	g.Expect(k8s.Create(ctx, noAdd)).To(Succeed())
	noAdd.Spec.Spouse = &partnersv1.SpouseSpec{Email: "late@example.com", FirstName: "L", LastName: "S"}
	g.Expect(k8s.Update(ctx, noAdd)).To(MatchError(ContainSubstring("spouse cannot be added or removed")))
}

// With 30% of answers lost after their effect, 100 PartnerAccounts end with exactly 100
// accounts and every Secret's link valid.
func TestPartnerAccountLostAnswers(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: 10, Seed: 7, Faults: sim.Faults{FailAfterCommitRate: 0.3}}})
	g := h.g
	const n = 100
	for i := range n {
		var mut []func(*partnersv1.PartnerAccountSpec)
		if i%3 == 0 {
			mut = append(mut, withSpouse(fmt.Sprintf("spouse%d@lost.example", i)))
		}
		h.create(account(fmt.Sprintf("lost-%d", i), fmt.Sprintf("holder%d@lost.example", i), mut...))
	}
	g.Eventually(func(g Gomega) {
		var list partnersv1.PartnerAccountList
		g.Expect(k8s.List(ctx, &list, inNS(h.ns))).To(Succeed())
		for _, pa := range list.Items {
			s, r := readyOf(pa.Status.Conditions)
			g.Expect(s).To(Equal(metav1.ConditionTrue), "%s: %s", pa.Name, r)
		}
		// A run of lost answers backs off exponentially up to a minute per retry: seven in a row
		// (rare at 30%, but seen under -race) take two minutes alone.
	}).WithTimeout(4 * time.Minute).Should(Succeed())

	accounts := h.simAccounts()
	g.Expect(accounts).To(HaveLen(n), "exactly one account per PartnerAccount")
	for i := range n {
		secrets := []string{fmt.Sprintf("lost-%d-login-link", i)}
		if i%3 == 0 {
			secrets = append(secrets, fmt.Sprintf("lost-%d-spouse-login-link", i))
		}
		for _, name := range secrets {
			g.Eventually(func() string { return h.linkState(h.secretLink(name)) }).Should(Equal("valid"), name)
		}
	}
	st := h.stats()
	t.Logf("faults injected: %d; create answers: %v; link answers: %v", st.FaultsInjected,
		st.Requests["POST /v1beta/accounts"], st.Requests["POST /v1beta/accounts/{id}/login-link"])
	g.Expect(st.Requests["POST /v1beta/accounts"]).To(HaveKey("500"), "faults were injected")
}

// 300 PartnerAccounts applied at once against the documented 100 per minute (at 3x: 100 per
// 20 s): no 429, and the time to all Ready close to the limit's bound of two full windows.
func TestPartnerAccountCreationRate(t *testing.T) {
	const scale, n = 3, 300
	h := newHarness(t, harnessOpts{sim: sim.Config{TimeScale: scale}})
	g := h.g
	window := time.Duration(float64(time.Minute) / scale)
	bound := time.Duration(n/fifteenth.DefaultAccountCreateRate.N-1) * window

	start := time.Now()
	for i := range n {
		h.create(account(fmt.Sprintf("rate-%d", i), fmt.Sprintf("rate%d@example.com", i)))
	}
	g.Eventually(func(g Gomega) {
		var list partnersv1.PartnerAccountList
		g.Expect(k8s.List(ctx, &list, inNS(h.ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		for _, pa := range list.Items {
			s, _ := readyOf(pa.Status.Conditions)
			g.Expect(s).To(Equal(metav1.ConditionTrue))
		}
	}).WithTimeout(3 * bound).WithPolling(200 * time.Millisecond).Should(Succeed())
	elapsed := time.Since(start)
	t.Logf("%d PartnerAccounts Ready in %v; the limit's bound is %v (%.1f%% over)", n, elapsed.Round(time.Millisecond),
		bound, 100*(elapsed.Seconds()/bound.Seconds()-1))

	g.Expect(h.createCalls()).To(Equal(map[string]int{"201": n}), "no 429, no retry")
	accounts := h.simAccounts()
	g.Expect(accounts).To(HaveLen(n))
	g.Expect(elapsed).To(BeNumerically(">=", bound), "faster than the limit allows")

	// A freed slot is used at once: the i-th creation follows the (i-100)-th by one window
	// and little more. (The first 100 are spread over the time the manager takes to create
	// them, and each later batch repeats that spread: the whole run is the bound plus that
	// spread plus the last accounts' links, which on 2 cores under -race is many seconds.)
	// (The simulator stamps an account with the real time of its creation.)
	created := make([]time.Time, 0, n)
	for _, a := range accounts {
		created = append(created, time.Time(a.CreatedAt))
	}
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	per := fifteenth.DefaultAccountCreateRate.N
	var lag, maxLag time.Duration
	for i := per; i < n; i++ {
		l := created[i].Sub(created[i-per]) - window
		lag += l
		maxLag = max(maxLag, l)
	}
	meanLag := lag / time.Duration(n-per)
	spread := created[per-1].Sub(created[0])
	t.Logf("slot reuse: mean %v, max %v after its window; the first %d creations took %v", meanLag.Round(time.Millisecond),
		maxLag.Round(time.Millisecond), per, spread.Round(time.Millisecond))
	g.Expect(meanLag).To(BeNumerically("<=", window/20), "a freed slot waits at most 5%% of a window on average")
	g.Expect(elapsed).To(BeNumerically("<=", time.Duration(1.15*float64(bound))+spread), "within 15%% of the bound, plus the first batch's spread")
}

// A PartnerAccount of a Terminating namespace creates no account: one that failed before the
// namespace was deleted is not retried. (This suite runs no namespace controller: the
// namespace stays Terminating with its content.)
func TestPartnerAccountNamespaceTerminating(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	g := h.g
	h.simPost("/_sim/faults", `{"fail_rate": 1}`)
	h.create(account("going", "going@example.com"))
	h.expectAccountReason("going", metav1.ConditionFalse, partnersv1.ReasonAPIUnavailable)

	g.Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})).To(Succeed())
	h.simPost("/_sim/faults", `{}`)
	g.Consistently(func() []sim.Account { return h.simAccounts() }).WithTimeout(5*time.Second).Should(BeEmpty(),
		"no account is created for a PartnerAccount whose namespace is Terminating")
}

// Many PartnerAccounts waiting for the creation budget are woken one per freed slot: each
// waits in line until its own slot frees up, and a pass that finds the budget still spent
// writes nothing new. 60 PartnerAccounts (half with a spouse) at 10 creations per 2 s: at
// most 3 reconciles and 3 status writes per created account, with no 429, and each freed
// slot used at once.
func TestPartnerAccountWaitersWakeOnePerSlot(t *testing.T) {
	const n = 60
	rate := fifteenth.Rate{N: 10, Per: 2 * time.Second}
	h := newHarness(t, harnessOpts{sim: sim.Config{AccountRate: rate}})
	g := h.g
	bound := time.Duration(n/rate.N-1) * rate.Per

	recBefore := reconciles("partneraccount")
	writesBefore := statusWrites(t, "partneraccounts")
	start := time.Now()
	for i := range n {
		var mutate []func(*partnersv1.PartnerAccountSpec)
		if i%2 == 0 {
			mutate = append(mutate, withSpouse(fmt.Sprintf("wake%d-spouse@example.com", i)))
		}
		h.create(account(fmt.Sprintf("wake-%d", i), fmt.Sprintf("wake%d@example.com", i), mutate...))
	}
	g.Eventually(func(g Gomega) {
		var list partnersv1.PartnerAccountList
		g.Expect(k8s.List(ctx, &list, inNS(h.ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		for _, pa := range list.Items {
			s, _ := readyOf(pa.Status.Conditions)
			g.Expect(s).To(Equal(metav1.ConditionTrue), "PartnerAccount %s", pa.Name)
		}
	}).WithTimeout(bound + time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	elapsed := time.Since(start)
	perAccount := (reconciles("partneraccount") - recBefore) / n
	writesPerAccount := float64(statusWrites(t, "partneraccounts")-writesBefore) / n
	t.Logf("%d PartnerAccounts Ready in %v (bound %v): %.2f reconciles and %.2f status writes per created account",
		n, elapsed.Round(time.Millisecond), bound, perAccount, writesPerAccount)

	g.Expect(h.createCalls()).To(Equal(map[string]int{"201": n}), "no 429, no retry")
	g.Expect(perAccount).To(BeNumerically("<=", 3), "reconciles per created account")
	g.Expect(writesPerAccount).To(BeNumerically("<=", 3), "status writes per created account")
	// A freed slot is used at once: the i-th creation follows the (i-N)-th by one window and
	// little more. (The simulator stamps an account to the second at this time scale: the
	// mean over 50 slots is what is exact enough.)
	created := make([]time.Time, 0, n)
	for _, a := range h.simAccounts() {
		created = append(created, time.Time(a.CreatedAt))
	}
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	var lag time.Duration
	for i := rate.N; i < len(created); i++ {
		lag += created[i].Sub(created[i-rate.N]) - rate.Per
	}
	meanLag := lag / time.Duration(len(created)-rate.N)
	t.Logf("slot reuse: mean %v after its window", meanLag.Round(time.Millisecond))
	g.Expect(meanLag).To(BeNumerically("<=", rate.Per/4), "a freed slot waits at most a quarter window on average")
}

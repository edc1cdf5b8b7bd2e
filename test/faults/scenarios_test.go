//go:build faults

package faults

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// fastRates lifts the documented limits (simulator and manager alike) where a scenario is not
// about them, so that it runs in seconds.
var fastRates = worldOpts{
	sim:  sim.Config{AccountRate: fifteenth.Rate{N: 100000, Per: time.Minute}, LinkRate: fifteenth.Rate{N: 1000, Per: time.Hour}},
	args: []string{"--account-create-limit", "100000/1m", "--login-link-limit", "1000/1h"},
}

// SIGKILL the manager at random moments, at least ten times, while 200 PartnerAccounts and
// 200 LoginLinks are reconciled; restart it each time.
func TestCrashAtRandomMoments(t *testing.T) {
	w := newWorld(t, "crash", fastRates)
	const n = 200
	ids := w.preCreate(n, "crash")
	w.startManager()
	w.applyAccounts(n, "crash")
	w.applyLinks(ids, "crash-link")
	w.killAtRandomMoments(rand.New(rand.NewPCG(42, 7)), 12, n)
	w.invariants(n)
}

// killAtRandomMoments SIGKILLs the newest manager times times, each at a random moment between
// 50 ms and 1.5 s into its life, and starts a new one each time. preCreated accounts are left
// out of the creations it logs (those of the default simulator; the others count theirs).
func (w *world) killAtRandomMoments(rng *rand.Rand, times, preCreated int) {
	for i := range times {
		deadline := time.Now().Add(time.Duration(50+rng.IntN(1450)) * time.Millisecond)
		for time.Now().Before(deadline) && !w.procs[len(w.procs)-1].exited() {
			time.Sleep(10 * time.Millisecond)
		}
		w.procs[len(w.procs)-1].signal(syscall.SIGKILL)
		figures := make([]string, 0, len(w.sims))
		for _, s := range w.sims {
			pre := s.preCreated
			if s == w.sims[0] {
				pre = preCreated
			}
			creates, links, _ := w.callsAt(s.url)
			figures = append(figures, fmt.Sprintf("%s%d creations and %d link calls", w.label(s), creates-pre, links))
		}
		w.t.Logf("kill %d: %s so far", i+1, strings.Join(figures, "; "))
		w.startManager()
	}
}

// Competing LoginLinks under crashes and lost answers: 60 PartnerAccounts and 30 more
// LoginLinks for the holders of the first 30 (so two LoginLinks compete for each of those
// users), while the simulator answers 10% of the API requests with a 500 before any effect
// and loses 25% of the answers after the effect (the link was generated, and the user's
// earlier link invalidated), and the manager is SIGKILLed six times at random moments. Beyond
// the usual invariants: every Ready LoginLink's Secret holds a valid link, and every user has
// exactly one valid link.
func TestCompetingLinksUnderCrashesAndLostAnswers(t *testing.T) {
	o := fastRates
	o.sim.Faults = sim.Faults{FailRate: 0.1, FailAfterCommitRate: 0.25}
	o.sim.Seed = 15
	w := newWorld(t, "competing", o)
	const n, shared = 60, 30
	w.startManager()
	w.applyAccounts(n, "comp")
	for i := range shared {
		w.g.Expect(k8s.Create(ctx, &partnersv1.LoginLink{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("comp-%d-user", i), Namespace: w.ns},
			Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: fmt.Sprintf("comp-%d", i)},
				UserEmail: fmt.Sprintf("comp%d@faults.example", i), SendNotification: ptr.To(false)},
		})).To(Succeed())
	}
	w.killAtRandomMoments(rand.New(rand.NewPCG(15, 60)), 6, 0)
	w.invariants(0)
	creates, links, gets := w.calls()
	t.Logf("%d creations, %d link calls, %d reads; %d faults injected", creates, links, gets, w.stats().FaultsInjected)
}

// API faults, each alone: all converge, and the calls stay within 30% of the minimum
// (one creation per PartnerAccount, one link and one read of the holder's email per LoginLink
// by accountID; created accounts' links are free).
func TestAPIFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults string
		args   []string
	}{
		{"fail-rate", `{"fail_rate": 0.1}`, nil},
		{"fail-after-commit-rate", `{"fail_after_commit_rate": 0.1}`, nil},
		{"latency over the client timeout", `{"latency": "3s", "latency_rate": 0.05}`, []string{"--api-timeout", "1s"}},
		{"429 burst", `{"rate_limit_next": 20}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := fastRates
			o.args = append(append([]string{}, o.args...), tt.args...)
			w := newWorld(t, "faults-"+strings.ReplaceAll(strings.ReplaceAll(tt.name, " ", "-"), "429", "rl"), o)
			const n = 50
			ids := w.preCreate(n, "f")
			baseCreates, baseLinks, baseGets := w.calls()
			w.simDo("PUT", "/_sim/faults", tt.faults, nil)
			w.startManager()
			w.applyAccounts(n, "f")
			w.applyLinks(ids, "f-link")
			w.invariants(n)
			creates, links, gets := w.calls()
			creates, links, gets = creates-baseCreates, links-baseLinks, gets-baseGets
			total := creates + links + gets
			// The minimum: one creation per PartnerAccount, one link per LoginLink and one
			// Retrieve Account per LoginLink by accountID without userEmail (it learns the
			// holder's email before it competes); and where a creation's answer was lost (the
			// account was then adopted after a 409), its links were lost with it and must be
			// generated again: one, and one more for a spouse.
			minimum, lost := 3*n, w.lostCreationLinks()
			t.Logf("%s: %d calls (%d creations, %d links, %d reads), %d faults injected; against the minimum of %d: %+.0f%%; "+
				"counting the %d links lost with lost creation answers (minimum %d): %+.0f%%",
				tt.name, total, creates, links, gets, w.stats().FaultsInjected, minimum, 100*(float64(total)/float64(minimum)-1),
				lost, minimum+lost, 100*(float64(total)/float64(minimum+lost)-1))
			w.g.Expect(total).To(BeNumerically("<=", (minimum+lost)*13/10), "calls within 30%% of the minimum")
		})
	}
}

// Two managers with leader election; SIGKILL the leader: the other takes over with no
// duplicate creation and no extra link generation.
func TestLeaderElectionTakeover(t *testing.T) {
	w := newWorld(t, "leader", fastRates)
	ids := w.preCreate(20, "le")
	le := []string{"--leader-elect", "--leader-election-namespace", "leader", "--leader-election-id", "faults-leader",
		"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms"}
	a := w.startManager(le...)
	b := w.startManager(le...)
	w.applyAccounts(30, "le")
	w.applyLinks(ids, "le-link")
	w.waitAllReady()
	leader, follower := a, b
	w.g.Eventually(func() bool { return leads(a) || leads(b) }).Should(BeTrue())
	if leads(b) {
		leader, follower = b, a
	}
	w.g.Expect(leads(follower)).To(BeFalse(), "two leaders at once")
	creates, links, _ := w.calls()

	leader.signal(syscall.SIGKILL)
	w.g.Eventually(func() bool { return leads(follower) }).Should(BeTrue(), "the follower takes over")
	w.applyAccounts(10, "le-after")
	w.invariants(20)
	creates2, links2, _ := w.calls()
	t.Logf("before the takeover: %d creations, %d link calls; after: %d, %d", creates-20, links, creates2-20, links2)
	w.g.Expect(creates2-creates).To(Equal(10), "only the new PartnerAccounts were created")
	w.g.Expect(links2).To(Equal(links), "the new leader generated no link")
	w.g.Expect(w.stats().Requests["POST /v1beta/accounts"]).NotTo(HaveKey("409"), "no creation was attempted twice")
}

// Links renew every few seconds (1 h links at 1800x); the accounts are suspended mid-run:
// renewals stop (one refused call per LoginLink and sync period at most), and resume after
// reactivation.
func TestSuspensionDuringRenewal(t *testing.T) {
	o := worldOpts{
		sim:  sim.Config{TimeScale: 1800},
		args: []string{"--account-create-limit", "100/2s", "--login-link-limit", "10/2s", "--account-sync-period", "3s"},
	}
	w := newWorld(t, "suspension", o)
	ids := w.preCreate(5, "susp")
	w.startManager()
	w.applyLinks(ids, "susp", func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) })
	w.waitAllReady()
	_, before, _ := w.calls()
	w.g.Eventually(func() int { _, l, _ := w.calls(); return l }).Should(BeNumerically(">=", before+5), "renewals run")

	for _, id := range ids {
		w.simDo("POST", fmt.Sprintf("/_sim/accounts/%d/suspend", id), "", nil)
	}
	suspendedAt := time.Now()
	w.g.Eventually(func(g Gomega) {
		var lls partnersv1.LoginLinkList
		g.Expect(k8s.List(ctx, &lls, inNS(w.ns))).To(Succeed())
		for _, ll := range lls.Items {
			g.Expect(reasonOf(ll.Status.Conditions)).To(Equal(partnersv1.ReasonAccountSuspended), ll.Name)
		}
	}).Should(Succeed())
	refused := func() int { return w.stats().Requests["POST /v1beta/accounts/{id}/login-link"]["403"] }
	// Hold the suspension for a few sync periods and bound the refused calls.
	w.g.Consistently(func() int { return refused() }).WithTimeout(7 * time.Second).
		Should(BeNumerically("<=", 5*(1+int(time.Since(suspendedAt)/(3*time.Second))+1)))
	t.Logf("refused calls during %v of suspension: %d for 5 LoginLinks", time.Since(suspendedAt).Round(time.Second), refused())

	for _, id := range ids {
		w.simDo("POST", fmt.Sprintf("/_sim/accounts/%d/reactivate", id), "", nil)
	}
	w.invariants(5)
}

// The API key is rotated in its file mid-run and the old key revoked: no restart, and no
// failure after the rotation.
func TestAPIKeyRotation(t *testing.T) {
	o := fastRates
	o.sim.APIKeys = []string{"15th_faults_key_one"}
	w := newWorld(t, "rotation", o)
	m := w.startManager()
	w.applyAccounts(10, "before")
	w.waitAllReady()

	w.setKey("15th_faults_key_two")
	w.simDo("PUT", "/_sim/keys", `{"keys": ["15th_faults_key_two"]}`, nil)
	before := w.stats().Requests
	w.applyAccounts(10, "after")
	w.invariants(0)
	after := w.stats().Requests
	for route, codes := range after {
		w.g.Expect(codes["401"]-before[route]["401"]).To(BeZero(), "401s on %s after the rotation", route)
	}
	w.g.Expect(m.exited()).To(BeFalse(), "no restart")
}

func reasonOf(conds []metav1Condition) string {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Reason
		}
	}
	return ""
}

// The API server crashes and starts again (etcd keeps its data) while the manager runs. It
// runs last: a control plane that failed to restart would break the scenarios after it.
func TestAPIServerRestart(t *testing.T) {
	w := newWorld(t, "apiserver", fastRates)
	m := w.startManager()
	w.applyAccounts(20, "before")
	w.waitAllReady()
	// A crash, not a clean stop: SIGKILL, then the same command line again (same certificates,
	// same etcd, whose data is kept).
	restarted := time.Now()
	restartAPIServer(t)
	t.Logf("kube-apiserver killed and serving again in %v", time.Since(restarted).Round(time.Millisecond))
	w.g.Expect(m.exited()).To(BeFalse(), "the manager kept running while the API server was down")
	w.applyAccounts(20, "after")
	w.invariants(0)
	w.g.Expect(m.exited()).To(BeFalse(), "the manager survived")
}

// leads reports whether a manager's log says it acquired the leader lease.
func leads(p *proc) bool {
	return strings.Contains(strings.ToLower(p.logs.String()), "successfully acquired lease")
}

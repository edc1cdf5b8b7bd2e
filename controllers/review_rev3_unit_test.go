package controllers

// Review of fb92c8d (competesFor assumes the Lease's user for a LoginLink by accountID whose
// status does not name its user). Scenarios that try to break it.

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

const (
	rev3Spouse          = "jane@example.com"
	rev3Other     int64 = 5151
	rev3Holder          = unitEmail
	rev3NoRequeue       = 0
)

// rev3Edit changes a LoginLink's spec the way the API server does (generation + 1).
func (e *unitEnv) rev3Edit(name string, mutate func(*partnersv1.LoginLink)) {
	e.t.Helper()
	ll := e.getLink(name)
	mutate(ll)
	ll.Generation++
	if err := e.c.Update(e.ctx, ll); err != nil {
		e.t.Fatal(err)
	}
	if got := e.getLink(name); got.Generation != ll.Generation {
		e.t.Fatalf("generation %d after edit, want %d", got.Generation, ll.Generation)
	}
}

// rev3Takeover is the start of the scenarios 1: the older LoginLink (by accountID, for
// user) generates, the newer one generates and holds the user, the older one is Superseded.
func (e *unitEnv) rev3Takeover(older, newer, user string) {
	e.t.Helper()
	e.create(newLink(older, unitT0.Add(-3*time.Hour), byID(unitAccount, user)))
	e.mustReconcileLink(older)
	e.wantLink(older, metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.clock.Step(2 * time.Second)
	e.create(newLink(newer, unitT0.Add(-2*time.Hour), byID(unitAccount, user)))
	e.mustReconcileLink(newer)
	e.wantLink(newer, metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink(older)
	e.wantLink(older, metav1.ConditionFalse, partnersv1.ReasonSuperseded)
}

func (e *unitEnv) rev3Holder(id int64, user string) string {
	e.t.Helper()
	l := e.lease(id, user)
	if l == nil {
		return "<no lease>"
	}
	return l.Annotations[election.AnnotationHolderUID]
}

// 1a. The assumption is wrong: X (by accountID, no userEmail) holds the SPOUSE's Lease from an
// earlier spec, its status names no user (spec moved to another account and back), and it
// cannot learn its primary holder (Retrieve Account answers without email: AccountNotReady,
// eligible, not terminal). The older spouse LoginLink Y, whose link X's generation
// invalidated, must get a link again: X no longer acts for the spouse.
func TestUnitRev3SpouseLeaseHeldByPrimaryLinkWithoutUser(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.rev3Takeover("y", "x", rev3Spouse)
	e.wantCalls(2, 0, 0)

	// X moves to another account, then back, for the account's primary holder.
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.AccountID = &[]int64{rev3Other}[0] })
	e.mustReconcileLink("x")
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.AccountID = &[]int64{unitAccount}[0]; ll.Spec.UserEmail = "" })
	e.answerPrimary("") // Retrieve Account answers without an email
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink("x")
	x := e.wantLink("x", metav1.ConditionFalse, partnersv1.ReasonAccountNotReady)
	t.Logf("x status: account %d user %q; spouse Lease holder %s", x.Status.AccountID, x.Status.UserEmail, e.rev3Holder(unitAccount, rev3Spouse))
	calls := e.api.GenerateLoginLinkCalls()

	// Y holds the spouse now: it must generate.
	for range 3 {
		e.clock.Step(2 * time.Second)
		e.mustReconcileLink("y")
	}
	if n := e.api.GenerateLoginLinkCalls(); n != calls+1 {
		y := e.getLink("y")
		t.Fatalf("%d generations after X left the spouse, want 1: Y is %s: %s", n-calls,
			y.Status.Conditions[0].Reason, y.Status.Conditions[0].Message)
	}
	e.wantLink("y", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.wantNoDeadLinkReady("y", unitAccount, rev3Spouse)
}

// 1b. Same, but X's status is simply cleared (the regression test's window) while X is now
// by accountID for the primary holder and the Lease is the spouse's: the window alone.
func TestUnitRev3SpouseLeaseWindowOnly(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.rev3Takeover("y", "x", rev3Spouse)
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.UserEmail = "" })
	e.clearLinkStatus("x")
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink("y")
	if n := e.api.GenerateLoginLinkCalls(); n != 3 {
		y := e.getLink("y")
		t.Fatalf("%d generations, want 3 (Y regenerates for the spouse): Y is %s: %s", n,
			y.Status.Conditions[0].Reason, y.Status.Conditions[0].Message)
	}
}

// 1c. X (by accountID for the spouse) holds the spouse's Lease; its spec drops userEmail (now
// the primary holder). X must act for the primary holder; the older spouse LoginLink Y
// takes the spouse back.
func TestUnitRev3UserEmailRemovedFromHolder(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.rev3Takeover("y", "x", rev3Spouse)
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.UserEmail = "" })
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink("x")
	if x := e.getLink("x"); x.Status.UserEmail != rev3Holder {
		t.Errorf("x (no userEmail: the primary holder %s) resolved user %q", rev3Holder, x.Status.UserEmail)
	}
	for range 3 {
		e.clock.Step(2 * time.Second)
		e.mustReconcileLink("y")
	}
	y := e.getLink("y")
	if c := y.Status.Conditions[0]; c.Status != metav1.ConditionTrue {
		t.Fatalf("Y (spouse) is %s: %s", c.Reason, c.Message)
	}
}

// 1d. X holds the primary's Lease; its spec changes to userEmail=spouse. The older primary
// LoginLink O must take the primary back.
func TestUnitRev3HolderMovesToSpouse(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.rev3Takeover("o", "x", "")
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.UserEmail = rev3Spouse })
	for range 3 {
		e.clock.Step(2 * time.Second)
		e.mustReconcileLink("o")
	}
	e.wantLink("o", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.wantNoDeadLinkReady("o", unitAccount, rev3Holder)
}

// 1e. X holds the primary's Lease; its spec moves to another account (status not written
// yet: the window). O must take the primary back.
func TestUnitRev3HolderMovesToOtherAccountInWindow(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.rev3Takeover("o", "x", "")
	e.rev3Edit("x", func(ll *partnersv1.LoginLink) { ll.Spec.AccountID = &[]int64{rev3Other}[0] })
	for range 3 {
		e.clock.Step(2 * time.Second)
		e.mustReconcileLink("o")
	}
	e.wantLink("o", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.wantNoDeadLinkReady("o", unitAccount, rev3Holder)
}

// 2a. The window with spouse LoginLinks (spec.userEmail set).
func TestUnitRev3WindowSpouse(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	holderWindow(t, e, func(n string, c time.Time) *partnersv1.LoginLink {
		return newLink(n, c, byID(unitAccount, rev3Spouse))
	}, rev3Spouse)
}

// 2b. The window with accountRef LoginLinks.
func TestUnitRev3WindowAccountRef(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.create(e.newAccount("acme", rev3Holder, unitAccount, unitT0.Add(-5*time.Hour)))
	holderWindow(t, e, func(n string, c time.Time) *partnersv1.LoginLink {
		return newLink(n, c, byRef("acme", ""))
	}, rev3Holder)
}

// 2c. The window with accountID LoginLinks of a claimed account (holder's email from the PartnerAccount).
func TestUnitRev3WindowClaimedAccountByID(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.create(e.newAccount("acme", rev3Holder, unitAccount, unitT0.Add(-5*time.Hour)))
	holderWindow(t, e, func(n string, c time.Time) *partnersv1.LoginLink {
		return newLink(n, c, byID(unitAccount, ""))
	}, rev3Holder)
}

// 2d. Mixed: old by accountID for the primary (unclaimed), new by accountID with the primary's
// email in spec.userEmail; and the reverse.
func TestUnitRev3WindowMixed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
	}{{"old no user, new explicit", "", rev3Holder}, {"old explicit, new no user", rev3Holder, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t)
			e.answerLinks(rev3Holder)
			e.answerPrimary(rev3Holder)
			holderWindow(t, e, func(n string, c time.Time) *partnersv1.LoginLink {
				u := tc.old
				if n == "new" {
					u = tc.new
				}
				return newLink(n, c, byID(unitAccount, u))
			}, rev3Holder)
		})
	}
}

// 3a. The cache-side path: a newcomer whose first pass cannot learn its user (Retrieve
// Account fails: status names no user) is invisible to the older LoginLink's candidates.
// The older one, due for renewal, renews under its own Lease without any check. Count
// generations until both settle (ideal: 1, the newcomer's).
func TestUnitRev3OlderRenewsWhileNewcomerUnresolved(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.create(newLink("old", unitT0.Add(-2*time.Hour), byID(unitAccount, "")))
	e.mustReconcileLink("old")
	e.clock.Step(2 * time.Second)
	e.create(newLink("new", unitT0.Add(-time.Hour), byID(unitAccount, "")))
	e.api.GetAccountFunc = func(context.Context, fifteenth.AccountID) (*fifteenth.Account, error) {
		return nil, &fifteenth.Error{Route: fifteenth.RouteGetAccount, StatusCode: 500, Code: "INTERNAL_ERROR", Message: "boom"}
	}
	_, _ = e.reconcileLink("new")
	t.Logf("new after failed read: %+v", e.getLink("new").Status.Conditions[0].Reason)
	e.clock.Step(23 * time.Hour) // past old's renewal time
	e.mustReconcileLink("old")
	t.Logf("generations after old's pass: %d", e.api.GenerateLoginLinkCalls())
	e.answerPrimary(rev3Holder)
	for range 2 {
		e.clock.Step(2 * time.Second)
		_, _ = e.reconcileLink("new")
		e.mustReconcileLink("old")
	}
	n := e.api.GenerateLoginLinkCalls()
	t.Logf("generations in all: %d (1 before the newcomer)", n)
	e.wantNoDeadLinkReady("old", unitAccount, rev3Holder)
	e.wantNoDeadLinkReady("new", unitAccount, rev3Holder)
	e.wantLink("new", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.wantLink("old", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	if n > 3 {
		t.Fatalf("%d generations, want at most 3", n)
	}
}

// 3b. Neither has a link yet; the newcomer's first pass has not run; the older one generates
// first (never seeing the newcomer), then the newcomer. Then both settle: no third generation.
func TestUnitRev3BothFreshOlderFirst(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.create(newLink("old", unitT0.Add(-2*time.Hour), byID(unitAccount, "")),
		newLink("new", unitT0.Add(-time.Hour), byID(unitAccount, "")))
	e.mustReconcileLink("old")
	e.mustReconcileLink("new")
	for range 3 {
		e.clock.Step(2 * time.Second)
		e.mustReconcileLink("old")
		e.mustReconcileLink("new")
	}
	if n := e.api.GenerateLoginLinkCalls(); n != 2 {
		t.Fatalf("%d generations, want 2", n)
	}
	e.wantLink("new", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.wantLink("old", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	e.wantNoDeadLinkReady("old", unitAccount, rev3Holder)
	e.wantNoDeadLinkReady("new", unitAccount, rev3Holder)
}

// 4. Newcomer's status cleared while the old one still shows Ready (the pass where the cache
// shows its own link current): after old's pass, old must not be Ready with a dead link,
// with the generation in flight (Wait) and after it.
func TestUnitRev3NoDeadLinkReadyInFlight(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(rev3Holder)
	e.answerPrimary(rev3Holder)
	e.create(newLink("old", unitT0.Add(-2*time.Hour), byID(unitAccount, "")))
	e.mustReconcileLink("old")
	e.clock.Step(2 * time.Second)
	e.create(newLink("new", unitT0.Add(-time.Hour), byID(unitAccount, "")))
	// new takes the Lease and its call is in flight (never returns in this pass: simulate by
	// taking the Lease directly as Begin does).
	nl := e.getLink("new")
	rec, err := e.elector.Live(e.ctx, election.NewKey(unitEndpoint, unitAccount, rev3Holder))
	if err != nil {
		t.Fatal(err)
	}
	took, err := e.elector.Begin(e.ctx, election.NewKey(unitEndpoint, unitAccount, rev3Holder), candidateOf(nl, true), rec,
		func(context.Context, election.Candidate) (bool, error) { return true, nil })
	if err != nil || took.Verdict != election.Proceed {
		t.Fatalf("begin: %v %v", took, err)
	}
	e.clock.Step(time.Second)
	e.mustReconcileLink("old")
	e.wantNoDeadLinkReady("old", unitAccount, rev3Holder)
	if err := e.elector.Finish(e.ctx, election.NewKey(unitEndpoint, unitAccount, rev3Holder), candidateOf(nl, true),
		election.Generated, stamp(e.clock.Now())); err != nil {
		t.Fatal(err)
	}
	e.clock.Step(time.Second)
	e.mustReconcileLink("old")
	e.wantNoDeadLinkReady("old", unitAccount, rev3Holder)
	if n := e.api.GenerateLoginLinkCalls(); n != 1 {
		t.Fatalf("%d generations, want 1 (old must not take the user from new)", n)
	}
}

package controllers

// Regression tests of bugs the unit harness found in the election's first version (each
// failed before its fix; each comment names the code that was at fault and the fix).

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Was a bug (hot loop): a failed generation wakes its own LoginLink through the watch events of its
// own writes, bypassing the workqueue's backoff. Every generation attempt writes the user's
// Lease twice (Elector.Begin takes it, Elector.Finish ends the flight) and, for a LoginLink
// that has a Secret, writes the Secret twice (callAndStore sets the generating-since marker,
// generationFailed removes it after a 4xx/429). The Lease watch (ofLease, loginlink_generate.go)
// maps every Lease event to every LoginLink of the account, the writer included; Owns(Secret)
// maps every Secret event to its owner. Both enqueue with Add, so the LoginLink is reconciled
// again at once: with a persistent 500 the API is called in a tight loop (against envtest and
// the simulator: 179 calls in 3 s instead of 2-3), and after a 429 the passes (blocked by the
// client's limiter) rewrite the Lease and the Secret in a tight loop until the reset.
func TestUnitRegressionOwnWritesOfAFailedGenerationRequeueIt(t *testing.T) {
	tests := []struct {
		name string
		// secret seeds a due link in a Secret (a renewal) instead of no Secret (a first link).
		secret bool
		err    error
		kind   string
	}{
		{"500 on a first link: its Lease writes", false, errServer, "Lease"},
		{"429 on a renewal: its Lease writes", true, rateLimited(unitT0.Add(21 * time.Hour)), "Lease"},
		{"429 on a renewal: its Secret writes", true, rateLimited(unitT0.Add(21 * time.Hour)), "Secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			ll := newLink("flaky", unitT0.Add(-2*time.Hour), byID(unitAccount, unitEmail))
			e.create(ll)
			if tt.secret {
				e.seedSecret(ll, storedFor(ll, unitAccount, unitEmail, "https://app.fifteenth.test/login/old", unitT0.Add(-time.Hour)))
				e.clock.Step(20 * time.Hour)
			}
			e.failLinks(tt.err)
			writes := e.recordWrites(func() { _, _ = e.reconcileLink("flaky") })
			e.wantCalls(1, 0, 0)
			w := e.wireLoginLinks()

			w.deliver(writes, tt.kind)
			if eventually(500*time.Millisecond, func() bool { return e.api.GenerateLoginLinkCalls() > 1 }) {
				t.Fatalf("the %s events of the failed pass's own writes (%v) reconciled it again at once: %d calls; "+
					"a failed generation must wait for its backoff or its retry time", tt.kind, writes, e.api.GenerateLoginLinkCalls())
			}
		})
	}
}

// Was a bug (terminal failure called again): a LoginLink {accountID} without userEmail whose account
// the API does not know (Retrieve Account: 404 ACCOUNT_NOT_FOUND) ends Ready=False
// AccountNotFound, a terminal reason, yet every later pass of the same generation (any
// wake-up: a resync, a competitor, an annotation) calls Retrieve Account again. In
// loginlink_controller.go reconcileTarget runs primaryHolder (GetAccount) before
// reconcileHolds/terminalHold, and status.userEmail stays empty after the 404, so the
// remembered-email shortcut of primaryHolder never applies.
func TestUnitRegressionPrimaryHolderNotFoundIsCalledOnEveryPass(t *testing.T) {
	e := newUnitEnv(t)
	e.create(newLink("gone", unitT0, byID(unitAccount, "")))
	e.api.GetAccountFunc = func(context.Context, fifteenth.AccountID) (*fifteenth.Account, error) {
		return nil, apiErr(404, fifteenth.CodeAccountNotFound)
	}
	e.mustReconcileLink("gone")
	e.wantLink("gone", metav1.ConditionFalse, partnersv1.ReasonAccountNotFound)
	e.wantCalls(0, 1, 0)

	e.clock.Step(time.Minute)
	e.mustReconcileLink("gone") // a wake-up: same generation, no renewal request
	e.wantLink("gone", metav1.ConditionFalse, partnersv1.ReasonAccountNotFound)
	e.wantCalls(0, 1, 0)
}

// Was a bug (held-by names the wrong LoginLink): retireStaleLink (loginlink_election.go) writes the
// Lease's last taker (live.Holder) into the Secret's held-by annotation. After an ineligible
// newcomer took the Lease for a call that failed (400, NoEffect), the last taker is that
// newcomer, not the LoginLink that holds the user and whose generation invalidated the link.
// The annotation then contradicts the condition (Superseded: "LoginLink b holds ...") and the
// API documentation of partners.fifteenth.com/held-by.
func TestUnitRegressionHeldByNamesTheLeasesLastTaker(t *testing.T) {
	e := newUnitEnv(t)
	a := newLink("a", unitT0.Add(-3*time.Hour), byID(unitAccount, unitEmail), withStatus(true, partnersv1.ReasonLinkValid))
	b := newLink("b", unitT0.Add(-2*time.Hour), byID(unitAccount, unitEmail))
	e.create(a, b)
	e.seedSecret(a, storedFor(a, unitAccount, unitEmail, "https://app.fifteenth.test/login/a", unitT0.Add(-3*time.Hour)))
	e.answerLinks(unitEmail)
	e.mustReconcileLink("b")
	e.wantLink("b", metav1.ConditionTrue, partnersv1.ReasonGenerated)

	e.create(newLink("c", unitT0.Add(-time.Hour), byID(unitAccount, unitEmail),
		func(ll *partnersv1.LoginLink) { ll.Spec.RedirectURL = "https://elsewhere.example/x" }))
	e.failLinks(errInvalidRedirect)
	e.mustReconcileLink("c")
	e.wantLink("c", metav1.ConditionFalse, partnersv1.ReasonInvalidRedirectURL)

	e.mustReconcileLink("a")
	got := e.wantLink("a", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	s := e.getSecret("a")
	if _, ok := s.Data[partnersv1.SecretKeyLoginLink]; ok {
		t.Fatal("a's invalidated link was not removed")
	}
	if h := s.Annotations[partnersv1.AnnotationHeldBy]; h != "b" {
		t.Fatalf("held-by = %q, want \"b\" (the holder; a's condition says: %s)", h, got.Status.Conditions[0].Message)
	}
}

// Was a bug (two links for one user): a LoginLink by accountID for the account's holder
// (no userEmail) records its user in its status only when its pass ends, after the user's
// Lease already records its generation. In that window an older LoginLink for the same user,
// whose link the generation invalidated, did not see the newcomer as a competitor (the cache
// knew no user for it) and took the Lease from it: competesFor read the newcomer live and,
// finding no user, said it did not compete. The older one generated again, invalidating the
// newcomer's link, which then generated again: four links instead of two (envtest:
// TestReviewRestartSupersededRestartsNothing, 1 run in 8). The Lease's holder took the Lease
// for its user: while its status says nothing, that is its user.
func TestUnitRegressionHolderWithoutRecordedUserKeepsTheLease(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(unitEmail)
	e.answerPrimary(unitEmail)
	holderWindow(t, e, func(name string, created time.Time) *partnersv1.LoginLink {
		return newLink(name, created, byID(unitAccount, ""))
	}, unitEmail)
}

// holderWindow is that window for two LoginLinks of user shaped by mk: "old" generates, "new"
// generates, new's status is cleared (its pass has not written it yet), old passes again and
// must be Superseded without a generation; then both pass again and settle.
func holderWindow(t *testing.T, e *unitEnv, mk func(string, time.Time) *partnersv1.LoginLink, user string) {
	t.Helper()
	e.create(mk("old", unitT0.Add(-2*time.Hour)))
	e.mustReconcileLink("old")
	e.wantLink("old", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.clock.Step(2 * time.Second)
	e.create(mk("new", unitT0.Add(-time.Hour)))
	e.mustReconcileLink("new")
	e.wantLink("new", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	e.clearLinkStatus("new")
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink("old")
	if n := e.api.GenerateLoginLinkCalls(); n != 2 {
		t.Fatalf("%d generations, want 2: the older LoginLink took the user from the Lease's holder", n)
	}
	e.wantLink("old", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
	e.wantNoDeadLinkReady("old", unitAccount, user)
	e.clock.Step(2 * time.Second)
	e.mustReconcileLink("new")
	e.wantNoDeadLinkReady("new", unitAccount, user)
	e.mustReconcileLink("old")
	if n := e.api.GenerateLoginLinkCalls(); n != 2 {
		t.Fatalf("%d generations after both passed again, want 2", n)
	}
	e.wantNoDeadLinkReady("old", unitAccount, user)
}

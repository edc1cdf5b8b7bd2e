package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Scenario 6: a PartnerAccount is Ready when its holder is held by a Ready LoginLink of its
// namespace, whether its own or another one; status.users names that LoginLink.
func TestUnitPartnerAccountHeldByAnotherLoginLink(t *testing.T) {
	tests := []struct {
		name string
		// portal shapes the newer LoginLink for the holder; passes says whether it runs a pass.
		portal     func(*partnersv1.LoginLink)
		passes     bool
		wantStatus metav1.ConditionStatus
		wantReason string
		wantHeldBy string
	}{
		{name: "held by a Ready LoginLink of the namespace", portal: byRef("john", ""), passes: true,
			wantStatus: metav1.ConditionTrue, wantReason: partnersv1.ReasonAccountReady, wantHeldBy: "portal"},
		{name: "held by a LoginLink that is not Ready",
			portal: func(ll *partnersv1.LoginLink) {
				byRef("john", "")(ll)
				withStatus(false, partnersv1.ReasonRateLimited)(ll)
			},
			wantStatus: metav1.ConditionFalse, wantReason: partnersv1.ReasonLinksNotReady, wantHeldBy: "portal"},
		{name: "a LoginLink of another namespace never holds the account's users",
			portal: func(ll *partnersv1.LoginLink) {
				ll.Namespace = "elsewhere"
				byID(unitAccount, strings.ToUpper(unitEmail))(ll)
				withStatus(true, partnersv1.ReasonLinkValid)(ll)
			},
			wantStatus: metav1.ConditionTrue, wantReason: partnersv1.ReasonAccountReady, wantHeldBy: "john-holder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			pa := e.newAccount("john", unitEmail, unitAccount, unitT0.Add(-3*time.Hour))
			holder := e.ownedHolder(pa, unitT0.Add(-2*time.Hour))
			portal := newLink("portal", unitT0.Add(-time.Hour), tt.portal)
			e.create(pa, holder, portal)
			e.seedSecret(holder, storedFor(holder, unitAccount, unitEmail, "https://app.fifteenth.test/login/holder", unitT0.Add(-2*time.Hour)))
			e.seedSecret(portal, storedFor(portal, unitAccount, unitEmail, "https://app.fifteenth.test/login/portal", unitT0.Add(-time.Hour)))
			if tt.passes {
				e.mustReconcileLink("portal")
				e.wantLink("portal", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
				e.mustReconcileLink("john-holder")
				e.wantLink("john-holder", metav1.ConditionFalse, partnersv1.ReasonSuperseded)
			}

			res, err := e.reconcileAccount("john")
			if err != nil {
				t.Fatal(err)
			}
			e.wantCalls(0, 0, 0)
			got := e.wantAccount("john", tt.wantStatus, tt.wantReason)
			if len(got.Status.Users) != 1 {
				t.Fatalf("status.users %+v, want the holder only", got.Status.Users)
			}
			if u := got.Status.Users[0]; u.Email != unitEmail || u.Role != "holder" || u.HeldBy != tt.wantHeldBy {
				t.Fatalf("status.users[0] = %+v, want %s holder heldBy %q", u, unitEmail, tt.wantHeldBy)
			}
			if res.RequeueAfter != time.Hour {
				t.Fatalf("requeue after %v, want the account sync period", res.RequeueAfter)
			}
		})
	}
}

// Scenario 6: a LoginLink of the name a PartnerAccount needs, that it does not own, is a
// terminal conflict: no error (no retry storm), no call, the LoginLink untouched.
func TestUnitPartnerAccountLoginLinkConflict(t *testing.T) {
	for _, role := range []string{"holder", "spouse"} {
		t.Run(role, func(t *testing.T) {
			e := newUnitEnv(t)
			pa := e.newAccount("jane", "jane@example.com", 0, unitT0.Add(-time.Hour))
			pa.Status = partnersv1.PartnerAccountStatus{}
			pa.Spec.Spouse = &partnersv1.SpouseSpec{Email: "joe@example.com", FirstName: "Joe", LastName: "Doe"}
			squatter := newLink("jane-"+role, unitT0.Add(-2*time.Hour), byID(99, "someone@example.com"))
			e.create(pa, squatter)
			before := e.getLink("jane-" + role)

			for range 2 {
				res, err := e.reconcileAccount("jane")
				if err != nil || res.RequeueAfter != 0 {
					t.Fatalf("conflict pass returned %+v, %v; want no requeue and no error", res, err)
				}
				got := e.wantAccount("jane", metav1.ConditionFalse, partnersv1.ReasonLoginLinkConflict)
				c := got.Status.Conditions[0]
				if !strings.Contains(c.Message, "jane-"+role) || !strings.Contains(c.Message, role) {
					t.Fatalf("message %q does not name LoginLink jane-%s and its role", c.Message, role)
				}
			}
			e.wantCalls(0, 0, 0)
			after := e.getLink("jane-" + role)
			if after.ResourceVersion != before.ResourceVersion || len(after.OwnerReferences) != 0 {
				t.Fatalf("the unowned LoginLink was written: %+v", after.ObjectMeta)
			}
		})
	}
}

// Scenario 8 (PartnerAccounts): a resync of a Ready PartnerAccount writes nothing and calls nothing.
func TestUnitPartnerAccountResyncWritesNothing(t *testing.T) {
	e := newUnitEnv(t)
	pa := e.newAccount("john", unitEmail, unitAccount, unitT0.Add(-3*time.Hour))
	holder := e.ownedHolder(pa, unitT0.Add(-2*time.Hour))
	e.create(pa, holder)
	e.seedSecret(holder, storedFor(holder, unitAccount, unitEmail, "https://app.fifteenth.test/login/holder", unitT0.Add(-2*time.Hour)))
	e.mustReconcileLink("john-holder")
	e.wantLink("john-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)

	if _, err := e.reconcileAccount("john"); err != nil {
		t.Fatal(err)
	}
	got := e.wantAccount("john", metav1.ConditionTrue, partnersv1.ReasonAccountReady)
	if got.Status.LoginLinkSecretName != "john-login-link" || got.Status.LoginLinkExpiresAt == nil {
		t.Fatalf("status %+v lacks the holder's Secret and expiry", got.Status)
	}
	paRV, llRV := got.ResourceVersion, e.getLink("john-holder").ResourceVersion
	for range 2 {
		e.clock.Step(time.Minute)
		res, err := e.reconcileAccount("john")
		if err != nil || res.RequeueAfter <= 0 {
			t.Fatalf("resync returned %+v, %v", res, err)
		}
		if rv := e.getAccount("john").ResourceVersion; rv != paRV {
			t.Fatalf("a resync patched the PartnerAccount (resourceVersion %s -> %s)", paRV, rv)
		}
		if rv := e.getLink("john-holder").ResourceVersion; rv != llRV {
			t.Fatalf("a resync updated the holder LoginLink (resourceVersion %s -> %s)", llRV, rv)
		}
		e.mustReconcileLink("john-holder")
		if rv := e.getLink("john-holder").ResourceVersion; rv != llRV {
			t.Fatalf("a resync of the holder LoginLink wrote it (resourceVersion %s -> %s)", llRV, rv)
		}
	}
	e.wantCalls(0, 0, 0)
}

// Scenario 6, through the reconciler: adopting spec.accountID is Ready only for a verified
// email; every other answer leaves it not Ready, with the documented reason and schedule.
func TestUnitPartnerAccountAdoptionNeverReadyUnverified(t *testing.T) {
	retryAt := unitT0.Add(5 * time.Minute)
	tests := []struct {
		name       string
		acct       *fifteenth.Account
		err        error
		wantReason string
		wantErr    bool
		// wantAfter bounds RequeueAfter: [min, max]; zero max means exactly 0.
		minAfter, maxAfter time.Duration
	}{
		{"email verified", &fifteenth.Account{ID: 77, Email: "JOHN@example.com", Status: fifteenth.AccountActive}, nil,
			partnersv1.ReasonAdopted, false, time.Hour, time.Hour},
		{"email mismatch", &fifteenth.Account{ID: 77, Email: "other@example.com"}, nil, partnersv1.ReasonAccountMismatch, false, 0, 0},
		{"404 ACCOUNT_NOT_FOUND", nil, apiErr(404, fifteenth.CodeAccountNotFound), partnersv1.ReasonAccountNotFound, false, 0, 0},
		{"429", nil, &fifteenth.Error{StatusCode: 429, Code: fifteenth.CodeRateLimitExceeded, RetryAt: retryAt},
			partnersv1.ReasonRateLimited, false, 5 * time.Minute, 5*time.Minute + 2*time.Second},
		{"500", nil, apiErr(500, ""), partnersv1.ReasonAPIUnavailable, true, 0, 0},
		{"401", nil, apiErr(401, fifteenth.CodeUnauthorized), partnersv1.ReasonAccountUnverified, false, time.Hour, time.Hour},
		{"403", nil, apiErr(403, ""), partnersv1.ReasonAccountUnverified, false, time.Hour, time.Hour},
		{"400", nil, apiErr(400, fifteenth.CodeValidation), partnersv1.ReasonAccountUnverified, false, time.Hour, time.Hour},
		{"404 without a code", nil, apiErr(404, ""), partnersv1.ReasonAccountUnverified, false, time.Hour, time.Hour},
		{"undecodable answer", nil, undecodable(), partnersv1.ReasonAccountUnverified, false, time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			pa := e.newAccount("john", unitEmail, 0, unitT0.Add(-time.Minute))
			pa.Status = partnersv1.PartnerAccountStatus{}
			pa.Spec.AccountID = ptr.To(int64(77))
			e.create(pa)
			e.api.GetAccountFunc = func(context.Context, fifteenth.AccountID) (*fifteenth.Account, error) { return tt.acct, tt.err }

			res, err := e.reconcileAccount("john")
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if res.RequeueAfter < tt.minAfter || res.RequeueAfter > tt.maxAfter {
				t.Fatalf("requeue after %v, want within [%v, %v]", res.RequeueAfter, tt.minAfter, tt.maxAfter)
			}
			e.wantCalls(0, 1, 0)
			status := metav1.ConditionFalse
			if tt.wantReason == partnersv1.ReasonAdopted {
				status = metav1.ConditionTrue
			}
			got := e.wantAccount("john", status, tt.wantReason)
			if status == metav1.ConditionFalse && got.Status.AccountID != 0 {
				t.Fatalf("an unverified account was recorded: status.accountID %d", got.Status.AccountID)
			}
			if tt.wantReason == partnersv1.ReasonAccountUnverified {
				// Looked at again after the sync period only, whatever wakes it.
				e.clock.Step(30 * time.Minute)
				if _, err := e.reconcileAccount("john"); err != nil {
					t.Fatal(err)
				}
				e.wantCalls(0, 1, 0)
			}
		})
	}
}

func apiErr(status int, code string) *fifteenth.Error {
	return &fifteenth.Error{Route: fifteenth.RouteGetAccount, StatusCode: status, Code: code}
}

func undecodable() error {
	return &fifteenth.TransportError{Route: fifteenth.RouteGetAccount, Err: errors.New("answer 200 could not be decoded: syntax")}
}

// Scenario 6: decideAdoption as a pure table.
func TestUnitDecideAdoption(t *testing.T) {
	spec := &partnersv1.PartnerAccountSpec{Email: "john@example.com"}
	withSpouse := &partnersv1.PartnerAccountSpec{Email: "john@example.com", Spouse: &partnersv1.SpouseSpec{Email: "jane@example.com"}}
	at := unitT0.Add(time.Minute)
	ok := &fifteenth.Account{ID: 7, Email: "John@Example.com"}
	tests := []struct {
		name       string
		spec       *partnersv1.PartnerAccountSpec
		acct       *fifteenth.Account
		err        error
		fromCreate bool
		step       nextStep
		reason     string
		retryAt    time.Time
	}{
		{"email ok (case-insensitive)", spec, ok, nil, false, stepProceed, "", time.Time{}},
		{"email and spouse ok", withSpouse, &fifteenth.Account{ID: 7, Email: "john@example.com",
			Spouse: &fifteenth.Spouse{Email: "JANE@example.com"}}, nil, false, stepProceed, "", time.Time{}},
		{"email mismatch", spec, &fifteenth.Account{ID: 7, Email: "x@example.com"}, nil, false, stepTerminal, partnersv1.ReasonAccountMismatch, time.Time{}},
		{"email mismatch after a 409 of our creation", spec, &fifteenth.Account{ID: 7, Email: "x@example.com"}, nil, true,
			stepTerminal, partnersv1.ReasonValidationFailed, time.Time{}},
		{"spouse missing", withSpouse, ok, nil, false, stepTerminal, partnersv1.ReasonAccountMismatch, time.Time{}},
		{"404 ACCOUNT_NOT_FOUND", spec, nil, apiErr(404, fifteenth.CodeAccountNotFound), false, stepTerminal, partnersv1.ReasonAccountNotFound, time.Time{}},
		{"429", spec, nil, &fifteenth.Error{StatusCode: 429, Code: fifteenth.CodeRateLimitExceeded, RetryAt: at}, false,
			stepRetryAt, partnersv1.ReasonRateLimited, at},
		{"client-side rate limit", spec, nil, &fifteenth.RateLimitError{Scope: fifteenth.ScopeLoginLink, RetryAt: at}, false,
			stepRetryAt, partnersv1.ReasonRateLimited, at},
		{"500", spec, nil, apiErr(500, ""), false, stepBackoff, partnersv1.ReasonAPIUnavailable, time.Time{}},
		{"503", spec, nil, apiErr(503, ""), false, stepBackoff, partnersv1.ReasonAPIUnavailable, time.Time{}},
		{"timeout", spec, nil, &fifteenth.TransportError{Route: fifteenth.RouteGetAccount, Err: context.DeadlineExceeded}, false,
			stepBackoff, partnersv1.ReasonAPIUnavailable, time.Time{}},
		{"401", spec, nil, apiErr(401, fifteenth.CodeUnauthorized), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"403", spec, nil, apiErr(403, ""), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"400", spec, nil, apiErr(400, fifteenth.CodeValidation), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"404 without a code", spec, nil, apiErr(404, ""), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"405 without a code", spec, nil, apiErr(405, ""), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"501 without a code", spec, nil, apiErr(501, ""), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"undecodable", spec, nil, undecodable(), false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"answer without an email", spec, &fifteenth.Account{ID: 7}, nil, false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
		{"no answer and no error", spec, nil, nil, false, stepRetryAt, partnersv1.ReasonAccountUnverified, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decideAdoption(tt.spec, 7, tt.acct, tt.err, tt.fromCreate)
			if v.step != tt.step || v.reason != tt.reason || !v.retryAt.Equal(tt.retryAt) {
				t.Fatalf("verdict %+v, want step %d reason %q retryAt %v", v, tt.step, tt.reason, tt.retryAt)
			}
			if v.step != stepProceed && v.message == "" {
				t.Fatal("a refusal without a message")
			}
			if tt.err != nil && v.step == stepProceed {
				t.Fatal("an error answer led to adoption (never Ready without a verified email)")
			}
		})
	}
}

// Scenario 6: decideCreateFailure as a pure table.
func TestUnitDecideCreateFailure(t *testing.T) {
	at := unitT0.Add(time.Minute)
	dup := func(details string) *fifteenth.Error {
		e := &fifteenth.Error{StatusCode: 409, Code: fifteenth.CodeDuplicateEmail}
		if details != "" {
			e.Details = map[string]json.RawMessage{"existing_account_id": json.RawMessage(details)}
		}
		return e
	}
	tests := []struct {
		name    string
		err     error
		step    nextStep
		reason  string
		adoptID int64
		retryAt time.Time
	}{
		{"409 with the existing account", dup("77"), stepProceed, "", 77, time.Time{}},
		{"409 with the existing account as a string", dup(`"77"`), stepProceed, "", 77, time.Time{}},
		{"409 without the existing account", dup(""), stepTerminal, partnersv1.ReasonValidationFailed, 0, time.Time{}},
		{"409 with an unusable existing account", dup(`"abc"`), stepTerminal, partnersv1.ReasonValidationFailed, 0, time.Time{}},
		{"429", &fifteenth.Error{StatusCode: 429, Code: fifteenth.CodeRateLimitExceeded, RetryAt: at}, stepRetryAt, partnersv1.ReasonRateLimited, 0, at},
		{"client-side rate limit", &fifteenth.RateLimitError{Scope: fifteenth.ScopeAccountCreate, RetryAt: at}, stepRetryAt, partnersv1.ReasonRateLimited, 0, at},
		{"400 VALIDATION_ERROR", apiErr(400, fifteenth.CodeValidation), stepTerminal, partnersv1.ReasonValidationFailed, 0, time.Time{}},
		{"401", apiErr(401, fifteenth.CodeUnauthorized), stepBackoff, partnersv1.ReasonUnauthorized, 0, time.Time{}},
		{"403", apiErr(403, ""), stepBackoff, partnersv1.ReasonUnauthorized, 0, time.Time{}},
		{"408", apiErr(http.StatusRequestTimeout, ""), stepBackoff, partnersv1.ReasonAPIUnavailable, 0, time.Time{}},
		{"500", apiErr(500, ""), stepBackoff, partnersv1.ReasonAPIUnavailable, 0, time.Time{}},
		{"timeout", &fifteenth.TransportError{Route: fifteenth.RouteCreateAccount, Err: context.DeadlineExceeded}, stepBackoff, partnersv1.ReasonAPIUnavailable, 0, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decideCreateFailure(tt.err)
			if v.step != tt.step || v.reason != tt.reason || v.adoptID != tt.adoptID || !v.retryAt.Equal(tt.retryAt) {
				t.Fatalf("verdict %+v, want step %d reason %q adopt %d retryAt %v", v, tt.step, tt.reason, tt.adoptID, tt.retryAt)
			}
		})
	}
}

// Scenario 6: decideReady as a pure table.
func TestUnitDecideReady(t *testing.T) {
	ready := userHold{email: "john@example.com", role: "holder", heldBy: "john-holder", ready: true}
	tests := []struct {
		name   string
		status string
		users  []userHold
		step   nextStep
		reason string
	}{
		{"every user held by a Ready LoginLink", fifteenth.AccountActive, []userHold{ready,
			{email: "jane@example.com", role: "spouse", heldBy: "portal", ready: true}}, stepProceed, partnersv1.ReasonAccountReady},
		{"a holder that has not looked yet does not count against it", fifteenth.AccountActive,
			[]userHold{{email: "john@example.com", role: "holder", heldBy: "john-holder", pending: true}}, stepProceed, partnersv1.ReasonAccountReady},
		{"suspended", fifteenth.AccountSuspended, []userHold{ready}, stepTerminal, partnersv1.ReasonAccountSuspended},
		{"held in another namespace", fifteenth.AccountActive,
			[]userHold{{email: "john@example.com", role: "holder", otherNamespace: true, ready: true}}, stepTerminal, partnersv1.ReasonLinksNotReady},
		{"nobody can hold the user", fifteenth.AccountActive,
			[]userHold{{email: "john@example.com", role: "holder", reason: partnersv1.ReasonInvalidRedirectURL}}, stepTerminal, partnersv1.ReasonLinksNotReady},
		{"the holder is not Ready", fifteenth.AccountActive,
			[]userHold{{email: "john@example.com", role: "holder", heldBy: "portal", reason: partnersv1.ReasonRateLimited}}, stepTerminal, partnersv1.ReasonLinksNotReady},
		{"the spouse is not Ready", fifteenth.AccountActive, []userHold{ready,
			{email: "jane@example.com", role: "spouse", heldBy: "john-spouse", reason: partnersv1.ReasonUserNotFound}}, stepTerminal, partnersv1.ReasonLinksNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decideReady(unitAccount, tt.status, tt.users)
			if v.step != tt.step || v.reason != tt.reason {
				t.Fatalf("verdict %+v, want step %d reason %q", v, tt.step, tt.reason)
			}
			if v.step != stepProceed {
				for _, u := range tt.users {
					if (!u.ready || u.otherNamespace) && tt.status != fifteenth.AccountSuspended && !strings.Contains(v.message, u.email) {
						t.Fatalf("message %q does not name the user %s", v.message, u.email)
					}
				}
			}
		})
	}
}

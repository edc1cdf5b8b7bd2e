package controllers

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// The PartnerAccount's decisions, as pure functions of what the API answered and what the
// cache shows: the reconciler gathers, asks these, and acts.

// nextStep is what a pass does after a decision.
type nextStep int

const (
	// stepProceed: carry on (adopt the account, or report it).
	stepProceed nextStep = iota
	// stepTerminal: wait for a spec change; no retry.
	stepTerminal
	// stepBackoff: retry with capped exponential backoff.
	stepBackoff
	// stepRetryAt: retry at a given time (a rate limit's reset, the sync period).
	stepRetryAt
)

// verdict is a decision: what to do next, and the condition to show when it is not stepProceed.
type verdict struct {
	step    nextStep
	reason  string
	message string
	// adoptID is the account to adopt (a 409's existing account).
	adoptID int64
	// retryAt is when to try again with stepRetryAt (zero: after the sync period).
	retryAt time.Time
}

// rateLimitedMessage says that a PartnerAccount waits for the creation budget. It holds no
// place or time, which change while it waits: the status is written once, not on every turn.
const rateLimitedMessage = "the account-creation rate limit applies; waiting for a free slot"

// decideCreateFailure says what a failed Create Account means. A 409 names the account that
// holds the email: it is verified and adopted. Nothing else creates again before a change,
// a backoff or a rate limit's reset.
func decideCreateFailure(err error) verdict {
	apiErr, isAPI := fifteenth.AsError(err)
	if isAPI && apiErr.Code == fifteenth.CodeDuplicateEmail {
		if id, ok := apiErr.ExistingAccountID(); ok {
			return verdict{step: stepProceed, adoptID: int64(id)}
		}
	}
	if at, limited := fifteenth.RetryAt(err); limited {
		return verdict{step: stepRetryAt, reason: partnersv1.ReasonRateLimited, retryAt: at, message: rateLimitedMessage}
	}
	switch {
	case isAPI && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden):
		return verdict{step: stepBackoff, reason: partnersv1.ReasonUnauthorized, message: err.Error()}
	case fifteenth.IsTerminal(err):
		return verdict{step: stepTerminal, reason: partnersv1.ReasonValidationFailed, message: err.Error()}
	}
	// The account may or may not exist now: the retry meets a 409 if it does.
	return verdict{step: stepBackoff, reason: partnersv1.ReasonAPIUnavailable, message: err.Error()}
}

// decideAdoption says what a Retrieve Account answer means for adopting account id. An
// account is adopted only when its email (and the spouse's) was verified: an unexpected
// answer waits with AccountUnverified and is looked at again after the sync period.
// fromCreate is true when a 409 of this PartnerAccount's own creation led here.
func decideAdoption(spec *partnersv1.PartnerAccountSpec, id int64, acct *fifteenth.Account, err error, fromCreate bool) verdict {
	mismatch := partnersv1.ReasonAccountMismatch
	if fromCreate {
		mismatch = partnersv1.ReasonValidationFailed
	}
	switch {
	case err == nil && acct != nil && acct.Email != "":
		if !strings.EqualFold(acct.Email, spec.Email) {
			return verdict{step: stepTerminal, reason: mismatch,
				message: fmt.Sprintf("account %d belongs to %s, not to spec.email %s", id, acct.Email, spec.Email)}
		}
		if s := spec.Spouse; s != nil && (acct.Spouse == nil || !strings.EqualFold(acct.Spouse.Email, s.Email)) {
			return verdict{step: stepTerminal, reason: mismatch,
				message: fmt.Sprintf("account %d has no spouse with email %s, and the API cannot add one", id, s.Email)}
		}
		return verdict{step: stepProceed}
	case fifteenth.HasCode(err, fifteenth.CodeAccountNotFound):
		return verdict{step: stepTerminal, reason: partnersv1.ReasonAccountNotFound, message: err.Error()}
	}
	if at, limited := fifteenth.RetryAt(err); limited {
		return verdict{step: stepRetryAt, reason: partnersv1.ReasonRateLimited, retryAt: at,
			message: fmt.Sprintf("a rate limit applies to reading account %d; the next try is at %s", id, at.UTC().Format(time.RFC3339))}
	}
	if err != nil && fifteenth.IsRetryable(err) && !isUnexpectedRoute(err) {
		return verdict{step: stepBackoff, reason: partnersv1.ReasonAPIUnavailable, message: err.Error()}
	}
	why := "an answer without an email"
	if err != nil {
		why = err.Error()
	}
	return verdict{step: stepRetryAt, reason: partnersv1.ReasonAccountUnverified,
		message: fmt.Sprintf("account %d is not adopted: Retrieve Account could not verify its email (%s); trying again after the account sync period", id, why)}
}

// userHold is one user of a PartnerAccount as the election sees it.
type userHold struct {
	email, role string
	// heldBy is the LoginLink that holds the user ("" when none can, or it is in another
	// namespace); otherNamespace tells the latter.
	heldBy         string
	otherNamespace bool
	// ready is whether that LoginLink is Ready; pending whether it has not looked at the
	// account yet (just created); reason and message are its Ready condition's.
	ready, pending  bool
	reason, message string
}

// decideReady says whether a PartnerAccount with an account is Ready: the account is active
// and each of its users has a valid link held by a LoginLink of the namespace, its own or not.
// A LoginLink that has not looked at the new account yet does not count against it.
func decideReady(accountID int64, accountStatus string, users []userHold) verdict {
	if accountStatus == fifteenth.AccountSuspended {
		return verdict{step: stepTerminal, reason: partnersv1.ReasonAccountSuspended,
			message: fmt.Sprintf("account %d is suspended; its links are not renewed until it is active", accountID)}
	}
	var paused *userHold
	for _, u := range users {
		switch {
		case !u.otherNamespace && u.heldBy != "" && !u.ready && u.reason == partnersv1.ReasonPaused:
			// Paused on purpose: reported after any failure of another user, with no alert.
			if paused == nil {
				paused = &u
			}
		case u.otherNamespace:
			return verdict{step: stepTerminal, reason: partnersv1.ReasonLinksNotReady,
				message: fmt.Sprintf("the %s %s is held by a LoginLink in another namespace", u.role, u.email)}
		case u.heldBy == "":
			return verdict{step: stepTerminal, reason: partnersv1.ReasonLinksNotReady,
				message: fmt.Sprintf("no LoginLink can keep a link for the %s %s: %s: %s", u.role, u.email, u.reason, u.message)}
		case !u.ready && !u.pending:
			return verdict{step: stepTerminal, reason: partnersv1.ReasonLinksNotReady,
				message: fmt.Sprintf("LoginLink %s holds the %s %s and is not Ready: %s: %s", u.heldBy, u.role, u.email, u.reason, u.message)}
		}
	}
	if paused != nil {
		return verdict{step: stepTerminal, reason: partnersv1.ReasonPaused,
			message: fmt.Sprintf("LoginLink %s holds the %s %s and is paused: %s", paused.heldBy, paused.role, paused.email, paused.message)}
	}
	return verdict{step: stepProceed, reason: partnersv1.ReasonAccountReady,
		message: fmt.Sprintf("account %d is %s and its users' links are kept", accountID, accountStatus)}
}

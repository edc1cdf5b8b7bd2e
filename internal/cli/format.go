package cli

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// relative says how far t is from now, as kubectl does: "10m ago", "in 6d23h", "now".
func relative(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + duration.HumanDuration(d)
	default:
		return duration.HumanDuration(-d) + " ago"
	}
}

// when is t in RFC 3339 (UTC) and relative to now; "-" when t is not set.
func when(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + relative(now, t.Time) + ")"
}

// short is t relative to now, for tables; "-" when t is not set.
func short(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return relative(now, t.Time)
}

// hints are docs/operations.md's "what to do" for each reason of a Ready condition that is
// not True: one line each.
var hints = map[string]string{
	partnersv1.ReasonAccountNotReady:           "wait: the LoginLink is woken when its PartnerAccount has an account",
	partnersv1.ReasonAccountNotFound:           "fix accountID: the API does not know the account",
	partnersv1.ReasonUserNotFound:              "fix userEmail, or add the user to the account and run `kubectl fifteenth renew`",
	partnersv1.ReasonAccountSuspended:          "contact Fifteenth: nothing is generated until the account is active again",
	partnersv1.ReasonInvalidRedirectURL:        "fix redirectURL: its host must be one of the partner's permitted domains",
	partnersv1.ReasonInvalidRequest:            "read the message and fix the spec",
	partnersv1.ReasonRateLimited:               "nothing: retried exactly at the limit's reset; if frequent, another client shares the key",
	partnersv1.ReasonAPIUnavailable:            "check the API and the network: retried with backoff capped at one minute",
	partnersv1.ReasonUnauthorized:              "rotate the partner key (Secret fifteenth-api-credentials, or the PartnerConfig's Secret)",
	partnersv1.ReasonExpired:                   "change the renewal policy, or run `kubectl fifteenth renew`",
	partnersv1.ReasonSuperseded:                "none: another LoginLink holds the user; delete the holder to hand the user back",
	partnersv1.ReasonSecretConflict:            "delete that Secret or change spec.secretName: a Secret the LoginLink does not own is never overwritten",
	partnersv1.ReasonValidationFailed:          "create a corrected PartnerAccount: the client's identity is immutable",
	partnersv1.ReasonAccountMismatch:           "fix accountID: the adopted account's email (or spouse) differs from the spec",
	partnersv1.ReasonAccountClaimed:            "delete one of the two PartnerAccounts that manage this account; the other takes over",
	partnersv1.ReasonLinksNotReady:             "see the LoginLink that holds (or should hold) the user, below",
	partnersv1.ReasonAccountUnverified:         "check the API URL and key: retried every --account-sync-period",
	partnersv1.ReasonLoginLinkConflict:         "rename or delete the LoginLink <name>-holder or <name>-spouse that the PartnerAccount does not own",
	partnersv1.ReasonAccountNotPermitted:       "use an account of this namespace, or ask an administrator for a grant (--account-access-namespaces)",
	partnersv1.ReasonAccountExists:             "an administrator grants adoption to the namespace, or adopt it with spec.accountID in a granted namespace",
	partnersv1.ReasonPartnerConfigNotPermitted: "use a partner config that admits this namespace, or ask an administrator",
	partnersv1.ReasonPartnerConfigNotReady:     "create or fix the partner config (see its status)",
	partnersv1.ReasonSecretNotFound:            "create the config's Secret with its key",
	partnersv1.ReasonKeyInvalid:                "put a partner key (it starts with 15th_) in the config's Secret",
	partnersv1.ReasonAPIURLNotAllowed:          "use an API URL on the manager's --allowed-api-urls",
	partnersv1.ReasonPaused:                    "none while paused: remove the annotation " + partnersv1.AnnotationPaused + " (here or on the owning PartnerAccount) to resume; a renewal asked now waits for it",
	partnersv1.ReasonStandby:                   "none: a --read-only (standby) manager generates nothing; on failover, run the manager without --read-only (docs/operations.md \"Several clusters\")",

	// Reasons of RolloutRestarted=False (the link itself is fine; it is not generated again).
	partnersv1.ReasonTargetNotFound: "create the workload, or fix spec.rolloutRestartTargets (same namespace): tried again with backoff",
	partnersv1.ReasonForbidden:      "grant the operator get and patch on the workload (docs/reference.md RBAC), or remove the target",
	partnersv1.ReasonPatchFailed:    "read the RolloutRestartFailed Event: tried again with backoff",
}

// okReasons are the reasons of a Ready condition that is True: no hint.
var okReasons = map[string]bool{
	partnersv1.ReasonGenerated: true, partnersv1.ReasonRenewed: true, partnersv1.ReasonLinkValid: true,
	partnersv1.ReasonCreated: true, partnersv1.ReasonAdopted: true, partnersv1.ReasonAccountReady: true,
	partnersv1.ReasonValid: true, partnersv1.ReasonRestarted: true,
}

// hint is the one-line advice for a Ready condition, "" when there is nothing to do or the
// reason is unknown to this plugin.
func hint(c *metav1.Condition) string {
	if c == nil || c.Status == metav1.ConditionTrue {
		return ""
	}
	return hints[c.Reason]
}

// cannotHold are the reasons of a LoginLink that cannot keep a link, so never holds its user
// (docs/operations.md "who holds a user"), unless a renewal request is pending.
var cannotHold = map[string]bool{
	partnersv1.ReasonAccountNotFound: true, partnersv1.ReasonUserNotFound: true,
	partnersv1.ReasonInvalidRedirectURL: true, partnersv1.ReasonInvalidRequest: true,
	partnersv1.ReasonSecretConflict: true, partnersv1.ReasonAccountNotPermitted: true,
	partnersv1.ReasonExpired: true,
}

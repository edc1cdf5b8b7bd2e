package controllers

import (
	"time"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// linkInput is everything the generate-or-wait decision depends on.
type linkInput struct {
	Now      time.Time
	Link     storedLink
	State    secretState
	SpecHash string
	Policy   partnersv1.RenewalPolicy
	// RenewBefore is the requested margin; 0 means the default (a third of the lifetime).
	RenewBefore time.Duration
	Jitter      float64
	// RenewRequest is the value of the renew-requested-at annotation ("" when absent).
	RenewRequest string
	// Current is false when the user's Lease records a later generation than the stored link:
	// another LoginLink (or a call of unknown outcome) invalidated it.
	Current bool
}

type linkAction int

const (
	// actionWait: the stored link is current; look again at RenewAt.
	actionWait linkAction = iota
	// actionGenerate: generate a link now.
	actionGenerate
	// actionExpired: the link expired and renewal is disabled.
	actionExpired
)

type linkDecision struct {
	Action linkAction
	// Why explains a generation, for Events.
	Why string
	// Renewal is true when the generation replaces a link that served its purpose.
	Renewal bool
	// RenewAt is when the link is renewed (zero when renewal is disabled); ExpiresAt when it expires.
	RenewAt     time.Time
	ExpiresAt   time.Time
	RenewBefore time.Duration
}

// decideLink says whether a LoginLink must generate a link now. It is pure: the reconciler
// gathers the input, confirms a generation against fresh reads, and acts.
func decideLink(in linkInput) linkDecision {
	generate := func(why string, renewal bool) linkDecision {
		return linkDecision{Action: actionGenerate, Why: why, Renewal: renewal}
	}
	switch in.State {
	case secretMissing:
		return generate("no link is stored", false)
	case secretAltered:
		return generate("the Secret was altered", false)
	case secretInterrupted:
		return generate("the previous generation was interrupted", false)
	case secretHandedOver:
		return generate("it holds the user again", false)
	}
	if in.Link.SpecHash != in.SpecHash {
		return generate("the spec changed", false)
	}
	if in.RenewRequest != "" && in.RenewRequest != in.Link.RenewRequest {
		if at, err := time.Parse(time.RFC3339Nano, in.RenewRequest); err == nil && at.After(in.Link.GeneratedAt) {
			return generate("a renewal was requested", true)
		}
	}
	d := linkDecision{ExpiresAt: in.Link.ExpiresAt}
	expired := !in.Now.Before(in.Link.ExpiresAt)
	if in.Policy == partnersv1.RenewalPolicyDisabled && expired {
		// Expired and not to be renewed: whether another generation invalidated it too changes
		// nothing.
		d.Action = actionExpired
		return d
	}
	if !in.Current {
		return generate("a later generation for the same user invalidated its link", false)
	}
	if in.Policy == partnersv1.RenewalPolicyDisabled {
		return d
	}
	d.RenewAt, d.RenewBefore = renewal.Time(in.Link.GeneratedAt, in.Link.ExpiresAt, in.RenewBefore, in.Jitter)
	switch {
	case expired:
		return generate("the link expired", true)
	case !in.Now.Before(d.RenewAt):
		return generate("the renewal time was reached", true)
	}
	return d
}

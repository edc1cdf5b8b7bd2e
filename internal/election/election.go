// Package election decides which LoginLink holds a user of a Fifteenth account, and makes
// sure that only that one generates the user's link, one generation at a time.
//
// The API invalidates a user's earlier links on every generation, so two LoginLinks that
// generate for one user destroy each other's links. The rule has two layers:
//
//   - The election (Holder, pure): among the LoginLinks for one user, the newest eligible one
//     (creationTimestamp, then namespace/name) holds the user, unless a paused one holds the
//     user's current link (Pinned): it keeps the user until unpaused. The controllers compute
//     it from their cache on every pass, which costs nothing and is right once the cache
//     caught up.
//
//   - The fence (Elector, a Lease per user): a cache can be behind (two LoginLinks created in
//     the same second, a restart, a second manager, a leader handover), so the decision to
//     generate is confirmed against the API server. One coordination.k8s.io Lease per
//     (API endpoint, account, user) lives in the election namespace. Before a generation its
//     holder is set to the generating LoginLink and spec.renewTime marks the call as in flight
//     for at most spec.leaseDurationSeconds (longer than the API client's timeout). Writes use
//     the Lease's resourceVersion, so of two managers racing, one wins and the other re-reads.
//     Nobody starts a generation while another is in flight, and a LoginLink takes the Lease
//     from its holder only when it is newer, or when the holder is gone or ineligible as read
//     live from the API server. After the call the Lease records whose link is the user's
//     current one (the LoginLink's UID and the generated-at its Secret stores), or that a call
//     of unknown outcome may have invalidated every earlier link.
//
// A LoginLink whose stored link is not the one the Lease records therefore knows, whatever its
// cache shows and after any restart, that its link was invalidated: it generates again when it
// holds the user, and removes the dead link from its Secret when it does not. Begin records the
// generation as of unknown outcome before the call (a crash leaves it so: every earlier link
// may be invalid); Finish records the result, or restores the previous record when the API
// certainly did nothing. Begin also refuses when the Lease changed since the reads the
// decision was made on. Only generations take the Lease: a pass that waits for its renewal
// time reads the Lease from the cache only.
package election

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Key is one user of one account at one API endpoint: what one link at a time is kept for.
type Key struct {
	// Endpoint identifies the API (its base URL): two APIs never share an election.
	Endpoint  string
	AccountID int64
	// User is the user's email; compared case-insensitively.
	User string
}

// NewKey returns the key of a user, its email lower-cased.
func NewKey(endpoint string, accountID int64, user string) Key {
	return Key{Endpoint: endpoint, AccountID: accountID, User: strings.ToLower(user)}
}

// String is "<accountID>/<user>", for messages (never secret).
func (k Key) String() string {
	return strconv.FormatInt(k.AccountID, 10) + "/" + k.User
}

// LeaseName is the name of the key's Lease: a digest, since emails and URLs are no names.
func (k Key) LeaseName() string {
	sum := sha256.Sum256([]byte(k.Endpoint + "\x00" + strconv.FormatInt(k.AccountID, 10) + "\x00" + k.User))
	return "fifteenth-user-" + hex.EncodeToString(sum[:16])
}

// Candidate is one LoginLink competing for a user.
type Candidate struct {
	// ID is "<namespace>/<name>".
	ID      string
	UID     types.UID
	Created time.Time
	// Eligible is false for a LoginLink that cannot keep a link: being deleted, a terminal
	// failure of its current spec, a Secret it may not write, or an expired link it may not renew.
	Eligible bool
	// Pinned is true for a paused LoginLink whose link is the user's current one: it keeps the
	// user against any newer candidate until it is unpaused (a pause changes nothing, and a
	// newcomer's generation would invalidate the paused link).
	Pinned bool
	// Generation is the LoginLink's metadata.generation: in a Lease's holder, the one under
	// which it took the Lease (0 when the Lease does not say).
	Generation int64
}

// Newer reports whether a was created after b, ties broken by the greater ID.
func Newer(a, b Candidate) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.ID > b.ID
}

// Holder returns the newest eligible pinned candidate, else the newest eligible one; ok is
// false when none is eligible.
func Holder(cands []Candidate) (holder Candidate, ok bool) {
	for _, c := range cands {
		if c.Eligible && c.Pinned && (!ok || Newer(c, holder)) {
			holder, ok = c, true
		}
	}
	if ok {
		return holder, true
	}
	for _, c := range cands {
		if !c.Eligible {
			continue
		}
		if !ok || Newer(c, holder) {
			holder, ok = c, true
		}
	}
	return holder, ok
}

// Record is what a user's Lease says.
type Record struct {
	// Holder is the LoginLink that took the Lease last.
	Holder Candidate
	// GeneratedBy is the UID of the LoginLink whose generation was the user's last one, and
	// GeneratedAt the generated-at its Secret stores for it ("" when the outcome of that call is
	// unknown: it may have invalidated every earlier link, and no link is known to be valid).
	// Both are empty when no generation was recorded.
	GeneratedBy types.UID
	GeneratedAt string
	// InFlightSince is when a generation started; zero when none is in flight. It is in flight
	// until InFlightSince + InFlightFor.
	InFlightSince time.Time
	InFlightFor   time.Duration
	// ResourceVersion is the Lease's, to detect a change between a decision and Begin.
	ResourceVersion string
}

// Current reports whether the link a LoginLink stores (its UID, and the generated-at its
// Secret records) is still the user's valid one. With no Lease, or a Lease that recorded no
// generation, every stored link is current: nobody generated since (the links of account
// creation are stored without a Lease).
func (r *Record) Current(uid types.UID, generatedAt string) bool {
	if r == nil || r.GeneratedBy == "" {
		return true
	}
	return r.GeneratedBy == uid && r.GeneratedAt == generatedAt && generatedAt != ""
}

// InFlightUntil returns the end of an in-flight generation, or zero when none is.
func (r *Record) InFlightUntil(now time.Time) time.Time {
	if r == nil || r.InFlightSince.IsZero() {
		return time.Time{}
	}
	if end := r.InFlightSince.Add(r.InFlightFor); end.After(now) {
		return end
	}
	return time.Time{}
}

// Verdict is what a LoginLink that wants to generate must do.
type Verdict int

const (
	// Proceed: take the Lease and generate.
	Proceed Verdict = iota
	// Wait: another generation is in flight until Decision.Until.
	Wait
	// CheckHolder: the Lease's holder is newer; generate only if, read live, it is gone or
	// ineligible.
	CheckHolder
	// Changed: the Lease changed since the facts the decision to generate was made on: decide
	// again.
	Changed
)

// Decision is the outcome of Decide.
type Decision struct {
	Verdict Verdict
	Until   time.Time
}

// Decide says whether me may take the Lease r (nil when none exists) to generate now.
func Decide(r *Record, me Candidate, now time.Time) Decision {
	if until := r.InFlightUntil(now); !until.IsZero() {
		return Decision{Verdict: Wait, Until: until}
	}
	if r == nil || r.Holder.UID == me.UID || r.Holder.UID == "" || !Newer(r.Holder, me) {
		return Decision{Verdict: Proceed}
	}
	return Decision{Verdict: CheckHolder}
}

// Outcome is how a generation ended, for Finish.
type Outcome int

const (
	// Generated: the API returned a new link, stored under the given generated-at.
	Generated Outcome = iota
	// NoEffect: the API certainly generated nothing (a 4xx, a 429, a client-side limit).
	NoEffect
	// Unknown: the call may have generated a link that is lost (a timeout, a 5xx, a link that
	// could not be stored): every earlier link of the user may be invalid.
	Unknown
)

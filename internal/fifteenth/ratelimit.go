package fifteenth

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is at most N events in any window of length Per.
type Rate struct {
	N   int
	Per time.Duration
}

// The documented limits of the API.
var (
	DefaultAccountCreateRate = Rate{N: 100, Per: time.Minute}
	DefaultLoginLinkRate     = Rate{N: 10, Per: time.Hour}
)

// ParseRate parses "N/DURATION" such as "100/1m", "10/1h" or "10/h" (a bare unit means 1 of it).
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/DURATION, e.g. 100/1m", s)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: count must be a positive integer", s)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') && per[0] != '.' {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: window must be a positive duration such as 1m or 1h", s)
	}
	return Rate{N: count, Per: d}, nil
}

// String formats the rate the way ParseRate reads it.
func (r Rate) String() string {
	per := r.Per.String() // "1h0m0s", "1m0s", "30s"
	if strings.HasSuffix(per, "m0s") {
		per = strings.TrimSuffix(per, "0s")
	}
	if strings.HasSuffix(per, "h0m") {
		per = strings.TrimSuffix(per, "0m")
	}
	return fmt.Sprintf("%d/%s", r.N, per)
}

// Set and Type make Rate usable as a command-line flag (pflag.Value and flag.Value).
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Type names the flag's value type for pflag.
func (r *Rate) Type() string { return "rate" }

// SlidingWindow limits events per key to Rate.N within any window of Rate.Per, like a
// sliding-window log. Reserve takes a slot before a call; the call then settles it. A call the
// API counted keeps its slot (Reservation.Done), counted from the moment the call completes,
// which is never earlier than the server saw it, so the client stays under the server's count
// even though it cannot see it. A call the API did not count gives its slot back
// (Reservation.Cancel). A key may also be blocked until a time (after a 429).
//
// Callers that wait may queue up (Turn, ReserveFor): each waiter keeps its place in the key's
// line, is told when its own slot frees up, and is woken (its wake function called) when that
// slot has freed, so that a freed slot wakes one waiter, not all of them.
type SlidingWindow struct {
	rate Rate
	now  func() time.Time

	mu      sync.Mutex
	keys    map[string]*window
	ops     int
	timer   *time.Timer
	timerAt time.Time
}

type window struct {
	events       []*event
	blockedUntil time.Time
	// line holds the waiters in their order of arrival.
	line []*waiter
}

// waiter is a caller in a key's line.
type waiter struct {
	id   string
	wake func()
	// wokenAt is when its turn came and it was woken (zero: not yet).
	wokenAt time.Time
}

// event is a reserved slot, counted from at: the reservation, then the call's completion.
type event struct{ at time.Time }

// Reservation is a slot taken by Reserve. Settle it exactly once, with Done or Cancel; the
// first of them wins and later calls do nothing.
type Reservation struct {
	l       *SlidingWindow
	key     string
	e       *event
	settled bool // guarded by l.mu
}

// NewSlidingWindow returns a limiter for rate; now is the clock (nil for time.Now).
func NewSlidingWindow(rate Rate, now func() time.Time) *SlidingWindow {
	if now == nil {
		now = time.Now
	}
	return &SlidingWindow{rate: rate, now: now, keys: map[string]*window{}}
}

// Rate returns the configured rate.
func (l *SlidingWindow) Rate() Rate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// Tighten lowers the limiter's rate to r when r allows fewer events per unit of time (or as
// many, with a smaller burst), and reports whether it did. A limiter shared by several clients
// with different configured rates so keeps to the strictest of them; events already counted
// stay counted (a shorter window forgets them sooner).
func (l *SlidingWindow) Tighten(r Rate) bool {
	if r.N < 1 || r.Per <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate.N < 1 || l.rate.Per <= 0 {
		l.rate = r
		return true
	}
	// r.N/r.Per < cur.N/cur.Per, compared exactly in 128 bits; all four are positive.
	lh, ll := bits.Mul64(uint64(r.N), uint64(l.rate.Per)) //nolint:gosec // positive, checked above
	rh, rl := bits.Mul64(uint64(l.rate.N), uint64(r.Per)) //nolint:gosec // positive, checked above
	less, equal := lh < rh || (lh == rh && ll < rl), lh == rh && ll == rl
	if less || (equal && r.N < l.rate.N) {
		l.rate = r
		return true
	}
	return false
}

// Reserve takes a slot for key when one is free and no waiter of the line needs it. Otherwise
// it returns false and the time at which a slot frees up, which is always in the future.
func (l *SlidingWindow) Reserve(key string) (*Reservation, time.Time, bool) {
	return l.ReserveFor(key, "")
}

// ReserveFor is Reserve for the waiter id of the key's line (Turn): it takes the slot when the
// waiter's turn has come, and the waiter leaves the line. Otherwise it returns the time at
// which its slot is expected to free up, and the waiter keeps (or takes) its place. An empty id
// queues nothing: the caller comes after every waiter.
func (l *SlidingWindow) ReserveFor(key, id string) (*Reservation, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.prune(key, now)
	pos := len(w.line)
	if id != "" {
		pos = w.join(id, nil)
	}
	at := l.schedule(w, now, pos+1)[pos]
	if at.After(now) {
		if id != "" {
			w.line[pos].wokenAt = time.Time{} // it came back early: wake it when its turn comes
		}
		l.armLocked(now)
		return nil, at, false
	}
	if id != "" {
		w.line = slices.Delete(w.line, pos, pos+1)
	}
	e := &event{at: now}
	w.events = append(w.events, e)
	return &Reservation{l: l, key: key, e: e}, time.Time{}, true
}

// Turn puts waiter id in the key's line (or keeps its place, and replaces its wake function)
// and reports whether its turn has come: a slot is free for it. Otherwise it returns when its
// slot is expected to free up; wake is called (from another goroutine, and must not block)
// once it has. The waiter takes its slot with ReserveFor. A waiter that does not come back
// within a window of being woken loses its place.
func (l *SlidingWindow) Turn(key, id string, wake func()) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.prune(key, now)
	pos := w.join(id, wake)
	at := l.schedule(w, now, pos+1)[pos]
	x := w.line[pos]
	if at.After(now) {
		x.wokenAt = time.Time{} // it came back early: wake it when its turn comes
		l.armLocked(now)
		return at, false
	}
	if x.wokenAt.IsZero() {
		x.wokenAt = now // it knows: no wake-up, and it loses its place if it never takes the slot
	}
	return time.Time{}, true
}

// Leave takes waiter id out of the key's line (it was deleted, or no longer waits), so that
// the slot it was told of goes to the next waiter rather than being held a window for it.
func (l *SlidingWindow) Leave(key, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil {
		return
	}
	i := slices.IndexFunc(w.line, func(x *waiter) bool { return x.id == id })
	if i < 0 {
		return
	}
	w.line = slices.Delete(w.line, i, i+1)
	if len(w.line) > 0 {
		// The places behind it move up: the timer wakes those whose turn it now is.
		now := l.now()
		l.setTimerLocked(now, now)
	}
}

// join returns the place of waiter id in the line, appending it when it is not there.
func (w *window) join(id string, wake func()) int {
	for i, x := range w.line {
		if x.id == id {
			if wake != nil {
				x.wake = wake
			}
			return i
		}
	}
	w.line = append(w.line, &waiter{id: id, wake: wake})
	return len(w.line) - 1
}

// schedule returns when each of the first k places of the line gets its slot: the place j
// gets the slot that the (j+len(events)-N)-th call of the window (counting the places before
// it) frees, one window after it. After a 429 the line waits for the reset, then moves at the
// rate's average pace (one place per Per/N), so that the API's count, which this client does
// not know, is not met by the whole line at once.
//
// When the window holds fewer calls than N leaves room for all k places, no place waits for a
// call of the window and the calls are neither copied nor sorted: with a generous rate (the
// documented limits lifted, or a quiet key) a window can hold thousands of calls, and this
// runs for every reservation.
func (l *SlidingWindow) schedule(w *window, now time.Time, k int) []time.Time {
	n := max(l.rate.N, 1)
	m := len(w.events)
	// calls are the window's calls by time, read only when a place waits for one of them.
	var calls []time.Time
	if m+k > n {
		calls = make([]time.Time, 0, m)
		for _, e := range w.events {
			calls = append(calls, e.at)
		}
		slices.SortFunc(calls, func(a, b time.Time) int { return a.Compare(b) })
	}
	places := make([]time.Time, 0, k)
	blocked := w.blockedUntil.After(now)
	for j := range k {
		t := now
		// The slot of place j frees one window after the (m+j-n)-th call, counting the window's
		// calls, then the places before j.
		if i := m + j - n; i >= 0 {
			if i < m {
				t = later(t, calls[i].Add(l.rate.Per))
			} else {
				t = later(t, places[i-m].Add(l.rate.Per))
			}
		}
		if blocked {
			t = later(t, w.blockedUntil.Add(time.Duration(j)*l.rate.Per/time.Duration(n)))
		}
		places = append(places, t)
	}
	return places
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// dueLocked marks the waiters whose turn has come as woken and sets the timer for the next
// turn. It returns their wake functions, to be called outside the lock.
func (l *SlidingWindow) dueLocked(now time.Time) []func() {
	var wakes []func()
	var next time.Time
	for _, w := range l.keys {
		if len(w.line) == 0 {
			continue
		}
		for i, at := range l.schedule(w, now, len(w.line)) {
			x := w.line[i]
			switch {
			case at.After(now):
				if next.IsZero() || at.Before(next) {
					next = at
				}
			case x.wokenAt.IsZero():
				x.wokenAt = now
				if x.wake != nil {
					wakes = append(wakes, x.wake)
				}
			}
		}
	}
	l.setTimerLocked(now, next)
	return wakes
}

// armLocked sets the timer for the next turn of the line (and wakes nobody itself: the timer
// does, outside the lock).
func (l *SlidingWindow) armLocked(now time.Time) {
	for _, w := range l.keys {
		for i, at := range l.schedule(w, now, len(w.line)) {
			if w.line[i].wokenAt.IsZero() {
				l.setTimerLocked(now, at)
				break
			}
		}
	}
}

// setTimerLocked makes the timer fire at at, unless it already fires earlier.
func (l *SlidingWindow) setTimerLocked(now, at time.Time) {
	if at.IsZero() || (!l.timerAt.IsZero() && !at.Before(l.timerAt) && l.timerAt.After(now)) {
		return
	}
	l.timerAt = at
	d := max(at.Sub(now), time.Millisecond)
	if l.timer == nil {
		l.timer = time.AfterFunc(d, l.wakeDue)
		return
	}
	l.timer.Reset(d)
}

// wakeDue wakes the waiters whose turn has come.
func (l *SlidingWindow) wakeDue() {
	l.mu.Lock()
	now := l.now()
	l.timerAt = time.Time{}
	for key := range l.keys {
		l.prune(key, now)
	}
	wakes := l.dueLocked(now)
	l.mu.Unlock()
	for _, f := range wakes {
		f()
	}
}

// Done marks the reserved call as completed now and counted: the slot frees up one window
// later.
func (r *Reservation) Done() {
	if r == nil {
		return
	}
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.settled {
		return
	}
	r.settled = true
	now := r.l.now()
	if now.After(r.e.at) {
		r.e.at = now
	}
	// A call that outlasted the window had its event expired meanwhile: count it again.
	w := r.l.prune(r.key, now)
	if !slices.Contains(w.events, r.e) {
		w.events = append(w.events, r.e)
	}
}

// Cancel gives the slot back at once: the reserved call did not count against the limit
// (the API refused it or failed, or it never reached the API).
func (r *Reservation) Cancel() {
	if r == nil {
		return
	}
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.settled {
		return
	}
	r.settled = true
	w := r.l.keys[r.key]
	if w == nil {
		return
	}
	for i, e := range w.events {
		if e == r.e {
			w.events = slices.Delete(w.events, i, i+1)
			break
		}
	}
	if len(w.line) > 0 {
		// The slot given back is a waiter's turn: the timer wakes it, outside this lock.
		r.l.setTimerLocked(r.l.now(), r.l.now())
	}
}

// Block refuses every reservation for key until the given time (a 429's reset time).
func (l *SlidingWindow) Block(key string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.prune(key, l.now())
	if until.After(w.blockedUntil) {
		w.blockedUntil = until
	}
}

// Len returns the number of keys tracked, for tests of memory bounds.
func (l *SlidingWindow) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// prune drops the key's expired events and returns its window, creating it when needed.
// Every sweepEvery calls it also forgets the keys that have nothing left, so memory stays
// bounded by the keys active within one window.
func (l *SlidingWindow) prune(key string, now time.Time) *window {
	l.ops++
	if l.ops%sweepEvery == 0 {
		for k, w := range l.keys {
			if w.expire(now, l.rate.Per) {
				delete(l.keys, k)
			}
		}
	}
	w := l.keys[key]
	if w == nil {
		w = &window{}
		l.keys[key] = w
	}
	w.expire(now, l.rate.Per)
	return w
}

const sweepEvery = 256

// expire drops the events older than per and reports whether the window is now empty.
func (w *window) expire(now time.Time, per time.Duration) bool {
	kept := w.events[:0]
	for _, e := range w.events {
		if e.at.Add(per).After(now) {
			kept = append(kept, e)
		}
	}
	clear(w.events[len(kept):])
	w.events = kept
	// A waiter woken a window ago that never came back (deleted, or it no longer creates)
	// gives its place up.
	w.line = slices.DeleteFunc(w.line, func(x *waiter) bool { return !x.wokenAt.IsZero() && !x.wokenAt.Add(per).After(now) })
	return len(w.events) == 0 && len(w.line) == 0 && !w.blockedUntil.After(now)
}

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
type SlidingWindow struct {
	rate Rate
	now  func() time.Time

	mu   sync.Mutex
	keys map[string]*window
	ops  int
}

type window struct {
	events       []*event
	blockedUntil time.Time
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

// Reserve takes a slot for key when one is free. Otherwise it returns false and the time at
// which a slot frees up, which is always in the future.
func (l *SlidingWindow) Reserve(key string) (*Reservation, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.prune(key, now)
	if w.blockedUntil.After(now) {
		return nil, w.blockedUntil, false
	}
	if len(w.events) >= l.rate.N {
		oldest := w.events[0].at
		for _, e := range w.events[1:] {
			if e.at.Before(oldest) {
				oldest = e.at
			}
		}
		retry := oldest.Add(l.rate.Per)
		if !retry.After(now) {
			retry = now.Add(time.Millisecond)
		}
		return nil, retry, false
	}
	e := &event{at: now}
	w.events = append(w.events, e)
	return &Reservation{l: l, key: key, e: e}, time.Time{}, true
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
	return len(w.events) == 0 && !w.blockedUntil.After(now)
}

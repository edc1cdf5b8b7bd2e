package fifteenth

// Review of a85aaab (schedule copies and sorts the window's calls only when a place waits for
// one): the randomized comparison of schedule_test.go, widened to the cases it leaves out.

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// schedule gives what the old schedule gave (scheduleRef) also for k = 0, a rate of N < 1 or
// of a zero or negative window, calls in the future or already expired, calls at the same
// instant (also as times that compare equal but differ as values: another location, a
// monotonic reading), a block that ends before, at or after now, and windows exactly full
// (len(events)+k == N) or one over.
func TestReview4ScheduleAsBeforeEdgeCases(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 85))
	wall := time.Unix(1_800_000_000, 0)
	mono := time.Now() // carries a monotonic reading
	zones := []*time.Location{time.UTC, time.FixedZone("X", 3600), time.Local}
	for iter := range 100_000 {
		now := wall
		if iter%2 == 1 {
			now = mono
		}
		rate := Rate{N: r.IntN(16) - 3, Per: time.Duration(r.IntN(61)) * time.Second}
		switch r.IntN(10) {
		case 0:
			rate.Per = 0
		case 1:
			rate.Per = -time.Duration(1+r.IntN(30)) * time.Second
		case 2:
			rate.N = 1 << 20
		}
		n := max(rate.N, 1)
		k := r.IntN(16)
		m := r.IntN(24)
		switch r.IntN(4) {
		case 0: // exactly full: no place waits for a call
			m = max(n-k, 0)
		case 1: // one over: the first place that waits does
			m = max(n-k+1, 0)
		}
		if m > 200 {
			m = r.IntN(24)
		}
		w := &window{}
		var shared time.Time
		for i := range m {
			var at time.Time
			span := int64(2*time.Minute) + 1
			switch r.IntN(6) {
			case 0: // the future
				at = now.Add(time.Duration(r.Int64N(span)))
			case 1: // expired (older than a window)
				at = now.Add(-time.Duration(r.Int64N(span)))
			case 2: // the same instant as another call
				if i == 0 || shared.IsZero() {
					shared = now.Add(time.Duration(r.Int64N(span) - span/2))
				}
				at = shared
			default:
				at = now.Add(-time.Duration(r.Int64N(int64(max(rate.Per, time.Second)))))
			}
			switch r.IntN(3) {
			case 0:
				at = at.In(zones[r.IntN(len(zones))])
			case 1:
				at = at.Round(0) // strips the monotonic reading
			}
			w.events = append(w.events, &event{at: at})
		}
		switch r.IntN(4) {
		case 0:
			w.blockedUntil = now
		case 1:
			w.blockedUntil = now.Add(time.Duration(r.IntN(181)-60) * time.Second)
		case 2:
			w.blockedUntil = now.Add(time.Duration(r.Int64N(int64(time.Hour))))
		}
		before := slices.Clone(w.events)
		l := &SlidingWindow{rate: rate}
		got, want := l.schedule(w, now, k), scheduleRef(rate, w, now, k)
		if !slices.Equal(got, want) || len(got) != k {
			t.Fatalf("iteration %d: rate %v (N %d), %d calls, blocked until %v, k %d:\n got %v\nwant %v",
				iter, rate, rate.N, m, w.blockedUntil, k, got, want)
		}
		if !slices.Equal(before, w.events) {
			t.Fatalf("iteration %d: schedule changed the window's calls", iter)
		}
	}
}

// Through the limiter's own entry points: Reserve, Turn and the line's wake-ups decide the same
// with the new schedule as with the old, on a clock that goes back and forth (calls stamped in
// the future of a later now) and with 429 blocks.
func TestReview4LimiterAsBefore(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 4))
		rate := Rate{N: 1 + r.IntN(6), Per: time.Duration(1+r.IntN(20)) * time.Second}
		now := time.Unix(1_800_000_000, 0)
		l := NewSlidingWindow(rate, func() time.Time { return now })
		var open []*Reservation
		for step := range 300 {
			key := []string{"a", "b"}[r.IntN(2)]
			// Before each operation, every line's schedule is the old one's. (The clock moves
			// under l.mu: the limiter's timer reads it from another goroutine.)
			l.mu.Lock()
			now = now.Add(time.Duration(r.IntN(4000)-1000) * time.Millisecond) // sometimes back
			for _, w := range l.keys {
				for k := range len(w.line) + 2 {
					if got, want := l.schedule(w, now, k), scheduleRef(l.rate, w, now, k); !slices.Equal(got, want) {
						l.mu.Unlock()
						t.Fatalf("seed %d step %d k %d: got %v want %v", seed, step, k, got, want)
					}
				}
			}
			l.mu.Unlock()
			switch op := r.IntN(7); op {
			case 0, 1:
				if res, _, ok := l.Reserve(key); ok {
					open = append(open, res)
				}
			case 2:
				if res, _, ok := l.ReserveFor(key, []string{"x", "y", "z"}[r.IntN(3)]); ok {
					open = append(open, res)
				}
			case 3:
				l.Turn(key, []string{"x", "y", "z"}[r.IntN(3)], func() {})
			case 4:
				if len(open) > 0 {
					i := r.IntN(len(open))
					if r.IntN(2) == 0 {
						open[i].Done()
					} else {
						open[i].Cancel()
					}
					open = slices.Delete(open, i, i+1)
				}
			case 5:
				l.Block(key, now.Add(time.Duration(r.IntN(30))*time.Second))
			case 6:
				l.Leave(key, []string{"x", "y", "z"}[r.IntN(3)])
			}
		}
		l.mu.Lock()
		if l.timer != nil {
			l.timer.Stop()
		}
		l.mu.Unlock()
	}
}

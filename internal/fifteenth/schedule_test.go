package fifteenth

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// scheduleRef is schedule as it was: every call copied and sorted on every reservation.
func scheduleRef(rate Rate, w *window, now time.Time, k int) []time.Time {
	n := max(rate.N, 1)
	times := make([]time.Time, 0, len(w.events)+k)
	for _, e := range w.events {
		times = append(times, e.at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	m := len(times)
	blocked := w.blockedUntil.After(now)
	for j := range k {
		t := now
		if i := m + j - n; i >= 0 {
			t = later(t, times[i].Add(rate.Per))
		}
		if blocked {
			t = later(t, w.blockedUntil.Add(time.Duration(j)*rate.Per/time.Duration(n)))
		}
		times = append(times, t)
	}
	return times[m:]
}

// schedule gives the places the times it gave before, whatever the window holds.
func TestScheduleAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_800_000_000, 0)
	for range 2000 {
		rate := Rate{N: 1 + r.IntN(12), Per: time.Duration(1+r.IntN(60)) * time.Second}
		w := &window{}
		for range r.IntN(20) {
			w.events = append(w.events, &event{at: now.Add(-time.Duration(r.IntN(int(rate.Per))))})
		}
		if r.IntN(3) == 0 {
			w.blockedUntil = now.Add(time.Duration(r.IntN(90)-30) * time.Second)
		}
		k := 1 + r.IntN(15)
		l := &SlidingWindow{rate: rate}
		if got, want := l.schedule(w, now, k), scheduleRef(rate, w, now, k); !slices.Equal(got, want) {
			t.Fatalf("rate %v, %d calls, blocked until %v, k %d:\n got %v\nwant %v", rate, len(w.events), w.blockedUntil, k, got, want)
		}
	}
}

// With a generous rate a window holds thousands of calls: a reservation neither copies nor
// sorts them (at 10,000 accounts with the limits lifted, that was 1.2 GB allocated).
func TestScheduleDoesNotCopyARoomyWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	w := &window{}
	for i := range 10_000 {
		w.events = append(w.events, &event{at: now.Add(-time.Duration(i) * time.Millisecond)})
	}
	l := &SlidingWindow{rate: Rate{N: 1_000_000, Per: time.Minute}}
	var out []time.Time
	allocs := testing.AllocsPerRun(50, func() { out = l.schedule(w, now, 1) })
	if allocs > 1 || len(out) != 1 || !out[0].Equal(now) {
		t.Fatalf("%v allocations, %v", allocs, out)
	}
	bytes := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = l.schedule(w, now, 1)
		}
	}).AllocedBytesPerOp()
	if bytes > 64 {
		t.Fatalf("%d bytes per reservation, want the one place's", bytes)
	}
}

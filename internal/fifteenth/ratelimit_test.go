package fifteenth

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100/1m": {100, time.Minute}, "10/1h": {10, time.Hour}, "10/h": {10, time.Hour},
		"5/30s": {5, 30 * time.Second}, " 100/60s ": {100, time.Minute},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "100", "0/1m", "-1/1m", "x/1m", "10/0s", "10/-1m", "10/abc"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q): want error", bad)
		}
	}
	for _, r := range []Rate{DefaultAccountCreateRate, DefaultLoginLinkRate, {5, 30 * time.Second}} {
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Errorf("round trip of %v: %q -> %v, %v", r, r.String(), back, err)
		}
	}
}

func TestSlidingWindow(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := NewSlidingWindow(Rate{N: 2, Per: time.Minute}, clock)

	r1, _, ok := l.Reserve("a")
	if !ok {
		t.Fatal("first reserve refused")
	}
	now = now.Add(10 * time.Second)
	r1.Done() // the first call completed at t=10s: its slot frees at 70s
	if _, _, ok := l.Reserve("a"); !ok {
		t.Fatal("second reserve refused")
	}
	_, retry, ok := l.Reserve("a")
	if ok || !retry.Equal(now.Add(time.Minute)) {
		t.Fatalf("third reserve: ok=%v retry=%v, want refused until %v", ok, retry, now.Add(time.Minute))
	}
	if _, _, ok := l.Reserve("b"); !ok {
		t.Fatal("another key must have its own window")
	}
	now = now.Add(time.Minute)
	if _, _, ok := l.Reserve("a"); !ok {
		t.Fatal("slot did not free after the window")
	}

	until := now.Add(5 * time.Minute)
	l.Block("c", until)
	if _, retry, ok := l.Reserve("c"); ok || !retry.Equal(until) {
		t.Fatalf("blocked key: ok=%v retry=%v", ok, retry)
	}
	now = until
	if _, _, ok := l.Reserve("c"); !ok {
		t.Fatal("block did not lift at its time")
	}

	// Keys with nothing left are forgotten: memory is bounded by active keys.
	now = now.Add(time.Hour)
	for i := range 2 * sweepEvery {
		r, _, _ := l.Reserve("k")
		r.Done()
		now = now.Add(time.Minute)
		_ = i
	}
	if n := l.Len(); n > 2 {
		t.Fatalf("limiter tracks %d keys, want idle keys swept", n)
	}
}

func TestReservationCancel(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewSlidingWindow(Rate{N: 2, Per: time.Hour}, func() time.Time { return now })

	kept, _, ok := l.Reserve("a")
	if !ok {
		t.Fatal("first reserve refused")
	}
	kept.Done()
	for i := range 20 {
		r, _, ok := l.Reserve("a")
		if !ok {
			t.Fatalf("reserve %d refused although every earlier refused call was cancelled", i)
		}
		r.Cancel()
		r.Done() // settling twice changes nothing
	}
	r, _, ok := l.Reserve("a")
	if !ok {
		t.Fatal("second slot refused")
	}
	r.Done()
	r.Cancel() // too late: a completed call stays counted
	if _, _, ok := l.Reserve("a"); ok {
		t.Fatal("two completed calls must fill a window of 2")
	}

	// A call that outlasts the window is counted again from its completion.
	short := NewSlidingWindow(Rate{N: 2, Per: time.Second}, func() time.Time { return now })
	long, _, _ := short.Reserve("b")
	now = now.Add(time.Minute)
	other, _, ok := short.Reserve("b") // expires the long call's event
	if !ok {
		t.Fatal("reserve refused")
	}
	other.Cancel()
	long.Done()
	if _, _, ok := short.Reserve("b"); !ok {
		t.Fatal("one slot of two must be free")
	}
	if _, _, ok := short.Reserve("b"); ok {
		t.Fatal("a call completed now must hold its slot for a window")
	}
	now = now.Add(time.Second)
	if _, _, ok := short.Reserve("b"); !ok {
		t.Fatal("slot did not free one window after completion")
	}
}

// Waiters queue up: each is told the time its own slot frees up (not the first free slot, as
// all of them were before), is woken once when it has, and takes it ahead of callers that did
// not wait. (The limiter's own timer would fire only after the test, a window later: the test
// calls wakeDue itself, at the fake clock's times.)
func TestSlidingWindowLine(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	l := NewSlidingWindow(Rate{N: 2, Per: time.Minute}, func() time.Time { return now })
	woken := map[string]int{}
	wake := func(id string) func() { return func() { woken[id]++ } }
	take := func(id string) {
		t.Helper()
		if at, ok := l.Turn("k", id, wake(id)); !ok {
			t.Fatalf("%s: turn not come, expected at %v", id, at)
		}
		r, _, ok := l.ReserveFor("k", id)
		if !ok {
			t.Fatalf("%s: its turn came, but ReserveFor refused", id)
		}
		r.Done()
	}
	take("a") // t=0
	now = t0.Add(10 * time.Second)
	take("b") // t=10s
	want := map[string]time.Time{
		"c": t0.Add(time.Minute),                    // a's slot
		"d": t0.Add(70 * time.Second),               // b's slot
		"e": t0.Add(2 * time.Minute),                // c's slot, a window after c takes it
		"f": t0.Add(2*time.Minute + 10*time.Second), // d's
	}
	for _, id := range []string{"c", "d", "e", "f"} {
		at, ok := l.Turn("k", id, wake(id))
		if ok || !at.Equal(want[id]) {
			t.Errorf("%s: turn=%v at %v, want its own slot at %v", id, ok, at, want[id])
		}
	}
	// Asking again keeps the place.
	if at, _ := l.Turn("k", "d", wake("d")); !at.Equal(want["d"]) {
		t.Errorf("d asked again: at %v, want %v", at, want["d"])
	}
	// A caller that did not queue comes after every waiter.
	if _, at, ok := l.Reserve("k"); ok || !at.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("Reserve without a place: ok=%v at %v, want refused until %v", ok, at, t0.Add(3*time.Minute))
	}

	now = t0.Add(time.Minute)
	l.wakeDue()
	l.wakeDue() // once only
	if want := map[string]int{"c": 1}; !equalCounts(woken, want) {
		t.Fatalf("at a's slot: woken %v, want %v", woken, want)
	}
	// d's turn has not come: it is refused and keeps its place; c takes its slot.
	if _, at, ok := l.ReserveFor("k", "d"); ok || !at.Equal(want["d"]) {
		t.Errorf("d early: ok=%v at %v, want refused until %v", ok, at, want["d"])
	}
	take("c")
	now = t0.Add(70 * time.Second)
	l.wakeDue()
	if want := map[string]int{"c": 1, "d": 1}; !equalCounts(woken, want) {
		t.Fatalf("at b's slot: woken %v, want %v", woken, want)
	}

	// d never comes back: a window after it was woken, it loses its place to e, which gets the
	// slot d left (b's) and no longer waits for d's turn.
	now = t0.Add(130 * time.Second)
	if at, ok := l.Turn("k", "e", wake("e")); !ok {
		t.Errorf("e after d gave its place up: turn at %v, want now", at)
	}

	// After a 429 the line waits for the reset, then moves at the average pace (Per/N).
	reset := now.Add(5 * time.Minute)
	l.Block("k", reset)
	if at, _ := l.Turn("k", "e", nil); !at.Equal(reset) {
		t.Errorf("e after a 429: at %v, want the reset %v", at, reset)
	}
	if at, _ := l.Turn("k", "f", nil); !at.Equal(reset.Add(30 * time.Second)) {
		t.Errorf("f after a 429: at %v, want the reset and half a window %v", at, reset.Add(30*time.Second))
	}
}

// A slot given back (Cancel) is the next waiter's turn at once.
func TestSlidingWindowLineCancel(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewSlidingWindow(Rate{N: 1, Per: time.Hour}, func() time.Time { return now })
	r, _, ok := l.ReserveFor("k", "a")
	if !ok {
		t.Fatal("a refused")
	}
	if _, ok := l.Turn("k", "b", func() {}); ok {
		t.Fatal("b's turn came while a holds the only slot")
	}
	r.Cancel()
	if _, ok := l.Turn("k", "b", nil); !ok {
		t.Error("b's turn did not come when a gave its slot back")
	}
	if got := l.Len(); got != 1 {
		t.Errorf("keys tracked: %d, want 1", got)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A waiter that leaves the line gives its place up at once: the one behind it gets the slot
// that frees next, not one window later.
func TestSlidingWindowLeave(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewSlidingWindow(Rate{N: 1, Per: time.Minute}, func() time.Time { return now })
	r, _, ok := l.Reserve("a")
	if !ok {
		t.Fatal("first reserve refused")
	}
	r.Done()
	first, _ := l.Turn("a", "ghost", func() {})
	second, _ := l.Turn("a", "next", func() {})
	if !second.Equal(first.Add(time.Minute)) {
		t.Fatalf("next behind ghost: %v, want %v", second, first.Add(time.Minute))
	}
	l.Leave("a", "ghost")
	l.Leave("a", "nobody") // not in line: nothing happens
	if at, _ := l.Turn("a", "next", nil); !at.Equal(first) {
		t.Fatalf("next after ghost left: %v, want %v", at, first)
	}
	now = first
	if _, _, ok := l.ReserveFor("a", "next"); !ok {
		t.Fatal("next refused the slot ghost gave up")
	}
}

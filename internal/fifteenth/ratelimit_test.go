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

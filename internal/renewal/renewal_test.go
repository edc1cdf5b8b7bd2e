package renewal

import (
	"testing"
	"time"
)

func TestTime(t *testing.T) {
	issued := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	h := time.Hour
	tests := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		jitter      float64
		wantAt      time.Duration // after issued
		wantBefore  time.Duration
	}{
		{"1h default: a third before expiry", 1 * h, 0, 0, 40 * time.Minute, 20 * time.Minute},
		{"24h default", 24 * h, 0, 0, 16 * h, 8 * h},
		{"168h default", 168 * h, 0, 0, 112 * h, 56 * h},
		{"168h renewBefore 48h", 168 * h, 48 * h, 0, 120 * h, 48 * h},
		{"4h renewBefore 1h", 4 * h, 1 * h, 0, 3 * h, 1 * h},
		{"1h renewBefore 1m", 1 * h, time.Minute, 0, 59 * time.Minute, time.Minute},
		{"renewBefore equal to lifetime falls back to default", 24 * h, 24 * h, 0, 16 * h, 8 * h},
		{"renewBefore longer than lifetime falls back to default", 1 * h, 48 * h, 0, 40 * time.Minute, 20 * time.Minute},
		{"renewBefore just under lifetime is floored at 10%", 10 * h, 10*h - time.Minute, 0, 1 * h, 10*h - time.Minute},
		{"negative renewBefore means default", 3 * h, -h, 0, 2 * h, h},
		{"jitter brings renewal forward by up to 2%", 100 * h, 0, 0.5, 100*h*2/3 - h, 100 * h / 3},
		{"out-of-range jitter is ignored", 3 * h, 0, 1.5, 2 * h, h},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, before := Time(issued, issued.Add(tt.lifetime), tt.renewBefore, tt.jitter)
			if got := at.Sub(issued); got.Round(time.Second) != tt.wantAt.Round(time.Second) {
				t.Errorf("renewal at issued+%v, want issued+%v", got, tt.wantAt)
			}
			if before != tt.wantBefore {
				t.Errorf("effective renewBefore %v, want %v", before, tt.wantBefore)
			}
		})
	}
}

// Every lifetime from 1 h to 168 h, every renewBefore and jitter: renewal lies strictly inside
// the lifetime, at least 10% after issue.
func TestTimeBounds(t *testing.T) {
	issued := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	for hours := 1; hours <= 168; hours++ {
		lifetime := time.Duration(hours) * time.Hour
		for _, rb := range []time.Duration{0, time.Second, time.Hour, 24 * time.Hour, 200 * time.Hour} {
			for _, j := range []float64{0, 0.3, 0.999} {
				at, _ := Time(issued, issued.Add(lifetime), rb, j)
				if !at.After(issued) || !at.Before(issued.Add(lifetime)) {
					t.Fatalf("lifetime %v renewBefore %v jitter %v: renewal %v outside (issued, expires)", lifetime, rb, j, at)
				}
				if at.Sub(issued) < lifetime/10 {
					t.Fatalf("lifetime %v renewBefore %v: renewal only %v after issue", lifetime, rb, at.Sub(issued))
				}
			}
		}
	}
}

func TestExpiredOrEmptyLifetime(t *testing.T) {
	now := time.Now()
	at, _ := Time(now, now, 0, 0)
	if !at.Equal(now) {
		t.Fatalf("zero lifetime: %v", at)
	}
}

func TestJitterIsStable(t *testing.T) {
	a, b := Jitter("uid-1/2024-01-15T10:30:00Z"), Jitter("uid-1/2024-01-15T10:30:00Z")
	if a != b || a < 0 || a >= 1 {
		t.Fatalf("jitter %v, %v", a, b)
	}
	if Jitter("uid-2/2024-01-15T10:30:00Z") == a && Jitter("uid-3/2024-01-15T10:30:00Z") == a {
		t.Fatal("jitter ignores its seed")
	}
}

func TestRequeueAfterNeverAtOrBelowZero(t *testing.T) {
	now := time.Now()
	for _, at := range []time.Time{now.Add(-time.Hour), now, now.Add(time.Millisecond)} {
		if d := RequeueAfter(now, at, time.Second); d < time.Second {
			t.Fatalf("RequeueAfter(%v) = %v", at.Sub(now), d)
		}
	}
	if d := RequeueAfter(now, now.Add(time.Hour), time.Second); d != time.Hour {
		t.Fatalf("RequeueAfter(1h) = %v", d)
	}
}

package renewal

import (
	"testing"
	"time"
)

// FuzzTime: for any lifetime, margin and jitter, renewal lies within the link's lifetime, at
// least MinLifetimeFraction after issue, and the effective margin is positive and shorter
// than the lifetime.
func FuzzTime(f *testing.F) {
	f.Add(int64(3600), int64(0), 0.0)
	f.Add(int64(168*3600), int64(48*3600), 0.5)
	f.Add(int64(3600), int64(7200), 0.99)
	f.Add(int64(1), int64(1), 0.0)
	issued := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, lifetimeSec, renewBeforeSec int64, jitter float64) {
		if lifetimeSec <= 0 || lifetimeSec > 10*365*24*3600 || renewBeforeSec < -1<<40 || renewBeforeSec > 1<<40 {
			return
		}
		lifetime := time.Duration(lifetimeSec) * time.Second
		expires := issued.Add(lifetime)
		at, before := Time(issued, expires, time.Duration(renewBeforeSec)*time.Second, jitter)
		if at.Before(issued.Add(time.Duration(float64(lifetime)*MinLifetimeFraction))) || at.After(expires) {
			t.Fatalf("lifetime %v renewBefore %ds jitter %v: renewal at issued+%v", lifetime, renewBeforeSec, jitter, at.Sub(issued))
		}
		if before <= 0 || before >= lifetime {
			t.Fatalf("effective renewBefore %v for lifetime %v", before, lifetime)
		}
	})
}

// Package renewal decides when a login link is renewed. It is pure: no clock, no I/O.
package renewal

import (
	"hash/fnv"
	"time"
)

// MaxJitter is the largest fraction of the lifetime by which renewal is brought forward, so
// that links generated together do not all renew in the same instant.
const MaxJitter = 0.02

// MinLifetimeFraction is the earliest renewal, as a fraction of the lifetime after issue: a
// renewBefore close to the lifetime must not renew a link moments after it was issued (the
// API allows 10 links per account per hour).
const MinLifetimeFraction = 0.1

// Time returns when a link issued at issued and expiring at expires should be renewed, and
// the effective renewBefore. It uses the actual lifetime the API returned, not the requested
// one. renewBefore <= 0 means the default, a third of the lifetime; a renewBefore not shorter
// than the lifetime falls back to the default too. jitter in [0, 1) brings renewal forward by
// up to MaxJitter of the lifetime. The result is never earlier than issued plus
// MinLifetimeFraction of the lifetime, and never later than expires.
func Time(issued, expires time.Time, renewBefore time.Duration, jitter float64) (time.Time, time.Duration) {
	lifetime := expires.Sub(issued)
	if lifetime <= 0 {
		return expires, 0
	}
	if renewBefore <= 0 || renewBefore >= lifetime {
		renewBefore = lifetime / 3
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	at := expires.Add(-renewBefore).Add(-time.Duration(float64(lifetime) * MaxJitter * jitter))
	if earliest := issued.Add(time.Duration(float64(lifetime) * MinLifetimeFraction)); at.Before(earliest) {
		at = earliest
	}
	return at, renewBefore
}

// Jitter returns a stable fraction in [0, 1) for a seed (such as an object's UID and the
// link's issue time), so that a restart computes the same renewal time again.
func Jitter(seed string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	return float64(h.Sum64()%10000) / 10000
}

// RequeueAfter returns how long to wait until at, never zero or negative: at least min.
func RequeueAfter(now, at time.Time, minimum time.Duration) time.Duration {
	d := at.Sub(now)
	if d < minimum {
		return minimum
	}
	return d
}

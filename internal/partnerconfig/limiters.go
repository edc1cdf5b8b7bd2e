package partnerconfig

import (
	"sync"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Limiters hands out the client-side limiters shared by the clients of every config, so that
// they count as the API does: creations per partner key, login links per (endpoint, account).
// Give the flag-built default client the same ones (fifteenth.Options.AccountCreateLimiter and
// LoginLinkLimiter), so that a ClusterPartnerConfig on the same API shares its budget.
type Limiters struct {
	now func() time.Time

	mu      sync.Mutex
	links   map[string]*fifteenth.SlidingWindow // by endpoint
	creates map[string]*fifteenth.SlidingWindow // by key fingerprint
}

// NewLimiters returns an empty set; now is the clock (nil for time.Now).
func NewLimiters(now func() time.Time) *Limiters {
	return &Limiters{now: now, links: map[string]*fifteenth.SlidingWindow{}, creates: map[string]*fifteenth.SlidingWindow{}}
}

// LoginLinks returns the login-link limiter of endpoint (keyed by account ID). Configs of one
// endpoint with different loginLinkLimits share it at the strictest of their rates
// (fifteenth.SlidingWindow.Tighten): one budget per account can follow only one rate.
func (l *Limiters) LoginLinks(endpoint string, r fifteenth.Rate) *fifteenth.SlidingWindow {
	return l.get(l.links, endpoint, r, fifteenth.DefaultLoginLinkRate)
}

// Creations returns the creation limiter of the key with this fingerprint, at the strictest
// rate asked for it.
func (l *Limiters) Creations(fingerprint string, r fifteenth.Rate) *fifteenth.SlidingWindow {
	return l.get(l.creates, fingerprint, r, fifteenth.DefaultAccountCreateRate)
}

func (l *Limiters) get(m map[string]*fifteenth.SlidingWindow, key string, r, def fifteenth.Rate) *fifteenth.SlidingWindow {
	if r.N == 0 {
		r = def
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := m[key]
	if w == nil {
		w = fifteenth.NewSlidingWindow(r, l.now)
		m[key] = w
		return w
	}
	w.Tighten(r)
	return w
}

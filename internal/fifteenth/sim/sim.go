// Package sim is an in-memory simulator of the Fifteenth Partner API, faithful to
// shared/api/CONTRACT.md, documented error bodies included. Tests, benchmarks and `make demo`
// run against it; users try the operator with it without a partner key.
//
// Besides the API it serves link use (GET /auth/partner-login/{token} and
// /auth/user-login/{token}, standing in for app.fifteenth.com) and an unauthenticated
// inspection and control surface under /_sim/.
package sim

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Config configures a simulator. The zero value is usable: any key starting with "15th_",
// the documented permitted domains, limits and link base URL, real time, no faults.
type Config struct {
	// APIKeys are the accepted partner keys; empty accepts any key starting with "15th_".
	// All keys belong to one partner (a rotated key sees the same accounts).
	APIKeys []string
	// PermittedDomains are the redirect URL domains of the partner (subdomains included).
	PermittedDomains []string
	// LinkBaseURL prefixes generated links (default https://app.fifteenth.com).
	LinkBaseURL string
	// TimeScale is how many API seconds pass per real second (default 1): link expiry, rate
	// windows and reset times shrink by it. Timestamps stay wall-clock.
	TimeScale float64
	// AccountRate and LinkRate are the limits in API time (default 100/1m and 10/1h).
	AccountRate fifteenth.Rate
	LinkRate    fifteenth.Rate
	Faults      Faults
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Seed seeds fault injection; 0 picks a random seed.
	Seed uint64
	// FirstAccountID is the ID of the first account created (default 12345). Simulators
	// whose accounts must not be mistaken for each other's (several in one cluster) start
	// at different IDs.
	FirstAccountID int64
}

// Faults are injected into API requests (/v1beta/...), never into /_sim/ or link use.
type Faults struct {
	// FailRate is the fraction of API requests answered 500 before any effect.
	FailRate float64 `json:"fail_rate"`
	// FailAfterCommitRate is the fraction whose effect happens but whose answer is a 500. Such
	// a link generation uses no slot of the link limit, like any 5xx (see generateLoginLink).
	FailAfterCommitRate float64 `json:"fail_after_commit_rate"`
	// Latency delays the answer (after the effect) of LatencyRate of the API requests.
	Latency     Duration `json:"latency"`
	LatencyRate float64  `json:"latency_rate"`
	// RateLimitNext answers the next N API requests with 429 before any effect, with the
	// documented details of the route's limit and a Retry-After header, reset in 2 seconds.
	RateLimitNext int `json:"rate_limit_next"`
}

// Duration is a time.Duration that reads and writes JSON as "1.5s".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1.5s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		*d = Duration(v)
		return err
	}
	var n int64
	err := json.Unmarshal(b, &n)
	*d = Duration(n)
	return err
}

// Default values.
const (
	DefaultLinkBaseURL = "https://app.fifteenth.com"
	KeyPrefix          = "15th_"
	accountLinkHours   = 168
)

// DefaultPermittedDomains are the domains of the vendor's examples.
var DefaultPermittedDomains = []string{"yourplatform.com", "yourapp.net"}

// Server is the simulator: an http.Handler.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu       sync.Mutex
	keys     []string // accepted keys; empty: any 15th_ key
	faults   Faults
	rnd      *mrand.Rand
	nextID   int64
	accounts map[int64]*account
	byEmail  map[string]int64 // every user of every account, lower-cased
	links    map[string]*link // by token
	creates  map[string][]time.Time
	linkGen  map[int64][]time.Time
	stats    map[string]map[int]int
	counts   counters
	outbox   []OutboxEntry
}

type counters struct {
	AccountsCreated int `json:"accounts_created"`
	LinksGenerated  int `json:"links_generated"`
	LinksUsed       int `json:"links_used"`
	FaultsInjected  int `json:"faults_injected"`
}

type account struct {
	ID        int64
	Email     string
	FirstName string
	LastName  string
	Status    string
	CreatedAt time.Time
	Spouse    *spouse
	Users     []string // added through /_sim/accounts/{id}/users
}

type spouse struct {
	ID        int64
	Email     string
	FirstName string
	LastName  string
	Status    string
}

type link struct {
	Token       string
	Kind        string // "partner-login" or "user-login"
	AccountID   int64
	UserEmail   string
	Purpose     string
	RedirectURL string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Used        bool
	Invalidated bool
}

// Link states, as /_sim/links/{token} reports them.
const (
	StateValid       = "valid"
	StateUsed        = "used"
	StateExpired     = "expired"
	StateInvalidated = "invalidated"
)

func (l *link) state(now time.Time) string {
	switch {
	case l.Used:
		return StateUsed
	case l.Invalidated:
		return StateInvalidated
	case !now.Before(l.ExpiresAt):
		return StateExpired
	default:
		return StateValid
	}
}

// OutboxEntry is a notification email the API would have sent. It never holds the link.
type OutboxEntry struct {
	Kind      string    `json:"kind"` // "login_link" or "spouse_invitation"
	Recipient string    `json:"recipient"`
	Subject   string    `json:"subject"`
	Purpose   string    `json:"purpose,omitempty"`
	AccountID int64     `json:"account_id"`
	SentAt    time.Time `json:"sent_at"`
}

// New returns a simulator for cfg.
func New(cfg Config) *Server {
	if cfg.LinkBaseURL == "" {
		cfg.LinkBaseURL = DefaultLinkBaseURL
	}
	cfg.LinkBaseURL = strings.TrimSuffix(cfg.LinkBaseURL, "/")
	if len(cfg.PermittedDomains) == 0 {
		cfg.PermittedDomains = DefaultPermittedDomains
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.AccountRate.N == 0 {
		cfg.AccountRate = fifteenth.DefaultAccountCreateRate
	}
	if cfg.LinkRate.N == 0 {
		cfg.LinkRate = fifteenth.DefaultLoginLinkRate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64() //nolint:gosec // fault injection needs a seedable generator, not secrecy
	}
	s := &Server{
		cfg:      cfg,
		keys:     append([]string(nil), cfg.APIKeys...),
		faults:   cfg.Faults,
		rnd:      mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), //nolint:gosec // as above; tokens use crypto/rand
		nextID:   cmp.Or(cfg.FirstAccountID, 12345),
		accounts: map[int64]*account{},
		byEmail:  map[string]int64{},
		links:    map[string]*link{},
		creates:  map[string][]time.Time{},
		linkGen:  map[int64][]time.Time{},
		stats:    map[string]map[int]int{},
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("POST /v1beta/accounts", s.api(limitAccountCreate, s.createAccount))
	m.Handle("GET /v1beta/accounts/{id}", s.api(limitNone, s.getAccount))
	m.Handle("POST /v1beta/accounts/{id}/login-link", s.api(limitLoginLink, s.generateLoginLink))
	m.Handle("GET /auth/partner-login/{token}", s.counted(s.useLink("partner-login")))
	m.Handle("GET /auth/user-login/{token}", s.counted(s.useLink("user-login")))
	m.HandleFunc("GET /_sim/accounts", s.simAccounts)
	m.HandleFunc("POST /_sim/accounts/{id}/suspend", s.simSetStatus(fifteenth.AccountSuspended))
	m.HandleFunc("POST /_sim/accounts/{id}/reactivate", s.simSetStatus(fifteenth.AccountActive))
	m.HandleFunc("POST /_sim/accounts/{id}/users", s.simAddUser)
	m.HandleFunc("GET /_sim/links/{token}", s.simLink)
	m.HandleFunc("GET /_sim/stats", s.simStats)
	m.HandleFunc("GET /_sim/outbox", s.simOutbox)
	m.HandleFunc("GET /_sim/faults", s.simGetFaults)
	m.HandleFunc("PUT /_sim/faults", s.simSetFaults)
	m.HandleFunc("PUT /_sim/keys", s.simSetKeys)
	m.Handle("/", s.counted(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "No such route", nil)
	})))
	s.mux = m
}

// ServeHTTP serves the API, link use and /_sim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// apiDuration converts a duration of API time into real time.
func (s *Server) apiDuration(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.cfg.TimeScale)
}

// stamp rounds a time down to what the API reports: whole seconds in real time (as
// documented), milliseconds when time is scaled, since a scaled hour may last less than a
// second.
func (s *Server) stamp(t time.Time) time.Time {
	return t.UTC().Truncate(s.precision())
}

// stampUp rounds a time up to what the API reports. A reset time is always rounded up, never
// down: a client that waits until reset_at then finds a free slot.
func (s *Server) stampUp(t time.Time) time.Time {
	p := s.precision()
	t = t.UTC()
	if r := t.Truncate(p); r.Before(t) {
		return r.Add(p)
	}
	return t
}

func (s *Server) precision() time.Duration {
	if s.cfg.TimeScale == 1 {
		return time.Second
	}
	return time.Millisecond
}

// Timestamp is a time that marshals as ISO 8601 UTC, with milliseconds only when non-zero.
type Timestamp time.Time

// MarshalJSON writes 2024-01-22T10:30:00Z or 2024-01-22T10:30:00.123Z.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	tt := time.Time(t).UTC()
	layout := "2006-01-02T15:04:05Z"
	if tt.Nanosecond() != 0 {
		layout = "2006-01-02T15:04:05.000Z"
	}
	return json.Marshal(tt.Format(layout))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newToken returns "tk_" and 24 cryptographically random base62 characters.
func newToken() string {
	const n = 24
	b := make([]byte, n)
	out := make([]byte, 0, n+3)
	out = append(out, "tk_"...)
	for len(out) < n+3 {
		if _, err := rand.Read(b); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		for _, c := range b {
			// Reject the top values so that every character is equally likely.
			if c < 248 && len(out) < n+3 {
				out = append(out, base62[int(c)%62])
			}
		}
	}
	return string(out)
}

// window returns the events that lie within the last per (real time); callers compare their
// number with the limit, and the oldest plus per is when a slot frees up.
func window(events []time.Time, now time.Time, per time.Duration) []time.Time {
	kept := events[:0]
	for _, t := range events {
		if now.Sub(t) < per {
			kept = append(kept, t)
		}
	}
	return kept
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// UnmarshalJSON reads an RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var v time.Time
	err := v.UnmarshalJSON(b)
	*t = Timestamp(v)
	return err
}

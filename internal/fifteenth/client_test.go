package fifteenth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

const key = fifteenth.StaticKey("15th_test_key")

// fakeClock is a settable clock shared by a client and a simulator.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)} }
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator behind a real HTTP server and a client pointed at it.
type env struct {
	srv    *httptest.Server
	sim    *sim.Server
	client *fifteenth.Client
	clock  *fakeClock
}

func newEnv(t *testing.T, cfg sim.Config, opts fifteenth.Options) *env {
	t.Helper()
	clock := newClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	s := sim.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL
	if opts.Key == nil {
		opts.Key = key
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	c, err := fifteenth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, sim: s, client: c, clock: clock}
}

func john() fifteenth.CreateAccountRequest {
	return fifteenth.CreateAccountRequest{Email: "john.doe@example.com", FirstName: "John", LastName: "Doe"}
}

func TestCreateAccount(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{})
	ctx := context.Background()

	a, err := e.client.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.ID).To(BeNumerically(">", 0))
	g.Expect(a.Status).To(Equal("active"))
	g.Expect(a.LoginLink).To(MatchRegexp(`^https://app\.fifteenth\.com/auth/partner-login/tk_[0-9A-Za-z]{22,}$`))
	g.Expect(a.LoginLinkExpiresAt.Sub(a.CreatedAt)).To(Equal(7 * 24 * time.Hour))
	g.Expect(a.Spouse).To(BeNil())
	g.Expect(a.String()).NotTo(ContainSubstring("tk_"), "String must not print links")

	no := false
	withSpouse := fifteenth.CreateAccountRequest{Email: "john@doe.example", FirstName: "John", LastName: "Doe",
		Spouse: &fifteenth.SpouseInput{Email: "jane@doe.example", FirstName: "Jane", LastName: "Doe", SendInvitation: &no}}
	a, err = e.client.CreateAccount(ctx, withSpouse)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.Spouse).NotTo(BeNil())
	g.Expect(a.Spouse.ID).NotTo(Equal(a.ID))
	g.Expect(a.Spouse.Status).To(Equal("pending"))
	g.Expect(a.Spouse.LoginLink).To(MatchRegexp(`/auth/user-login/tk_`))
	g.Expect(a.String()).NotTo(ContainSubstring("tk_"))

	got, err := e.client.GetAccount(ctx, a.ID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Email).To(Equal("john@doe.example"))
	g.Expect(got.LoginLink).To(BeEmpty(), "Retrieve Account carries no link")
	g.Expect(got.Spouse.Email).To(Equal("jane@doe.example"))
}

func TestAPIErrors(t *testing.T) {
	e := newEnv(t, sim.Config{}, fifteenth.Options{})
	ctx := context.Background()
	a, err := e.client.CreateAccount(ctx, john())
	if err != nil {
		t.Fatal(err)
	}
	suspended, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "s@example.com", FirstName: "S", LastName: "S"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(e.srv.URL+"/_sim/accounts/"+suspended.ID.String()+"/suspend", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	tests := []struct {
		name     string
		call     func() error
		status   int
		code     string
		terminal bool
		check    func(g Gomega, e *fifteenth.Error)
	}{
		{"invalid email", func() error {
			_, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "not-an-email", FirstName: "J", LastName: "D"})
			return err
		}, 400, fifteenth.CodeValidation, true, func(g Gomega, e *fifteenth.Error) {
			g.Expect(e.FieldErrors()).To(HaveKeyWithValue("email", []string{"Invalid email format"}))
			g.Expect(e.Error()).To(ContainSubstring("email: Invalid email format"))
		}},
		{"name too long", func() error {
			_, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "x@example.com", FirstName: strings.Repeat("a", 51), LastName: "D"})
			return err
		}, 400, fifteenth.CodeValidation, true, func(g Gomega, e *fifteenth.Error) {
			g.Expect(e.FieldErrors()).To(HaveKey("first_name"))
		}},
		{"duplicate email", func() error {
			_, err := e.client.CreateAccount(ctx, john())
			return err
		}, 409, fifteenth.CodeDuplicateEmail, true, func(g Gomega, e *fifteenth.Error) {
			id, ok := e.ExistingAccountID()
			g.Expect(ok).To(BeTrue())
			g.Expect(id).To(Equal(a.ID))
			g.Expect(e.DetailString("email")).To(Equal("john.doe@example.com"))
		}},
		{"account not found", func() error {
			_, err := e.client.GenerateLoginLink(ctx, 999999, fifteenth.LoginLinkRequest{})
			return err
		}, 404, fifteenth.CodeAccountNotFound, true, nil},
		{"retrieve unknown account", func() error {
			_, err := e.client.GetAccount(ctx, 999999)
			return err
		}, 404, fifteenth.CodeAccountNotFound, true, nil},
		{"user not found", func() error {
			_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{UserEmail: "nobody@example.com"})
			return err
		}, 404, fifteenth.CodeUserNotFound, true, nil},
		{"invalid expiry", func() error {
			_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{ExpiryHours: 200})
			return err
		}, 400, fifteenth.CodeInvalidExpiry, true, func(g Gomega, e *fifteenth.Error) {
			g.Expect(string(e.Details["provided_hours"])).To(Equal("200"))
		}},
		{"invalid redirect", func() error {
			_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{RedirectURL: "https://untrusted.com/dashboard"})
			return err
		}, 400, fifteenth.CodeInvalidRedirectURL, true, nil},
		{"unknown purpose", func() error {
			_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{Purpose: "fun"})
			return err
		}, 400, fifteenth.CodeValidation, true, func(g Gomega, e *fifteenth.Error) {
			g.Expect(e.FieldErrors()).To(HaveKey("purpose"))
		}},
		{"suspended", func() error {
			_, err := e.client.GenerateLoginLink(ctx, suspended.ID, fifteenth.LoginLinkRequest{})
			return err
		}, 403, fifteenth.CodeAccountSuspended, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tt.call()
			apiErr, ok := fifteenth.AsError(err)
			g.Expect(ok).To(BeTrue(), "want *fifteenth.Error, got %v", err)
			g.Expect(apiErr.StatusCode).To(Equal(tt.status))
			g.Expect(apiErr.Code).To(Equal(tt.code))
			g.Expect(apiErr.Message).NotTo(BeEmpty())
			g.Expect(fifteenth.IsTerminal(err)).To(Equal(tt.terminal))
			g.Expect(fifteenth.IsRetryable(err)).To(BeFalse())
			g.Expect(fifteenth.HasCode(err, tt.code)).To(BeTrue())
			if tt.check != nil {
				tt.check(g, apiErr)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{APIKeys: []string{"15th_right"}}, fifteenth.Options{Key: fifteenth.StaticKey("15th_wrong")})
	_, err := e.client.CreateAccount(context.Background(), john())
	g.Expect(fifteenth.HasCode(err, fifteenth.CodeUnauthorized)).To(BeTrue())
	g.Expect(err.Error()).NotTo(ContainSubstring("15th_wrong"), "the key never appears in errors")
}

func TestServerRateLimitBlocksUntilReset(t *testing.T) {
	g := NewWithT(t)
	// The server allows 2 per minute; the client believes 100: the third call meets a 429.
	e := newEnv(t, sim.Config{AccountRate: fifteenth.Rate{N: 2, Per: time.Minute}}, fifteenth.Options{})
	ctx := context.Background()
	for i := range 2 {
		_, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: string(rune('a'+i)) + "@example.com", FirstName: "A", LastName: "B"})
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "c@example.com", FirstName: "A", LastName: "B"})
	apiErr, ok := fifteenth.AsError(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(apiErr.StatusCode).To(Equal(429))
	g.Expect(apiErr.Code).To(Equal(fifteenth.CodeRateLimitExceeded))
	at, limited := fifteenth.RetryAt(err)
	g.Expect(limited).To(BeTrue())
	g.Expect(at).To(Equal(e.clock.Now().Add(time.Minute)), "reset_at is the oldest creation plus the window")
	g.Expect(fifteenth.IsRetryable(err)).To(BeTrue())
	g.Expect(fifteenth.IsTerminal(err)).To(BeFalse())

	// Until the reset, the client refuses locally: no request reaches the server.
	before := stats(t, e.srv.URL).Requests["POST /v1beta/accounts"]["429"]
	e.clock.Add(30 * time.Second)
	_, err = e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "c@example.com", FirstName: "A", LastName: "B"})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue())
	g.Expect(rl.RetryAt).To(Equal(at))
	g.Expect(stats(t, e.srv.URL).Requests["POST /v1beta/accounts"]["429"]).To(Equal(before))

	e.clock.Add(30 * time.Second)
	_, err = e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "c@example.com", FirstName: "A", LastName: "B"})
	g.Expect(err).NotTo(HaveOccurred())
}

func TestRetryAfterFallback(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(429)
		_, _ = w.Write([]byte(`{"error":{"code":"RATE_LIMIT_EXCEEDED","message":"slow down","details":{"limit":10}}}`))
	}))
	defer srv.Close()
	clock := newClock()
	c, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: key, Now: clock.Now})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
	at, ok := fifteenth.RetryAt(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(at).To(Equal(clock.Now().Add(7 * time.Second)))
}

func TestClientSideLimits(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{
		AccountCreateRate: fifteenth.Rate{N: 3, Per: time.Minute},
		LoginLinkRate:     fifteenth.Rate{N: 10, Per: time.Hour},
	})
	ctx := context.Background()
	var ids []fifteenth.AccountID
	for i := range 3 {
		a, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: string(rune('a'+i)) + "@example.com", FirstName: "A", LastName: "B"})
		g.Expect(err).NotTo(HaveOccurred())
		ids = append(ids, a.ID)
		e.clock.Add(10 * time.Second)
	}
	_, err := e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "d@example.com", FirstName: "A", LastName: "B"})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue())
	g.Expect(rl.Scope).To(Equal(fifteenth.ScopeAccountCreate))
	g.Expect(rl.RetryAt).To(Equal(e.clock.Now().Add(30*time.Second)), "sliding window: the first creation frees its slot a minute later")
	g.Expect(stats(t, e.srv.URL).Requests["POST /v1beta/accounts"]["201"]).To(Equal(3), "the refused call never reached the server")

	// 10 links per account per hour, sliding; another account has its own window.
	for range 10 {
		_, err := e.client.GenerateLoginLink(ctx, ids[0], fifteenth.LoginLinkRequest{})
		g.Expect(err).NotTo(HaveOccurred())
		e.clock.Add(time.Minute)
	}
	_, err = e.client.GenerateLoginLink(ctx, ids[0], fifteenth.LoginLinkRequest{})
	g.Expect(errors.As(err, &rl)).To(BeTrue())
	g.Expect(rl.Scope).To(Equal(fifteenth.ScopeLoginLink))
	g.Expect(rl.RetryAt).To(Equal(e.clock.Now().Add(50 * time.Minute)))
	_, err = e.client.GenerateLoginLink(ctx, ids[1], fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	e.clock.Add(50 * time.Minute)
	_, err = e.client.GenerateLoginLink(ctx, ids[0], fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stats(t, e.srv.URL).Requests["POST /v1beta/accounts/{id}/login-link"]).NotTo(HaveKey("429"), "the client never met the server's limit")
}

func TestTimeoutAndServerErrorsAreRetryable(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{Faults: sim.Faults{Latency: sim.Duration(2 * time.Second)}, Now: time.Now},
		fifteenth.Options{Timeout: 100 * time.Millisecond, Now: time.Now})
	_, err := e.client.CreateAccount(context.Background(), john())
	var te *fifteenth.TransportError
	g.Expect(errors.As(err, &te)).To(BeTrue(), "got %v", err)
	g.Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
	g.Expect(fifteenth.IsRetryable(err)).To(BeTrue())
	g.Expect(err.Error()).NotTo(ContainSubstring(e.srv.URL), "errors name the route, not the URL")

	f := newEnv(t, sim.Config{Faults: sim.Faults{FailRate: 1}}, fifteenth.Options{})
	_, err = f.client.CreateAccount(context.Background(), john())
	apiErr, ok := fifteenth.AsError(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(apiErr.StatusCode).To(Equal(500))
	g.Expect(fifteenth.IsRetryable(err)).To(BeTrue())
	g.Expect(fifteenth.IsTerminal(err)).To(BeFalse())
}

func TestBaseURLPolicy(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://api.fifteenth.com", true},
		{"http://127.0.0.1:8089", true},
		{"http://localhost:8089", true},
		{"http://[::1]:8089", true},
		{"http://api.fifteenth.com", false},
		{"http://10.0.0.1:8089", false},
		{"ftp://api.fifteenth.com", false},
		{"api.fifteenth.com", false},
	} {
		_, err := fifteenth.New(fifteenth.Options{BaseURL: tt.url, Key: key})
		if (err == nil) != tt.ok {
			t.Errorf("New(%q): err = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestDecodeFailureNeverQuotesBody(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"login_link":"https://app.fifteenth.com/auth/partner-login/tk_SECRETSECRETSECRETSECRET","expires_at":12`))
	}))
	defer srv.Close()
	c, _ := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: key})
	_, err := c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).NotTo(ContainSubstring("tk_"))
	g.Expect(fifteenth.IsRetryable(err)).To(BeTrue())
}

func TestFileKeyRotation(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "api-key")
	g.Expect(os.WriteFile(path, []byte("15th_one\n"), 0o600)).To(Succeed())
	k := fifteenth.NewFileKey(path)
	g.Expect(k.APIKey()).To(Equal("15th_one"))
	g.Expect(os.WriteFile(path, []byte("15th_second"), 0o600)).To(Succeed())
	g.Expect(os.Chtimes(path, time.Now().Add(time.Second), time.Now().Add(time.Second))).To(Succeed())
	g.Expect(k.APIKey()).To(Equal("15th_second"))
	g.Expect(os.WriteFile(path, nil, 0o600)).To(Succeed())
	_, err := k.APIKey()
	g.Expect(err).To(MatchError(ContainSubstring("empty")))
}

func TestEveryCallSendsTheKeyAndJSON(t *testing.T) {
	g := NewWithT(t)
	var got []*http.Request
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"id": 1}`))
	}))
	defer srv.Close()
	c, _ := fifteenth.New(fifteenth.Options{BaseURL: srv.URL + "/", Key: key})
	_, err := c.CreateAccount(context.Background(), john())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].URL.Path).To(Equal("/v1beta/accounts"))
	g.Expect(got[0].Header.Get("Authorization")).To(Equal("Bearer 15th_test_key"))
	g.Expect(got[0].Header.Get("Content-Type")).To(Equal("application/json"))
}

func stats(t *testing.T, base string) sim.Stats {
	t.Helper()
	var s sim.Stats
	getJSON(t, base+"/_sim/stats", &s)
	return s
}

// setFaults replaces the simulator's faults through /_sim/faults.
func setFaults(t *testing.T, base, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/_sim/faults", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_sim/faults %s: %d", body, resp.StatusCode)
	}
}

// The link limiter counts what the API counts: refused calls (4xx) use no slot, so a stream of
// USER_NOT_FOUND for one user never blocks the account's other users.
func TestRefusedLinkCallsUseNoSlot(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{})
	ctx := context.Background()
	a, err := e.client.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())

	for range 10 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{UserEmail: "gone@example.com"})
		g.Expect(fifteenth.HasCode(err, fifteenth.CodeUserNotFound)).To(BeTrue(), "got %v", err)
	}
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{UserEmail: a.Email})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeFalse(), "refused calls used the client's slots: %v", err)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{ExpiryHours: 500})
	g.Expect(fifteenth.HasCode(err, fifteenth.CodeInvalidExpiry)).To(BeTrue(), "got %v", err)

	// Successes still count: nine more fill the window, the next is refused locally.
	for range 9 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
	g.Expect(stats(t, e.srv.URL).Requests["POST /v1beta/accounts/{id}/login-link"]).NotTo(HaveKey("429"))
}

// A 5xx uses no slot, and neither does a 429 (the block after it does the waiting).
func TestFailedLinkCallsUseNoSlot(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{LoginLinkRate: fifteenth.Rate{N: 2, Per: time.Hour}})
	ctx := context.Background()
	a, err := e.client.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())

	setFaults(t, e.srv.URL, `{"fail_rate": 1}`)
	for range 20 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		apiErr, ok := fifteenth.AsError(err)
		g.Expect(ok).To(BeTrue(), "got %v", err)
		g.Expect(apiErr.StatusCode).To(Equal(500))
		e.clock.Add(10 * time.Second)
	}
	setFaults(t, e.srv.URL, `{"rate_limit_next": 1}`)
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
	g.Expect(fifteenth.HasCode(err, fifteenth.CodeRateLimitExceeded)).To(BeTrue(), "got %v", err)
	e.clock.Add(time.Minute) // past the injected 429's reset

	setFaults(t, e.srv.URL, `{}`)
	for i := range 2 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		g.Expect(err).NotTo(HaveOccurred(), "generation %d after the failures", i)
	}
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "two successes fill a window of 2: %v", err)
}

// A call that got no answer may have generated a link that the API counts: it keeps its slot.
// A success whose body could not be decoded was counted by the API too. Only a call that
// certainly never reached the API (the connection could not be made) gives its slot back.
func TestUnansweredLinkCalls(t *testing.T) {
	t.Run("timeout keeps the slot", func(t *testing.T) {
		g := NewWithT(t)
		e := newEnv(t, sim.Config{Now: time.Now}, fifteenth.Options{Now: time.Now,
			Timeout: 100 * time.Millisecond, LoginLinkRate: fifteenth.Rate{N: 1, Per: time.Hour}})
		ctx := context.Background()
		a, err := e.client.CreateAccount(ctx, john())
		g.Expect(err).NotTo(HaveOccurred())
		setFaults(t, e.srv.URL, `{"latency": "1s"}`)
		_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		var te *fifteenth.TransportError
		g.Expect(errors.As(err, &te)).To(BeTrue(), "got %v", err)
		g.Expect(stats(t, e.srv.URL).LinksGenerated).To(Equal(1), "the API generated the link it never answered")
		_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		var rl *fifteenth.RateLimitError
		g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
	})
	t.Run("undecodable success keeps the slot", func(t *testing.T) {
		g := NewWithT(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"login_link": 5}`))
		}))
		defer srv.Close()
		c, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: key, LoginLinkRate: fifteenth.Rate{N: 1, Per: time.Hour}})
		g.Expect(err).NotTo(HaveOccurred())
		_, err = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
		var te *fifteenth.TransportError
		g.Expect(errors.As(err, &te)).To(BeTrue(), "got %v", err)
		_, err = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
		var rl *fifteenth.RateLimitError
		g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
	})
	t.Run("connection refused gives the slot back", func(t *testing.T) {
		g := NewWithT(t)
		e := newEnv(t, sim.Config{}, fifteenth.Options{})
		var down sync.Map // set while the API is unreachable
		tr := http.DefaultTransport.(*http.Transport).Clone()
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if _, ok := down.Load("down"); ok {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
			}
			return dial(ctx, network, addr)
		}
		c, err := fifteenth.New(fifteenth.Options{BaseURL: e.srv.URL, Key: key, Now: e.clock.Now,
			HTTPClient: &http.Client{Transport: tr}, LoginLinkRate: fifteenth.Rate{N: 1, Per: time.Hour}})
		g.Expect(err).NotTo(HaveOccurred())
		a, err := c.CreateAccount(context.Background(), john())
		g.Expect(err).NotTo(HaveOccurred())
		tr.CloseIdleConnections()
		down.Store("down", true)
		for range 5 {
			_, err = c.GenerateLoginLink(context.Background(), a.ID, fifteenth.LoginLinkRequest{})
			var te *fifteenth.TransportError
			g.Expect(errors.As(err, &te)).To(BeTrue(), "got %v", err)
		}
		down.Delete("down")
		_, err = c.GenerateLoginLink(context.Background(), a.ID, fifteenth.LoginLinkRequest{})
		g.Expect(err).NotTo(HaveOccurred())
	})
}

// CONTRACT.md says only that the API allows 100 creations per key per minute, not that refused
// requests go free: the creation limiter keeps counting every request that reached the API.
func TestRefusedCreationsStillCount(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{AccountCreateRate: fifteenth.Rate{N: 2, Per: time.Minute}})
	ctx := context.Background()
	_, err := e.client.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.client.CreateAccount(ctx, john())
	g.Expect(fifteenth.HasCode(err, fifteenth.CodeDuplicateEmail)).To(BeTrue(), "got %v", err)
	_, err = e.client.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "x@example.com", FirstName: "X", LastName: "Y"})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
}

// A 429 blocks until the latest of reset_at, now + Retry-After and now + 1 s: reset_at has
// second precision and may already be past, and retrying at once meets another 429.
func TestRetryAtOf429(t *testing.T) {
	clock := newClock()
	clock.Add(700 * time.Millisecond) // 10:30:00.7: the API's reset_at may be truncated to 10:30:00
	now := clock.Now()
	stamp := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	for _, tt := range []struct {
		name       string
		resetAt    string // "" for none
		retryAfter string // "" for none
		want       time.Time
	}{
		{"reset_at in the past", stamp(-5 * time.Second), "", now.Add(time.Second)},
		{"reset_at truncated to now", "2024-01-15T10:30:00Z", "", now.Add(time.Second)},
		{"reset_at in the past, Retry-After", stamp(-5 * time.Second), "5", now.Add(5 * time.Second)},
		{"Retry-After larger than reset_at", now.Add(10 * time.Second).Format(time.RFC3339Nano), "30", now.Add(30 * time.Second)},
		{"both, reset_at later", now.Add(90 * time.Second).Format(time.RFC3339Nano), "60", now.Add(90 * time.Second)},
		{"Retry-After zero", "", "0", now.Add(time.Second)},
		{"Retry-After as a past HTTP date", "", now.Add(-time.Hour).Format(http.TimeFormat), now.Add(time.Second)},
		{"neither", "", "", now.Add(time.Minute)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				details := `{"limit": 10, "window_minutes": 60}`
				if tt.resetAt != "" {
					details = `{"limit": 10, "window_minutes": 60, "reset_at": "` + tt.resetAt + `"}`
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(429)
				_, _ = w.Write([]byte(`{"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Too many login link generation requests", "details": ` + details + `}}`))
			}))
			defer srv.Close()
			clock := &fakeClock{t: now}
			c, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: key, Now: clock.Now})
			g.Expect(err).NotTo(HaveOccurred())

			_, err = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
			at, limited := fifteenth.RetryAt(err)
			g.Expect(limited).To(BeTrue(), "got %v", err)
			g.Expect(at).To(BeTemporally("==", tt.want))

			// The account is blocked locally until then, and no longer.
			clock.Add(tt.want.Sub(now) - time.Millisecond)
			_, err = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
			var rl *fifteenth.RateLimitError
			g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
			g.Expect(rl.RetryAt).To(BeTemporally("==", tt.want))
			g.Expect(calls.Load()).To(BeEquivalentTo(1))
			clock.Add(time.Millisecond)
			_, _ = c.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
			g.Expect(calls.Load()).To(BeEquivalentTo(2), "the block lifts at the retry time")
		})
	}
}

// A generation that took effect but was answered 500 uses no slot, at the client and at the
// simulator alike: the two keep the same count, and the client never meets the server's limit.
func TestFailedAfterCommitLinksUseNoSlot(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{})
	ctx := context.Background()
	a, err := e.client.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	setFaults(t, e.srv.URL, `{"fail_after_commit_rate": 1}`)
	for range 10 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		apiErr, ok := fifteenth.AsError(err)
		g.Expect(ok).To(BeTrue(), "got %v", err)
		g.Expect(apiErr.StatusCode).To(Equal(500))
	}
	setFaults(t, e.srv.URL, `{}`)
	for range 10 {
		_, err := e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err = e.client.GenerateLoginLink(ctx, a.ID, fifteenth.LoginLinkRequest{})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "got %v", err)
	g.Expect(stats(t, e.srv.URL).Requests["POST /v1beta/accounts/{id}/login-link"]).NotTo(HaveKey("429"))
}

package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	t     *testing.T
	url   string
	clock *clock
}

func start(t *testing.T, cfg sim.Config) *harness {
	t.Helper()
	c := &clock{t: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)}
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	srv := httptest.NewServer(sim.New(cfg))
	t.Cleanup(srv.Close)
	return &harness{t: t, url: srv.URL, clock: c}
}

type answer struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (a answer) errCode() string {
	e, _ := a.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a answer) details() map[string]any {
	e, _ := a.Body["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	return d
}

func (h *harness) do(method, path, body string) answer {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/v1beta/") {
		req.Header.Set("Authorization", "Bearer 15th_your_api_key_here")
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Header: resp.Header}
	_ = json.Unmarshal(raw, &a.Body)
	return a
}

func token(link any) string {
	s, _ := link.(string)
	return s[strings.LastIndex(s, "/")+1:]
}

func (h *harness) linkState(tok string) string {
	h.t.Helper()
	a := h.do("GET", "/_sim/links/"+tok, "")
	s, _ := a.Body["state"].(string)
	return s
}

// The vendor's example requests, replayed.
func TestVendorExamples(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{})

	// Basic Account Creation
	basic := h.do("POST", "/v1beta/accounts", `{"email": "john.doe@example.com", "first_name": "John", "last_name": "Doe"}`)
	g.Expect(basic.Status).To(Equal(201))
	g.Expect(basic.Body).To(HaveKeyWithValue("status", "active"))
	g.Expect(basic.Body).To(HaveKeyWithValue("email", "john.doe@example.com"))
	g.Expect(basic.Body["login_link"]).To(MatchRegexp(`^https://app\.fifteenth\.com/auth/partner-login/tk_[0-9A-Za-z]{22,}$`))
	g.Expect(basic.Body).To(HaveKeyWithValue("created_at", "2024-01-15T10:30:00Z"))
	g.Expect(basic.Body).To(HaveKeyWithValue("login_link_expires_at", "2024-01-22T10:30:00Z"), "creation + 7 days")
	g.Expect(basic.Body).NotTo(HaveKey("spouse"))
	id := int64(basic.Body["id"].(float64))

	// Account with Spouse
	sp := h.do("POST", "/v1beta/accounts", `{"email": "john@smith.example", "first_name": "John", "last_name": "Smith",
		"spouse": {"email": "jane@smith.example", "first_name": "Jane", "last_name": "Smith", "send_invitation": true}}`)
	g.Expect(sp.Status).To(Equal(201))
	spouse := sp.Body["spouse"].(map[string]any)
	g.Expect(spouse).To(HaveKeyWithValue("status", "invited"))
	g.Expect(spouse["login_link"]).To(MatchRegexp(`^https://app\.fifteenth\.com/auth/user-login/tk_`))
	g.Expect(spouse).To(HaveKeyWithValue("login_link_expires_at", "2024-01-22T10:30:00Z"))
	g.Expect(spouse["id"]).NotTo(Equal(sp.Body["id"]))

	// Generate login link with default settings
	def := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{}`)
	g.Expect(def.Status).To(Equal(200))
	g.Expect(def.Body).To(HaveKeyWithValue("expires_in_hours", 168.0))
	g.Expect(def.Body).To(HaveKeyWithValue("purpose", "expired_link"))
	g.Expect(def.Body).To(HaveKeyWithValue("redirect_url", BeNil()))
	g.Expect(def.Body).To(HaveKeyWithValue("notification_sent", true))
	g.Expect(def.Body).To(HaveKeyWithValue("previous_links_invalidated", 1.0), "the creation link")
	g.Expect(def.Body).To(HaveKeyWithValue("user_email", "john.doe@example.com"))
	g.Expect(def.Body).To(HaveKeyWithValue("account_id", float64(id)))
	g.Expect(def.Body).To(HaveKeyWithValue("expires_at", "2024-01-22T10:30:00Z"))

	// Custom settings (support request with redirect)
	custom := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{"user_email": "john.doe@example.com", "expiry_hours": 48,
		"purpose": "support_request", "redirect_url": "https://yourplatform.com/tax-dashboard", "send_notification": true,
		"notification_settings": {"partner_branded": true, "custom_subject": "New Access Link for Your Tax Account",
		"custom_message": "We've generated a new login link at your request.", "include_instructions": true}}`)
	g.Expect(custom.Status).To(Equal(200))
	g.Expect(custom.Body).To(HaveKeyWithValue("expires_in_hours", 48.0))
	g.Expect(custom.Body).To(HaveKeyWithValue("expires_at", "2024-01-17T10:30:00Z"))
	g.Expect(custom.Body).To(HaveKeyWithValue("redirect_url", "https://yourplatform.com/tax-dashboard"))
	g.Expect(custom.Body).To(HaveKeyWithValue("purpose", "support_request"))

	// Generate for a specific user (an accountant, added first)
	g.Expect(h.do("POST", fmt.Sprintf("/_sim/accounts/%d/users", id), `{"email": "accountant@example.com"}`).Status).To(Equal(201))
	acct := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{"user_email": "accountant@example.com",
		"expiry_hours": 24, "purpose": "additional_user", "send_notification": true,
		"notification_settings": {"custom_message": "Your client has granted you access."}}`)
	g.Expect(acct.Status).To(Equal(200))
	g.Expect(acct.Body).To(HaveKeyWithValue("user_email", "accountant@example.com"))
	g.Expect(acct.Body).To(HaveKeyWithValue("previous_links_invalidated", 0.0), "the accountant had no link")

	// Manual delivery: no notification
	manual := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{"expiry_hours": 72, "purpose": "manual_delivery", "send_notification": false}`)
	g.Expect(manual.Status).To(Equal(200))
	g.Expect(manual.Body).To(HaveKeyWithValue("notification_sent", false))
	g.Expect(manual.Body).To(HaveKeyWithValue("purpose", "manual_delivery"))

	// Automated renewal
	renew := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{"purpose": "automated_renewal", "expiry_hours": 168,
		"send_notification": true, "notification_settings": {"custom_message": "Your previous login link has expired."}}`)
	g.Expect(renew.Status).To(Equal(200))
	g.Expect(renew.Body).To(HaveKeyWithValue("previous_links_invalidated", 1.0))

	// The outbox has the notifications, and never a link.
	resp, err := http.Get(h.url + "/_sim/outbox")
	g.Expect(err).NotTo(HaveOccurred())
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(string(raw)).NotTo(ContainSubstring("tk_"))
	var outbox []sim.OutboxEntry
	g.Expect(json.Unmarshal(raw, &outbox)).To(Succeed())
	g.Expect(outbox).To(ContainElement(And(
		HaveField("Recipient", "john.doe@example.com"), HaveField("Subject", "New Access Link for Your Tax Account"), HaveField("Purpose", "support_request"))))
	g.Expect(outbox).To(ContainElement(And(HaveField("Kind", "spouse_invitation"), HaveField("Recipient", "jane@smith.example"))))
	g.Expect(outbox).NotTo(ContainElement(HaveField("Purpose", "manual_delivery")))
}

// The documented error answers, with their bodies.
func TestVendorErrors(t *testing.T) {
	h := start(t, sim.Config{AccountRate: fifteenth.Rate{N: 3, Per: time.Minute}, LinkRate: fifteenth.Rate{N: 2, Per: time.Hour}})
	created := h.do("POST", "/v1beta/accounts", `{"email": "john.doe@example.com", "first_name": "John", "last_name": "Doe"}`)
	id := int64(created.Body["id"].(float64))
	linkPath := fmt.Sprintf("/v1beta/accounts/%d/login-link", id)

	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		code                     string
		details                  map[string]any
	}{
		{"invalid email", "POST", "/v1beta/accounts", `{"email": "nope", "first_name": "J", "last_name": "D"}`,
			400, "VALIDATION_ERROR", map[string]any{"email": []any{"Invalid email format"}}},
		{"missing fields", "POST", "/v1beta/accounts", `{}`,
			400, "VALIDATION_ERROR", map[string]any{"email": []any{"This field is required"}, "first_name": []any{"This field is required"}, "last_name": []any{"This field is required"}}},
		{"name over 50", "POST", "/v1beta/accounts", `{"email": "a@example.com", "first_name": "` + strings.Repeat("x", 51) + `", "last_name": "D"}`,
			400, "VALIDATION_ERROR", map[string]any{"first_name": []any{"Must be at most 50 characters"}}},
		{"spouse same email", "POST", "/v1beta/accounts", `{"email": "a@example.com", "first_name": "A", "last_name": "D", "spouse": {"email": "a@example.com", "first_name": "B", "last_name": "D"}}`,
			400, "VALIDATION_ERROR", map[string]any{"spouse.email": []any{"Must differ from the primary account holder's email"}}},
		{"malformed json", "POST", "/v1beta/accounts", `{"email": 5}`, 400, "VALIDATION_ERROR", nil},
		{"duplicate", "POST", "/v1beta/accounts", `{"email": "john.doe@example.com", "first_name": "John", "last_name": "Doe"}`,
			409, "DUPLICATE_EMAIL", map[string]any{"email": "john.doe@example.com", "existing_account_id": float64(id)}},
		{"duplicate as spouse", "POST", "/v1beta/accounts", `{"email": "new@example.com", "first_name": "N", "last_name": "D", "spouse": {"email": "JOHN.DOE@example.com", "first_name": "J", "last_name": "D"}}`,
			409, "DUPLICATE_EMAIL", map[string]any{"email": "JOHN.DOE@example.com", "existing_account_id": float64(id)}},
		{"account not found", "POST", "/v1beta/accounts/99999/login-link", `{}`,
			404, "ACCOUNT_NOT_FOUND", map[string]any{"account_id": "99999"}},
		{"retrieve not found", "GET", "/v1beta/accounts/99999", ``, 404, "ACCOUNT_NOT_FOUND", map[string]any{"account_id": "99999"}},
		{"user not found", "POST", linkPath, `{"user_email": "someone@example.com"}`,
			404, "USER_NOT_FOUND", map[string]any{"user_email": "someone@example.com", "account_id": fmt.Sprint(id)}},
		{"invalid expiry", "POST", linkPath, `{"expiry_hours": 200}`,
			400, "INVALID_EXPIRY", map[string]any{"provided_hours": 200.0, "min_hours": 1.0, "max_hours": 168.0}},
		{"expiry zero", "POST", linkPath, `{"expiry_hours": 0}`,
			400, "INVALID_EXPIRY", map[string]any{"provided_hours": 0.0, "min_hours": 1.0, "max_hours": 168.0}},
		{"invalid redirect", "POST", linkPath, `{"redirect_url": "https://untrusted.com/dashboard"}`,
			400, "INVALID_REDIRECT_URL", map[string]any{"provided_url": "https://untrusted.com/dashboard", "permitted_domains": []any{"yourplatform.com", "yourapp.net"}}},
		{"http redirect", "POST", linkPath, `{"redirect_url": "http://yourplatform.com/x"}`, 400, "INVALID_REDIRECT_URL", nil},
		{"lookalike domain", "POST", linkPath, `{"redirect_url": "https://evilyourplatform.com/x"}`, 400, "INVALID_REDIRECT_URL", nil},
		{"unknown purpose", "POST", linkPath, `{"purpose": "whatever"}`, 400, "VALIDATION_ERROR", nil},
		{"no key", "POST", "/v1beta/accounts", `{}`, 401, "UNAUTHORIZED", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var a answer
			if tt.name == "no key" {
				resp, err := http.Post(h.url+tt.path, "application/json", strings.NewReader(tt.body))
				g.Expect(err).NotTo(HaveOccurred())
				a.Status = resp.StatusCode
				_ = json.NewDecoder(resp.Body).Decode(&a.Body)
				_ = resp.Body.Close()
			} else {
				a = h.do(tt.method, tt.path, tt.body)
			}
			g.Expect(a.Status).To(Equal(tt.status))
			g.Expect(a.errCode()).To(Equal(tt.code))
			g.Expect(a.Body["error"]).To(HaveKeyWithValue("message", Not(BeEmpty())))
			if tt.details != nil {
				g.Expect(a.details()).To(Equal(tt.details))
			}
		})
	}

	g := NewWithT(t)
	// A subdomain of a permitted domain is permitted.
	g.Expect(h.do("POST", linkPath, `{"redirect_url": "https://app.yourplatform.com/x"}`).Status).To(Equal(200))
	// Link rate: 2 per hour per account, then 429 with the documented details and Retry-After.
	g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(200))
	limited := h.do("POST", linkPath, `{}`)
	g.Expect(limited.Status).To(Equal(429))
	g.Expect(limited.errCode()).To(Equal("RATE_LIMIT_EXCEEDED"))
	g.Expect(limited.details()).To(Equal(map[string]any{"limit": 2.0, "window_minutes": 60.0, "reset_at": "2024-01-15T11:30:00Z"}))
	g.Expect(limited.Header.Get("Retry-After")).To(Equal("3600"))

	// Creation rate: 3 per minute per key (one used above), then 429.
	g.Expect(h.do("POST", "/v1beta/accounts", `{"email": "b@example.com", "first_name": "B", "last_name": "D"}`).Status).To(Equal(201))
	g.Expect(h.do("POST", "/v1beta/accounts", `{"email": "c@example.com", "first_name": "C", "last_name": "D"}`).Status).To(Equal(201))
	limited = h.do("POST", "/v1beta/accounts", `{"email": "d@example.com", "first_name": "D", "last_name": "D"}`)
	g.Expect(limited.Status).To(Equal(429))
	g.Expect(limited.Body["error"]).To(HaveKeyWithValue("message", "Rate limit exceeded. Please retry after 60 seconds."))
	g.Expect(limited.details()).To(Equal(map[string]any{"limit": 3.0, "window_seconds": 60.0, "reset_at": "2024-01-15T10:31:00Z"}))
	h.clock.Add(time.Minute)
	g.Expect(h.do("POST", "/v1beta/accounts", `{"email": "d@example.com", "first_name": "D", "last_name": "D"}`).Status).To(Equal(201))

	// Suspension: 403 with the documented details; reactivation lifts it.
	g.Expect(h.do("POST", fmt.Sprintf("/_sim/accounts/%d/suspend", id), "").Status).To(Equal(200))
	susp := h.do("POST", linkPath, `{}`)
	g.Expect(susp.Status).To(Equal(403))
	g.Expect(susp.details()).To(Equal(map[string]any{"account_id": fmt.Sprint(id), "status": "suspended", "contact_support": true}))
	g.Expect(h.do("GET", fmt.Sprintf("/v1beta/accounts/%d", id), "").Body).To(HaveKeyWithValue("status", "suspended"))
	g.Expect(h.do("POST", fmt.Sprintf("/_sim/accounts/%d/reactivate", id), "").Status).To(Equal(200))
	g.Expect(h.do("GET", fmt.Sprintf("/v1beta/accounts/%d", id), "").Body).To(HaveKeyWithValue("status", "active"))
}

func TestSingleUseAndInvalidationPerUser(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{})
	a := h.do("POST", "/v1beta/accounts", `{"email": "h@example.com", "first_name": "H", "last_name": "D",
		"spouse": {"email": "s@example.com", "first_name": "S", "last_name": "D"}}`)
	id := int64(a.Body["id"].(float64))
	holder0 := token(a.Body["login_link"])
	spouse0 := token(a.Body["spouse"].(map[string]any)["login_link"])
	linkPath := fmt.Sprintf("/v1beta/accounts/%d/login-link", id)

	// A spouse link invalidates only the spouse's earlier link.
	sp := h.do("POST", linkPath, `{"user_email": "s@example.com"}`)
	g.Expect(sp.Body).To(HaveKeyWithValue("previous_links_invalidated", 1.0))
	g.Expect(h.linkState(spouse0)).To(Equal("invalidated"))
	g.Expect(h.linkState(holder0)).To(Equal("valid"))
	spouse1 := token(sp.Body["login_link"])

	// Used links are not counted as invalidated.
	use := h.do("GET", "/auth/partner-login/"+holder0, "")
	g.Expect(use.Status).To(Equal(200))
	g.Expect(h.linkState(holder0)).To(Equal("used"))
	again := h.do("GET", "/auth/partner-login/"+holder0, "")
	g.Expect(again.Status).To(Equal(410))
	g.Expect(again.errCode()).To(Equal("LINK_USED"))
	h1 := h.do("POST", linkPath, `{"redirect_url": "https://yourapp.net/home"}`)
	g.Expect(h1.Body).To(HaveKeyWithValue("previous_links_invalidated", 0.0))
	g.Expect(h.linkState(spouse1)).To(Equal("valid"), "a holder link leaves the spouse's link alone")

	// Two valid holder links in turn: each invalidates exactly one.
	h2 := h.do("POST", linkPath, `{}`)
	g.Expect(h2.Body).To(HaveKeyWithValue("previous_links_invalidated", 1.0))
	old := h.do("GET", "/auth/partner-login/"+token(h1.Body["login_link"]), "")
	g.Expect(old.Status).To(Equal(410))
	g.Expect(old.errCode()).To(Equal("LINK_INVALIDATED"))

	// A link with a redirect answers 302 on first use; the spouse's creation link was a user-login link.
	h3 := h.do("POST", linkPath, `{"redirect_url": "https://yourapp.net/home"}`)
	redirect := h.do("GET", "/auth/partner-login/"+token(h3.Body["login_link"]), "")
	g.Expect(redirect.Status).To(Equal(302))
	g.Expect(redirect.Header.Get("Location")).To(Equal("https://yourapp.net/home"))
	g.Expect(h.do("GET", "/auth/user-login/"+spouse0, "").errCode()).To(Equal("LINK_INVALIDATED"))
	g.Expect(h.do("GET", "/auth/partner-login/tk_unknownunknownunknown12", "").Status).To(Equal(404))
	g.Expect(h.do("GET", "/_sim/links/tk_unknownunknownunknown12", "").Status).To(Equal(404))
}

func TestTimeScale(t *testing.T) {
	g := NewWithT(t)
	// 3600 API seconds per real second: a 1-hour link lasts one real second, the hourly link
	// window one real second too.
	h := start(t, sim.Config{TimeScale: 3600, LinkRate: fifteenth.Rate{N: 2, Per: time.Hour}})
	a := h.do("POST", "/v1beta/accounts", `{"email": "h@example.com", "first_name": "H", "last_name": "D"}`)
	g.Expect(a.Body).To(HaveKeyWithValue("login_link_expires_at", "2024-01-15T10:32:48Z"), "7 days of API time = 168 s")
	id := int64(a.Body["id"].(float64))
	path := fmt.Sprintf("/v1beta/accounts/%d/login-link", id)
	l := h.do("POST", path, `{"expiry_hours": 1}`)
	g.Expect(l.Body).To(HaveKeyWithValue("expires_at", "2024-01-15T10:30:01Z"))
	g.Expect(l.Body).To(HaveKeyWithValue("expires_in_hours", 1.0), "hours are reported in API time")
	tok := token(l.Body["login_link"])
	h.clock.Add(999 * time.Millisecond)
	g.Expect(h.linkState(tok)).To(Equal("valid"))
	h.clock.Add(time.Millisecond)
	g.Expect(h.linkState(tok)).To(Equal("expired"))
	g.Expect(h.do("GET", "/auth/partner-login/"+tok, "").errCode()).To(Equal("LINK_EXPIRED"))

	// The first link's slot has slid out of the one-second window: two more fit, then 429.
	g.Expect(h.do("POST", path, `{}`).Status).To(Equal(200))
	g.Expect(h.do("POST", path, `{}`).Status).To(Equal(200))
	limited := h.do("POST", path, `{}`)
	g.Expect(limited.Status).To(Equal(429))
	g.Expect(limited.details()).To(HaveKeyWithValue("reset_at", "2024-01-15T10:30:02Z"), "reset one real second after the first link of the window")
	h.clock.Add(time.Second)
	g.Expect(h.do("POST", path, `{}`).Status).To(Equal(200))

	// Sub-second precision shows when time is scaled.
	h.clock.Add(250 * time.Millisecond)
	g.Expect(h.do("POST", path, `{"expiry_hours": 1}`).Body["created_at"]).To(Equal("2024-01-15T10:30:02.250Z"))
}

func TestFaultInjection(t *testing.T) {
	g := NewWithT(t)
	create := `{"email": "h@example.com", "first_name": "H", "last_name": "D"}`

	fail := start(t, sim.Config{Faults: sim.Faults{FailRate: 1}})
	g.Expect(fail.do("POST", "/v1beta/accounts", create).Status).To(Equal(500))
	var accounts []sim.Account
	getJSON(t, fail.url+"/_sim/accounts", &accounts)
	g.Expect(accounts).To(BeEmpty(), "--fail-rate answers before any effect")

	after := start(t, sim.Config{Faults: sim.Faults{FailAfterCommitRate: 1}})
	g.Expect(after.do("POST", "/v1beta/accounts", create).Status).To(Equal(500))
	getJSON(t, after.url+"/_sim/accounts", &accounts)
	g.Expect(accounts).To(HaveLen(1), "--fail-after-commit-rate: the effect happened")
	g.Expect(after.do("PUT", "/_sim/faults", `{}`).Status).To(Equal(200))
	retry := after.do("POST", "/v1beta/accounts", create)
	g.Expect(retry.Status).To(Equal(409))
	g.Expect(retry.details()).To(HaveKeyWithValue("existing_account_id", float64(accounts[0].ID)))

	// Forced 429 bursts, then back to normal.
	g.Expect(after.do("PUT", "/_sim/faults", `{"rate_limit_next": 2}`).Status).To(Equal(200))
	g.Expect(after.do("GET", fmt.Sprintf("/v1beta/accounts/%d", accounts[0].ID), "").Status).To(Equal(429))
	g.Expect(after.do("GET", fmt.Sprintf("/v1beta/accounts/%d", accounts[0].ID), "").Status).To(Equal(429))
	g.Expect(after.do("GET", fmt.Sprintf("/v1beta/accounts/%d", accounts[0].ID), "").Status).To(Equal(200))
	g.Expect(after.do("PUT", "/_sim/faults", `{"fail_rate": 2}`).Status).To(Equal(400))

	slow := start(t, sim.Config{Faults: sim.Faults{Latency: sim.Duration(200 * time.Millisecond)}})
	began := time.Now()
	g.Expect(slow.do("POST", "/v1beta/accounts", create).Status).To(Equal(201))
	g.Expect(time.Since(began)).To(BeNumerically(">=", 200*time.Millisecond))
	began = time.Now()
	g.Expect(slow.do("GET", "/_sim/stats", "").Status).To(Equal(200))
	g.Expect(time.Since(began)).To(BeNumerically("<", 200*time.Millisecond), "/_sim/ is never delayed")

	var st sim.Stats
	getJSON(t, after.url+"/_sim/stats", &st)
	g.Expect(st.Requests["POST /v1beta/accounts"]).To(Equal(map[string]int{"500": 1, "409": 1}))
	g.Expect(st.Requests["GET /v1beta/accounts/{id}"]).To(Equal(map[string]int{"429": 2, "200": 1}))
	g.Expect(st.AccountsCreated).To(Equal(1))
}

// 1,000 concurrent requests on loopback do not corrupt state.
func TestConcurrency(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{AccountRate: fifteenth.Rate{N: 10000, Per: time.Minute}, LinkRate: fifteenth.Rate{N: 10000, Per: time.Hour}, Now: time.Now})
	first := h.do("POST", "/v1beta/accounts", `{"email": "shared@example.com", "first_name": "S", "last_name": "D"}`)
	shared := int64(first.Body["id"].(float64))

	const n = 1000
	codes := make([]int, n)
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := range n {
		wg.Go(func() {
			var path, body string
			switch i % 3 {
			case 0, 1: // distinct accounts, with a few duplicates of each other
				path, body = "/v1beta/accounts", fmt.Sprintf(`{"email": "u%d@example.com", "first_name": "U", "last_name": "D"}`, i%600)
			case 2: // links for one account: each invalidates the previous
				path, body = fmt.Sprintf("/v1beta/accounts/%d/login-link", shared), `{"send_notification": false}`
			}
			req, _ := http.NewRequest("POST", h.url+path, bytes.NewBufferString(body))
			req.Header.Set("Authorization", "Bearer 15th_k")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			codes[i] = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	created, dup, links := 0, 0, 0
	for _, c := range codes {
		switch c {
		case 201:
			created++
		case 409:
			dup++
		case 200:
			links++
		default:
			t.Fatalf("unexpected status %d", c)
		}
	}
	var accounts []sim.Account
	getJSON(t, h.url+"/_sim/accounts", &accounts)
	emails := map[string]bool{}
	ids := map[int64]bool{}
	for _, a := range accounts {
		g.Expect(emails[a.Email]).To(BeFalse(), "duplicate email %s", a.Email)
		g.Expect(ids[a.ID]).To(BeFalse(), "duplicate id %d", a.ID)
		emails[a.Email], ids[a.ID] = true, true
	}
	g.Expect(accounts).To(HaveLen(created + 1))
	g.Expect(created).To(Equal(600-countMod3Is2Below600()), "each distinct email created exactly once")
	g.Expect(created + dup + links).To(Equal(n))
	for _, a := range accounts {
		if a.ID == shared {
			g.Expect(a.Links["valid"]).To(Equal(1), "exactly one valid link per user, whatever the interleaving")
			g.Expect(a.Links["invalidated"]).To(Equal(links))
		}
	}
}

// countMod3Is2Below600 counts the i%600 values never used for creation: those only reached by
// indices with i%3 == 2.
func countMod3Is2Below600() int {
	used := map[int]bool{}
	for i := range 1000 {
		if i%3 != 2 {
			used[i%600] = true
		}
	}
	return 600 - len(used)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRotation(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{APIKeys: []string{"15th_your_api_key_here"}})
	body := `{"email": "k@example.com", "first_name": "K", "last_name": "D"}`
	g.Expect(h.do("POST", "/v1beta/accounts", body).Status).To(Equal(201))
	req, _ := http.NewRequest("PUT", h.url+"/_sim/keys", strings.NewReader(`{"keys": ["15th_new"]}`))
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	old := h.do("GET", "/v1beta/accounts/12345", "")
	g.Expect(old.Status).To(Equal(401), "the old key is revoked")
	g.Expect(old.errCode()).To(Equal("UNAUTHORIZED"))
}

// reset_at has second precision: the simulator rounds it up, never down, so that a client
// waiting until reset_at never retries before a slot is free. Retry-After agrees with it.
func TestResetAtRoundsUp(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{AccountRate: fifteenth.Rate{N: 1, Per: time.Minute}, LinkRate: fifteenth.Rate{N: 1, Per: time.Hour}})
	h.clock.Add(400 * time.Millisecond) // 10:30:00.4
	created := h.do("POST", "/v1beta/accounts", `{"email": "a@example.com", "first_name": "A", "last_name": "D"}`)
	g.Expect(created.Status).To(Equal(201))
	id := int64(created.Body["id"].(float64))
	linkPath := fmt.Sprintf("/v1beta/accounts/%d/login-link", id)
	g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(200))

	h.clock.Add(200 * time.Millisecond) // 10:30:00.6
	limited := h.do("POST", "/v1beta/accounts", `{"email": "b@example.com", "first_name": "B", "last_name": "D"}`)
	g.Expect(limited.Status).To(Equal(429))
	g.Expect(limited.details()).To(HaveKeyWithValue("reset_at", "2024-01-15T10:31:01Z"), "10:31:00.4 rounded up")
	g.Expect(limited.Header.Get("Retry-After")).To(Equal("61"), "from 10:30:00.6 to 10:31:01, rounded up")

	limited = h.do("POST", linkPath, `{}`)
	g.Expect(limited.Status).To(Equal(429))
	g.Expect(limited.details()).To(HaveKeyWithValue("reset_at", "2024-01-15T11:30:01Z"))
	g.Expect(limited.Header.Get("Retry-After")).To(Equal("3601"))
}

// Injected 429s look like real ones: the documented details of the route's limit (with the
// configured rates), a rounded-up reset_at and a Retry-After header.
func TestInjectedRateLimitDetails(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{AccountRate: fifteenth.Rate{N: 5, Per: 30 * time.Second}, LinkRate: fifteenth.Rate{N: 3, Per: 2 * time.Hour}})
	created := h.do("POST", "/v1beta/accounts", `{"email": "a@example.com", "first_name": "A", "last_name": "D"}`)
	id := int64(created.Body["id"].(float64))
	h.clock.Add(400 * time.Millisecond) // 10:30:00.4
	g.Expect(h.do("PUT", "/_sim/faults", `{"rate_limit_next": 3}`).Status).To(Equal(200))

	create := h.do("POST", "/v1beta/accounts", `{"email": "b@example.com", "first_name": "B", "last_name": "D"}`)
	g.Expect(create.Status).To(Equal(429))
	g.Expect(create.errCode()).To(Equal("RATE_LIMIT_EXCEEDED"))
	g.Expect(create.details()).To(Equal(map[string]any{"limit": 5.0, "window_seconds": 30.0, "reset_at": "2024-01-15T10:30:03Z"}))
	g.Expect(create.Header.Get("Retry-After")).To(Equal("3"))

	link := h.do("POST", fmt.Sprintf("/v1beta/accounts/%d/login-link", id), `{}`)
	g.Expect(link.Status).To(Equal(429))
	g.Expect(link.Body["error"]).To(HaveKeyWithValue("message", "Too many login link generation requests"))
	g.Expect(link.details()).To(Equal(map[string]any{"limit": 3.0, "window_minutes": 120.0, "reset_at": "2024-01-15T10:30:03Z"}))
	g.Expect(link.Header.Get("Retry-After")).To(Equal("3"))

	get := h.do("GET", fmt.Sprintf("/v1beta/accounts/%d", id), "")
	g.Expect(get.Status).To(Equal(429))
	g.Expect(get.details()).To(HaveKeyWithValue("reset_at", "2024-01-15T10:30:03Z"))
	g.Expect(get.Header.Get("Retry-After")).To(Equal("3"))
}

// Only successful generations count against the link limit: refused requests (4xx, 429) and
// failed ones (5xx) use no slot, a generation that took effect but was answered 500 included.
func TestLinkLimitCountsOnlySuccesses(t *testing.T) {
	g := NewWithT(t)
	h := start(t, sim.Config{LinkRate: fifteenth.Rate{N: 2, Per: time.Hour}})
	created := h.do("POST", "/v1beta/accounts", `{"email": "a@example.com", "first_name": "A", "last_name": "D"}`)
	id := int64(created.Body["id"].(float64))
	linkPath := fmt.Sprintf("/v1beta/accounts/%d/login-link", id)

	for range 5 {
		g.Expect(h.do("POST", linkPath, `{"user_email": "nobody@example.com"}`).errCode()).To(Equal("USER_NOT_FOUND"))
		g.Expect(h.do("POST", linkPath, `{"expiry_hours": 500}`).errCode()).To(Equal("INVALID_EXPIRY"))
	}
	g.Expect(h.do("PUT", "/_sim/faults", `{"rate_limit_next": 3}`).Status).To(Equal(200))
	for range 3 {
		g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(429))
	}
	g.Expect(h.do("PUT", "/_sim/faults", `{"fail_rate": 1}`).Status).To(Equal(200))
	for range 3 {
		g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(500))
	}
	g.Expect(h.do("PUT", "/_sim/faults", `{"fail_after_commit_rate": 1}`).Status).To(Equal(200))
	for range 3 {
		g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(500))
	}
	var st sim.Stats
	getJSON(t, h.url+"/_sim/stats", &st)
	g.Expect(st.LinksGenerated).To(Equal(3), "the failed-after-commit generations took effect")

	g.Expect(h.do("PUT", "/_sim/faults", `{}`).Status).To(Equal(200))
	g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(200))
	g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(200))
	g.Expect(h.do("POST", linkPath, `{}`).Status).To(Equal(429), "two successes fill a window of 2")
}

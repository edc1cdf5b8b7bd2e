package fifteenth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Route names, used in errors and as metric labels (never an ID or an email).
const (
	RouteCreateAccount     = "create_account"
	RouteGenerateLoginLink = "generate_login_link"
	RouteGetAccount        = "get_account"
)

// Rate limit scopes, as RateLimitError.Scope and metric labels.
const (
	ScopeAccountCreate = "account-create"
	ScopeLoginLink     = "login-link"
)

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api.fifteenth.com"

// DefaultTimeout bounds each call.
const DefaultTimeout = 30 * time.Second

// maxBody bounds what is read of an answer.
const maxBody = 1 << 20

// API is what the controllers need of the Fifteenth API; *Client implements it.
type API interface {
	CreateAccount(ctx context.Context, req CreateAccountRequest) (*Account, error)
	GenerateLoginLink(ctx context.Context, id AccountID, req LoginLinkRequest) (*LoginLink, error)
	GetAccount(ctx context.Context, id AccountID) (*Account, error)
}

// Options configure a Client. Only BaseURL and Key are required.
type Options struct {
	// BaseURL is the API root without /v1beta, e.g. https://api.fifteenth.com. Plain http is
	// refused unless the host is loopback (the simulator).
	BaseURL string
	// Key supplies the partner API key for each call.
	Key KeySource
	// HTTPClient defaults to a client with sane transport timeouts.
	HTTPClient *http.Client
	// Timeout bounds each call (default DefaultTimeout).
	Timeout time.Duration
	// AccountCreateRate is the client-side limit on creations per key (default 100/1m). Every
	// call that may have reached the API counts, whatever its answer.
	AccountCreateRate Rate
	// LoginLinkRate is the client-side limit on links per account (default 10/1h). Like the
	// API's, it counts only successful generations: a call answered 4xx, 429 or 5xx gives its
	// slot back; a call without an answer keeps it unless it certainly never reached the API.
	LoginLinkRate Rate
	// AccountCreateLimiter, when set, replaces the client's own creation limiter (and
	// AccountCreateRate): clients that speak for one partner key share it, since the API's
	// limit is per key.
	AccountCreateLimiter *SlidingWindow
	// LoginLinkLimiter, when set, replaces the client's own link limiter (and LoginLinkRate):
	// clients of one API endpoint share it, since the API's limit is per account whatever the
	// key. Its keys are account IDs.
	LoginLinkLimiter *SlidingWindow
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ObserveRequest, when set, is called after each HTTP exchange with the route, the status
	// code (0 when no answer arrived) and the duration.
	ObserveRequest func(route string, code int, d time.Duration)
	// ObserveRateLimited, when set, is called when a call is held back by a rate limit, with
	// the scope and how long until it may be tried again.
	ObserveRateLimited func(scope string, wait time.Duration)
	// UserAgent is sent with each request.
	UserAgent string
}

// Client calls the Fifteenth Partner API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	key      KeySource
	http     *http.Client
	timeout  time.Duration
	now      func() time.Time
	creates  *SlidingWindow
	links    *SlidingWindow
	observe  func(string, int, time.Duration)
	observeL func(string, time.Duration)
	agent    string
}

var _ API = (*Client)(nil)

// New returns a client, or an error when the options are unusable.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimSuffix(o.BaseURL, "/"))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("api url %q is not an absolute URL", o.BaseURL)
	}
	switch base.Scheme {
	case "https":
	case "http":
		if !IsLoopback(base.Hostname()) {
			return nil, fmt.Errorf("api url %q: plain http is allowed only to a loopback host; use https", o.BaseURL)
		}
	default:
		return nil, fmt.Errorf("api url %q: scheme must be https", o.BaseURL)
	}
	if o.Key == nil {
		return nil, errors.New("no API key source")
	}
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		t.ResponseHeaderTimeout = 0 // the per-call context bounds the whole exchange
		o.HTTPClient = &http.Client{Transport: t}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.AccountCreateRate.N == 0 {
		o.AccountCreateRate = DefaultAccountCreateRate
	}
	if o.LoginLinkRate.N == 0 {
		o.LoginLinkRate = DefaultLoginLinkRate
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.UserAgent == "" {
		o.UserAgent = "fifteenth-operator"
	}
	creates, links := o.AccountCreateLimiter, o.LoginLinkLimiter
	if creates == nil {
		creates = NewSlidingWindow(o.AccountCreateRate, o.Now)
	}
	if links == nil {
		links = NewSlidingWindow(o.LoginLinkRate, o.Now)
	}
	return &Client{
		base: base, key: o.Key, http: o.HTTPClient, timeout: o.Timeout, now: o.Now,
		creates:  creates,
		links:    links,
		observe:  o.ObserveRequest,
		observeL: o.ObserveRateLimited,
		agent:    o.UserAgent,
	}, nil
}

// IsLoopback reports whether host (no port) is localhost or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// createKey is the limiter key for creations: the limit is per partner key, and one client
// speaks for one partner.
const createKey = "partner"

// CreationLine is an API whose creation limiter keeps a line of waiters (*Client is one): each
// waiter is told when its own slot frees up and woken when it has, so that a freed slot wakes
// one waiter, not all of them.
type CreationLine interface {
	// CreateTurn puts waiter in the line of the creation budget (or keeps its place) and
	// reports whether its turn has come. Otherwise it returns when its slot is expected to
	// free up, and calls wake (which must not block) once it has. The waiter then calls
	// CreateAccount with a context from WithWaiter.
	CreateTurn(waiter string, wake func()) (time.Time, bool)
	// LeaveLine takes waiter out of the line (deleted, or it no longer creates).
	LeaveLine(waiter string)
}

var _ CreationLine = (*Client)(nil)

type waiterKey struct{}

// WithWaiter returns a context whose CreateAccount call takes the slot of waiter in the
// creation line (CreationLine), rather than coming after every waiter.
func WithWaiter(ctx context.Context, waiter string) context.Context {
	return context.WithValue(ctx, waiterKey{}, waiter)
}

// CreateTurn implements CreationLine.
func (c *Client) CreateTurn(waiter string, wake func()) (time.Time, bool) {
	return c.creates.Turn(createKey, waiter, wake)
}

// LeaveLine implements CreationLine.
func (c *Client) LeaveLine(waiter string) { c.creates.Leave(createKey, waiter) }

// CreateAccount calls POST /v1beta/accounts. The answer holds login links: handle with care.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (*Account, error) {
	var out Account
	waiter, _ := ctx.Value(waiterKey{}).(string)
	err := c.limited(c.creates, ScopeAccountCreate, createKey, waiter, countEveryCall, func() (int, error) {
		return c.do(ctx, http.MethodPost, RouteCreateAccount, "/v1beta/accounts", req, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GenerateLoginLink calls POST /v1beta/accounts/{id}/login-link. It invalidates the user's
// earlier links, so callers must make sure only one owner generates for a user.
func (c *Client) GenerateLoginLink(ctx context.Context, id AccountID, req LoginLinkRequest) (*LoginLink, error) {
	var out LoginLink
	err := c.limited(c.links, ScopeLoginLink, id.String(), "", countSuccesses, func() (int, error) {
		return c.do(ctx, http.MethodPost, RouteGenerateLoginLink, "/v1beta/accounts/"+id.String()+"/login-link", req, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAccount calls GET /v1beta/accounts/{id} (Retrieve Account, whose shape CONTRACT.md infers).
func (c *Client) GetAccount(ctx context.Context, id AccountID) (*Account, error) {
	var out Account
	if _, err := c.do(ctx, http.MethodGet, RouteGetAccount, "/v1beta/accounts/"+id.String(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// counting says which calls count against an API limit, hence keep their limiter slot.
type counting int

const (
	// countEveryCall keeps the slot of every call, whatever its outcome. CONTRACT.md says only
	// that the API allows 100 creations per partner key per minute, not that a refused request
	// (a 409 DUPLICATE_EMAIL, a 400) goes free, so the creation limiter stays conservative: a
	// wasted slot costs at most a minute.
	countEveryCall counting = iota
	// countSuccesses keeps the slot only of a call the API may have counted: CONTRACT.md says
	// only successful link generations count, a refused (4xx, 429) or failed (5xx) one uses no
	// slot. See mayHaveSucceeded.
	countSuccesses
)

// limited runs call under limiter l for key, in the place of waiter in its line (none: "");
// call returns the status of the answer (0 when none arrived) and its error. The call's slot is kept or given back according to how, which
// mirrors how the API counts. A 429 blocks the key until its retry time.
func (c *Client) limited(l *SlidingWindow, scope, key, waiter string, how counting, call func() (int, error)) error {
	res, retryAt, ok := l.ReserveFor(key, waiter)
	if !ok {
		if c.observeL != nil {
			c.observeL(scope, retryAt.Sub(c.now()))
		}
		return &RateLimitError{Scope: scope, RetryAt: retryAt}
	}
	status, err := call()
	if how == countSuccesses && !mayHaveSucceeded(status, err) {
		res.Cancel()
	} else {
		res.Done()
	}
	if at, limited := RetryAt(err); limited {
		// at is the 429's RetryAt, never earlier than now + minRetryAfter (see retryAt): the
		// key stays blocked exactly as long as the caller is told to wait.
		l.Block(key, at)
		if c.observeL != nil {
			c.observeL(scope, at.Sub(c.now()))
		}
	}
	return err
}

// mayHaveSucceeded reports whether a call may have succeeded, and so been counted by a limit
// that counts only successes, from the status of its answer (0 when none arrived) and its error:
//   - a 2xx answer succeeded, even when its body could not be decoded;
//   - any other answer (4xx, 429, 5xx) was refused or failed: no slot, as CONTRACT.md says;
//   - a call that failed before its request could be sent (reading the key, encoding, a
//     connection that could not be made, directly or through a proxy) never reached the API;
//   - any other failure without an answer (a timeout, a connection lost mid-exchange) has an
//     unknown outcome: the API may have generated the link and answered 2xx after we gave up,
//     as the simulator's latency fault shows. It keeps its slot. CONTRACT.md's "a failed
//     request uses no slot" speaks of answered failures; for an unanswered one the limiter
//     keeps its promise never to count less than the API: counting less would earn a real 429
//     (a wasted call, then the same wait), counting more costs one slot for one window, and
//     only for calls that timed out.
func mayHaveSucceeded(status int, err error) bool {
	switch {
	case status >= 200 && status < 300:
		return true
	case status != 0:
		return false
	}
	var te *TransportError
	if !errors.As(err, &te) {
		return false // failed before any request was built or sent
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return false // no connection to the API was made
	}
	return true
}

// do makes one exchange. It returns the status of the answer, 0 when none arrived.
func (c *Client) do(ctx context.Context, method, route, path string, in, out any) (int, error) {
	key, err := c.key.APIKey()
	if err != nil {
		return 0, fmt.Errorf("%s: reading API key: %w", route, err)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("%s: encoding request: %w", route, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("%s: building request: %w", route, err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observed(route, 0, start)
		return 0, &TransportError{Route: route, Err: scrubURLError(err)}
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	c.observed(route, resp.StatusCode, start)
	if err != nil {
		return resp.StatusCode, &TransportError{Route: route, Err: fmt.Errorf("reading answer: %w", err)}
	}
	return resp.StatusCode, c.decodeAnswer(route, resp.StatusCode, resp.Header.Get("Retry-After"), raw, out)
}

// decodeAnswer turns an answer into out or an error. It is pure, so that it can be fuzzed.
func (c *Client) decodeAnswer(route string, status int, retryAfter string, raw []byte, out any) error {
	if status >= 200 && status < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			// Never quote the body: a success body holds login links.
			return &TransportError{Route: route, Err: fmt.Errorf("answer %d could not be decoded: %s", status, decodeErrorKind(err))}
		}
		return nil
	}
	return c.decodeError(route, status, retryAfter, raw)
}

func (c *Client) observed(route string, code int, start time.Time) {
	if c.observe != nil {
		c.observe(route, code, c.now().Sub(start))
	}
}

// decodeError turns an error answer into *Error, tolerating bodies that do not follow the
// documented envelope.
func (c *Client) decodeError(route string, status int, retryAfter string, raw []byte) error {
	var env struct {
		Error struct {
			Code    string                     `json:"code"`
			Message string                     `json:"message"`
			Details map[string]json.RawMessage `json:"details"`
		} `json:"error"`
	}
	e := &Error{Route: route, StatusCode: status}
	if json.Unmarshal(raw, &env) == nil {
		e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if status == http.StatusTooManyRequests {
		e.RetryAt = c.retryAt(e, retryAfter)
	}
	return e
}

// defaultRetryAfter applies to a 429 that says neither reset_at nor Retry-After.
const defaultRetryAfter = time.Minute

// minRetryAfter is the shortest wait after a 429: reset_at has second precision and may be
// truncated, or already past when it arrives, and a retry at once would meet another 429.
const minRetryAfter = time.Second

// retryAt is when a 429 may be retried: the latest of details.reset_at, now + the Retry-After
// header (seconds or HTTP date) and now + minRetryAfter, as CONTRACT.md says. A 429 that gives
// neither (or nothing readable) waits defaultRetryAfter.
func (c *Client) retryAt(e *Error, retryAfter string) time.Time {
	now := c.now()
	at, known := now.Add(minRetryAfter), false
	later := func(t time.Time) {
		known = true
		if t.After(at) {
			at = t
		}
	}
	if s := e.DetailString("reset_at"); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			later(t)
		}
	}
	if retryAfter = strings.TrimSpace(retryAfter); retryAfter != "" {
		if secs, err := strconv.Atoi(retryAfter); err == nil && secs >= 0 {
			later(now.Add(time.Duration(secs) * time.Second))
		} else if t, err := http.ParseTime(retryAfter); err == nil {
			later(t)
		}
	}
	if !known {
		return now.Add(defaultRetryAfter)
	}
	return at
}

// scrubURLError drops the URL from a *url.Error: the message keeps the operation and cause.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: timeout: %w", ue.Op, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// decodeErrorKind describes a JSON decoding failure without quoting any of the input.
func decodeErrorKind(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	default:
		return "unexpected content"
	}
}

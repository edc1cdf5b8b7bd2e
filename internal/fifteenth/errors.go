package fifteenth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Error codes of the Fifteenth API (CONTRACT.md).
const (
	CodeValidation         = "VALIDATION_ERROR"
	CodeDuplicateEmail     = "DUPLICATE_EMAIL"
	CodeRateLimitExceeded  = "RATE_LIMIT_EXCEEDED"
	CodeAccountNotFound    = "ACCOUNT_NOT_FOUND"
	CodeUserNotFound       = "USER_NOT_FOUND"
	CodeInvalidExpiry      = "INVALID_EXPIRY"
	CodeInvalidRedirectURL = "INVALID_REDIRECT_URL"
	CodeAccountSuspended   = "ACCOUNT_SUSPENDED"
	CodeUnauthorized       = "UNAUTHORIZED"
)

// Error is an error answer of the API: its HTTP status and the documented envelope
// {"error": {"code", "message", "details"}}. For a 429, RetryAt is when to try again: the
// latest of details.reset_at, now + the Retry-After header and now + 1 s (a minute when the
// answer gives neither).
type Error struct {
	// Route names the call, e.g. "POST /v1beta/accounts" (no account IDs, no secrets).
	Route      string
	StatusCode int
	Code       string
	Message    string
	Details    map[string]json.RawMessage
	RetryAt    time.Time
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.StatusCode)
	}
	msg := fmt.Sprintf("%s: %d %s", e.Route, e.StatusCode, code)
	if e.Message != "" {
		msg += ": " + truncate(e.Message, 200)
	}
	if fe := e.FieldErrors(); len(fe) > 0 {
		msg += " (" + FormatFieldErrors(fe) + ")"
	}
	return msg
}

// FieldErrors returns the field messages of a VALIDATION_ERROR, e.g. {"email": ["Invalid email format"]}.
func (e *Error) FieldErrors() map[string][]string {
	if e.Code != CodeValidation {
		return nil
	}
	out := map[string][]string{}
	for k, raw := range e.Details {
		var msgs []string
		if json.Unmarshal(raw, &msgs) == nil {
			out[k] = msgs
			continue
		}
		var one string
		if json.Unmarshal(raw, &one) == nil {
			out[k] = []string{one}
		}
	}
	return out
}

// FormatFieldErrors renders field errors in a stable order: "email: Invalid email format; last_name: ...".
func FormatFieldErrors(fe map[string][]string) string {
	keys := make([]string, 0, len(fe))
	for k := range fe {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(fe[k], ", "))
	}
	return strings.Join(parts, "; ")
}

// ExistingAccountID returns details.existing_account_id of a DUPLICATE_EMAIL error.
func (e *Error) ExistingAccountID() (AccountID, bool) {
	raw, ok := e.Details["existing_account_id"]
	if !ok {
		return 0, false
	}
	var id AccountID
	if err := json.Unmarshal(raw, &id); err != nil || id == 0 {
		return 0, false
	}
	return id, true
}

// DetailString returns a string detail (e.g. "email"), or "" when absent or not a string.
func (e *Error) DetailString(key string) string {
	var s string
	if raw, ok := e.Details[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// RateLimitError is returned without calling the API when the client-side limiter (or an
// earlier 429) says the call would exceed a limit. RetryAt is when a slot frees up.
type RateLimitError struct {
	// Scope is "account-create" or "login-link".
	Scope   string
	RetryAt time.Time
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("client-side %s rate limit reached: retry at %s", e.Scope, e.RetryAt.UTC().Format(time.RFC3339Nano))
}

// TransportError is a call that got no usable answer: a network failure, a timeout, or a
// successful status with a body that could not be decoded. The effect of the call is unknown.
type TransportError struct {
	Route string
	Err   error
}

func (e *TransportError) Error() string { return e.Route + ": " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// AsError returns the API error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// HasCode reports whether err is an API error with the given code.
func HasCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

// RetryAt reports whether err is a rate limit (a 429 from the API or the client-side limiter)
// and when the call may be tried again.
func RetryAt(err error) (time.Time, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAt, true
	}
	if e, ok := AsError(err); ok && e.StatusCode == http.StatusTooManyRequests {
		return e.RetryAt, true
	}
	return time.Time{}, false
}

// IsRateLimited reports whether err is a rate limit, from the API or from the client.
func IsRateLimited(err error) bool {
	_, ok := RetryAt(err)
	return ok
}

// IsRetryable reports whether the same call may succeed later without any change: rate
// limits, 5xx answers, 408, and transport failures (timeouts, refused connections).
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if IsRateLimited(err) {
		return true
	}
	if e, ok := AsError(err); ok {
		return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout
	}
	var te *TransportError
	return errors.As(err, &te)
}

// IsTerminal reports whether retrying the same request can never succeed: a 4xx answer other
// than 408 and 429 (validation errors, not found, duplicate, suspended, unauthorized). Some of
// these clear up when the world changes (a suspended account is reactivated, a key is rotated),
// so callers decide how long to wait; they should never retry them in a loop.
func IsTerminal(err error) bool {
	e, ok := AsError(err)
	return ok && e.StatusCode >= 400 && e.StatusCode < 500 &&
		e.StatusCode != http.StatusTooManyRequests && e.StatusCode != http.StatusRequestTimeout
}

package fifteenth

import (
	"strings"
	"testing"
	"time"
)

// FuzzDecodeAnswer feeds arbitrary answers to the client's decoding: it never panics, a
// success body is never quoted in an error (it holds login links), and every 429 says when to
// retry.
func FuzzDecodeAnswer(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"login_link":"https://app.fifteenth.com/auth/partner-login/tk_A7xM9pQ2vK8xLqR4S1E6B3F","account_id":"12345","expires_at":"2024-01-22T10:30:00Z"}`},
		{201, `{"id":12345,"login_link":"https://app.fifteenth.com/auth/partner-login/tk_A7xM9pQ2vK8xLqR4S","spouse":{"id":1}}`},
		{200, `{"login_link":"tk_secretsecretsecretsecret","expires_at":12}`},
		{409, `{"error":{"code":"DUPLICATE_EMAIL","details":{"email":"a@b.c","existing_account_id":"12"}}}`},
		{429, `{"error":{"code":"RATE_LIMIT_EXCEEDED","details":{"reset_at":"2024-01-15T10:31:00Z"}}}`},
		{429, `not json`},
		{400, `{"error":{"code":"VALIDATION_ERROR","details":{"email":["bad"],"x":"y","z":3}}}`},
	} {
		f.Add(seed.status, seed.body, "")
	}
	f.Add(429, `{}`, "7")
	now := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	c := &Client{now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 599 {
			return
		}
		for _, out := range []any{&LoginLink{}, &Account{}} {
			err := c.decodeAnswer(RouteGenerateLoginLink, status, retryAfter, []byte(body), out)
			if status >= 200 && status < 300 {
				if err != nil && strings.Contains(body, "tk_") && strings.Contains(err.Error(), "tk_") {
					t.Fatalf("a success body was quoted in an error: %v", err)
				}
				continue
			}
			if err == nil {
				t.Fatalf("status %d decoded without error", status)
			}
			apiErr, ok := AsError(err)
			if !ok || apiErr.StatusCode != status {
				t.Fatalf("status %d: %T %v", status, err, err)
			}
			_ = apiErr.Error()
			_ = apiErr.FieldErrors()
			_, _ = apiErr.ExistingAccountID()
			if status == 429 {
				if at, limited := RetryAt(err); !limited || at.IsZero() {
					t.Fatalf("a 429 without a retry time: %v", err)
				}
			}
			if IsTerminal(err) && IsRetryable(err) {
				t.Fatalf("status %d is both terminal and retryable", status)
			}
		}
	})
}

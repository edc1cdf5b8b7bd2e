package fifteenth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// The bodies below are copied verbatim from the vendor's documents in shared/api/. Each is
// served by a stub server so that the client is shown to decode exactly what was documented.

const docAccount = `{
  "id": 12345,
  "email": "[email protected]",
  "first_name": "John",
  "last_name": "Doe",
  "status": "active",
  "login_link": "https://app.fifteenth.com/auth/partner-login/tk_A7xM9pQ2vK8xLqR4S",
  "login_link_expires_at": "2024-01-22T10:30:00Z",
  "created_at": "2024-01-15T10:30:00Z"
}`

const docAccountWithSpouse = `{
  "id": 67890,
  "email": "[email protected]",
  "first_name": "John",
  "last_name": "Doe",
  "status": "active",
  "login_link": "https://app.fifteenth.com/auth/partner-login/tk_P7sT0zQ2wU4oM7yN",
  "login_link_expires_at": "2024-01-22T10:30:00Z",
  "spouse": {
    "id": 67891,
    "email": "[email protected]",
    "first_name": "Jane",
    "last_name": "Doe",
    "login_link": "https://app.fifteenth.com/auth/user-login/tk_R9uV2BS4yW6qO9AP",
    "login_link_expires_at": "2024-01-22T10:30:00Z",
    "status": "invited"
  },
  "created_at": "2024-01-15T10:30:00Z"
}`

// The documented default-settings answer carries account_id as a string.
const docLinkStringID = `{
  "login_link": "https://app.fifteenth.com/auth/partner-login/tk_A7xM9pQ2vK8xLqR4S1E6B3F",
  "user_email": "[email protected]",
  "expires_at": "2024-01-22T10:30:00Z",
  "expires_in_hours": 168,
  "purpose": "expired_link",
  "redirect_url": null,
  "notification_sent": true,
  "previous_links_invalidated": 1,
  "created_at": "2024-01-15T10:30:00Z",
  "account_id": "12345"
}`

const docLinkCustom = `{
  "login_link": "https://app.fifteenth.com/auth/partner-login/tk_M4pQ7vN9xR2mK5wL8S1E6B",
  "user_email": "[email protected]",
  "expires_at": "2024-01-17T10:30:00Z",
  "expires_in_hours": 48,
  "purpose": "support_request",
  "redirect_url": "https://yourplatform.com/tax-dashboard",
  "notification_sent": true,
  "previous_links_invalidated": 2,
  "created_at": "2024-01-15T10:30:00Z",
  "account_id": 12345
}`

func serve(t *testing.T, status int, body string) *fifteenth.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: key,
		Now: func() time.Time { return time.Date(2024, 1, 15, 10, 30, 30, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDocumentedSuccessBodies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }

	a, err := serve(t, 201, docAccount).CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.ID).To(Equal(fifteenth.AccountID(12345)))
	g.Expect(a.Status).To(Equal("active"))
	g.Expect(a.LoginLinkExpiresAt).To(Equal(ts("2024-01-22T10:30:00Z")))
	g.Expect(a.CreatedAt).To(Equal(ts("2024-01-15T10:30:00Z")))

	a, err = serve(t, 201, docAccountWithSpouse).CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.ID).To(Equal(fifteenth.AccountID(67890)))
	g.Expect(a.Spouse.ID).To(Equal(fifteenth.AccountID(67891)))
	g.Expect(a.Spouse.Status).To(Equal("invited"))
	g.Expect(a.Spouse.LoginLink).To(HaveSuffix("/auth/user-login/tk_R9uV2BS4yW6qO9AP"))

	l, err := serve(t, 200, docLinkStringID).GenerateLoginLink(ctx, 12345, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(l.AccountID).To(Equal(fifteenth.AccountID(12345)), "account_id as a string")
	g.Expect(l.RedirectURL).To(BeNil())
	g.Expect(l.PreviousLinksInvalidated).To(Equal(1))
	g.Expect(l.ExpiresInHours).To(Equal(168))
	g.Expect(l.String()).NotTo(ContainSubstring("tk_"))

	l, err = serve(t, 200, docLinkCustom).GenerateLoginLink(ctx, 12345, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(l.AccountID).To(Equal(fifteenth.AccountID(12345)), "account_id as a number")
	g.Expect(*l.RedirectURL).To(Equal("https://yourplatform.com/tax-dashboard"))
	g.Expect(l.ExpiresAt).To(Equal(ts("2024-01-17T10:30:00Z")))
}

func TestDocumentedErrorBodies(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		code       string
		check      func(g Gomega, e *fifteenth.Error)
	}{
		{"validation", `{"error":{"code":"VALIDATION_ERROR","message":"Invalid request data","details":{"email":["Invalid email format"],"tax_year":["Must be between 2020 and 2025"]}}}`,
			400, "VALIDATION_ERROR", func(g Gomega, e *fifteenth.Error) {
				g.Expect(e.FieldErrors()).To(Equal(map[string][]string{"email": {"Invalid email format"}, "tax_year": {"Must be between 2020 and 2025"}}))
			}},
		{"duplicate", `{"error":{"code":"DUPLICATE_EMAIL","message":"An account with this email already exists","details":{"email":"[email protected]","existing_account_id":12345}}}`,
			409, "DUPLICATE_EMAIL", func(g Gomega, e *fifteenth.Error) {
				id, ok := e.ExistingAccountID()
				g.Expect(ok).To(BeTrue())
				g.Expect(id).To(Equal(fifteenth.AccountID(12345)))
			}},
		{"create rate limit", `{"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Please retry after 60 seconds.","details":{"limit":100,"window_seconds":60,"reset_at":"2024-01-15T10:31:00Z"}}}`,
			429, "RATE_LIMIT_EXCEEDED", func(g Gomega, e *fifteenth.Error) {
				g.Expect(e.RetryAt).To(Equal(time.Date(2024, 1, 15, 10, 31, 0, 0, time.UTC)))
			}},
		{"account not found", `{"error":{"code":"ACCOUNT_NOT_FOUND","message":"Account not found","details":{"account_id":"12345"}}}`,
			404, "ACCOUNT_NOT_FOUND", nil},
		{"user not found", `{"error":{"code":"USER_NOT_FOUND","message":"User email not found on this account","details":{"user_email":"[email protected]","account_id":"12345"}}}`,
			404, "USER_NOT_FOUND", nil},
		{"invalid expiry", `{"error":{"code":"INVALID_EXPIRY","message":"Expiry hours must be between 1 and 168","details":{"provided_hours":200,"min_hours":1,"max_hours":168}}}`,
			400, "INVALID_EXPIRY", nil},
		{"invalid redirect", `{"error":{"code":"INVALID_REDIRECT_URL","message":"Redirect URL is not permitted for your partner account","details":{"provided_url":"https://untrusted.com/dashboard","permitted_domains":["yourplatform.com","yourapp.net"]}}}`,
			400, "INVALID_REDIRECT_URL", nil},
		{"suspended", `{"error":{"code":"ACCOUNT_SUSPENDED","message":"Cannot generate login links for suspended accounts","details":{"account_id":"12345","status":"suspended","contact_support":true}}}`,
			403, "ACCOUNT_SUSPENDED", nil},
		{"link rate limit", `{"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Too many login link generation requests","details":{"limit":10,"window_minutes":60,"reset_at":"2024-01-15T11:30:00Z"}}}`,
			429, "RATE_LIMIT_EXCEEDED", func(g Gomega, e *fifteenth.Error) {
				g.Expect(e.RetryAt).To(Equal(time.Date(2024, 1, 15, 11, 30, 0, 0, time.UTC)))
			}},
		{"not the envelope", `<html>bad gateway</html>`, 502, "", func(g Gomega, e *fifteenth.Error) {
			g.Expect(e.Message).To(Equal("Bad Gateway"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := serve(t, tt.status, tt.body).GenerateLoginLink(context.Background(), 12345, fifteenth.LoginLinkRequest{})
			e, ok := fifteenth.AsError(err)
			g.Expect(ok).To(BeTrue(), "got %v", err)
			g.Expect(e.StatusCode).To(Equal(tt.status))
			g.Expect(e.Code).To(Equal(tt.code))
			if tt.check != nil {
				tt.check(g, e)
			}
		})
	}
}

func TestAccountIDDecoding(t *testing.T) {
	for in, want := range map[string]fifteenth.AccountID{`12345`: 12345, `"12345"`: 12345, `null`: 0} {
		var id fifteenth.AccountID
		if err := json.Unmarshal([]byte(in), &id); err != nil || id != want {
			t.Errorf("decode %s = %d, %v; want %d", in, id, err, want)
		}
	}
	for _, bad := range []string{`"abc"`, `1.5`, `true`, `"tk_secret"`} {
		var id fifteenth.AccountID
		err := json.Unmarshal([]byte(bad), &id)
		if err == nil {
			t.Errorf("decode %s: want error", bad)
		} else if want := "tk_"; bad == `"tk_secret"` && contains(err.Error(), want) {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

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

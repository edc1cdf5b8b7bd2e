package metricsauth

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// apiserver answers TokenReviews and SubjectAccessReviews from two tables.
type apiserver struct {
	mu      sync.Mutex
	users   map[string]string // token -> user
	allowed map[string]bool   // user -> may GET /metrics
	fail    error
	reviews int
	sars    []authzv1.SubjectAccessReviewSpec
}

type tokenReviews struct{ s *apiserver }

func (t tokenReviews) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.reviews++
	if t.s.fail != nil {
		return nil, t.s.fail
	}
	out := tr.DeepCopy()
	if u, ok := t.s.users[tr.Spec.Token]; ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: u, Groups: []string{"system:authenticated"},
			Extra: map[string]authnv1.ExtraValue{"scope": {"metrics"}}}}
	}
	return out, nil
}

type subjectAccessReviews struct{ s *apiserver }

func (a subjectAccessReviews) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.s.sars = append(a.s.sars, sar.Spec)
	out := sar.DeepCopy()
	na := sar.Spec.NonResourceAttributes
	out.Status.Allowed = a.s.allowed[sar.Spec.User] && na != nil && na.Path == "/metrics" && na.Verb == "get"
	return out, nil
}

func setup(t *testing.T) (*apiserver, *time.Time, http.Handler, *bytes.Buffer) {
	t.Helper()
	s := &apiserver{users: map[string]string{"good": "prometheus", "other": "someone"}, allowed: map[string]bool{"prometheus": true}}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := &Authorizer{TokenReviews: tokenReviews{s}, SubjectAccessReviews: subjectAccessReviews{s}, Now: func() time.Time { return now }}
	logs := &bytes.Buffer{}
	log := funcr.New(func(prefix, args string) { logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 10})
	h, err := a.Filter(log, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) }))
	if err != nil {
		t.Fatal(err)
	}
	return s, &now, h, logs
}

func get(h http.Handler, header string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestFilterAnswers(t *testing.T) {
	s, _, h, logs := setup(t)
	for _, tc := range []struct {
		name, header string
		code         int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"not bearer", "Basic Z29vZA==", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"unknown token", "Bearer forged", http.StatusUnauthorized},
		{"user without the right", "Bearer other", http.StatusForbidden},
		{"allowed user", "Bearer good", http.StatusOK},
		{"scheme is case-insensitive", "bearer good", http.StatusOK},
	} {
		if code, body := get(h, tc.header); code != tc.code {
			t.Errorf("%s: got %d %q, want %d", tc.name, code, body, tc.code)
		}
	}
	if code, body := get(h, "Bearer good"); code != http.StatusOK || body != "metrics" {
		t.Errorf("allowed user got %d %q", code, body)
	}
	for _, sar := range s.sars {
		if sar.NonResourceAttributes == nil || sar.NonResourceAttributes.Path != "/metrics" || sar.NonResourceAttributes.Verb != "get" ||
			len(sar.Groups) != 1 || len(sar.Extra["scope"]) != 1 {
			t.Errorf("SubjectAccessReview does not carry the request and the user: %+v", sar)
		}
	}
	for _, token := range []string{"good", "other", "forged"} {
		if strings.Contains(logs.String(), token) {
			t.Errorf("a token is in the logs: %s", logs.String())
		}
	}
}

func TestFilterCaches(t *testing.T) {
	s, now, h, _ := setup(t)
	for range 5 {
		get(h, "Bearer good")
		get(h, "Bearer other")
		get(h, "Bearer forged")
	}
	if s.reviews != 3 {
		t.Fatalf("3 tokens asked 5 times each made %d TokenReviews, want 3", s.reviews)
	}
	// A revoked right and a granted one show within the cache lifetimes.
	s.allowed = map[string]bool{"someone": true}
	*now = now.Add(denyTTL + time.Second)
	if code, _ := get(h, "Bearer other"); code != http.StatusOK {
		t.Errorf("a right granted %s ago is not seen: %d", denyTTL, code)
	}
	if code, _ := get(h, "Bearer good"); code != http.StatusOK {
		t.Errorf("an allowed answer is kept for %s: %d", allowTTL, code)
	}
	*now = now.Add(allowTTL)
	if code, _ := get(h, "Bearer good"); code != http.StatusForbidden {
		t.Errorf("a right revoked %s ago is still used: %d", allowTTL, code)
	}
}

func TestFilterAPIServerDown(t *testing.T) {
	s, _, h, logs := setup(t)
	s.fail = errors.New("connection refused")
	if code, _ := get(h, "Bearer good"); code != http.StatusInternalServerError {
		t.Errorf("got %d while the kube-apiserver is down, want 500", code)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the failure is not logged: %q", logs.String())
	}
	s.fail = nil
	if code, _ := get(h, "Bearer good"); code != http.StatusOK {
		t.Errorf("a failure was cached: %d", code)
	}
}

package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObservers(t *testing.T) {
	ObserveRequest("generate_login_link", 429, 20*time.Millisecond)
	ObserveRequest("generate_login_link", 429, 20*time.Millisecond)
	ObserveRequest("create_account", 0, time.Second)
	if got := testutil.ToFloat64(APIRequests.WithLabelValues(DefaultConfig, "generate_login_link", "429")); got != 2 {
		t.Fatalf("requests{generate_login_link,429} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(APIRequests.WithLabelValues(DefaultConfig, "create_account", "0")); got != 1 {
		t.Fatalf("requests{create_account,0} = %v, want 1", got)
	}
	ObserveRateLimited("login-link", 90*time.Second)
	ObserveRateLimited("login-link", -time.Second) // a reset already passed adds no wait
	if got := testutil.ToFloat64(RateLimitWait.WithLabelValues(DefaultConfig, "login-link")); got != 90 {
		t.Fatalf("wait = %v, want 90", got)
	}
	if got := testutil.ToFloat64(RateLimited.WithLabelValues(DefaultConfig, "login-link")); got != 2 {
		t.Fatalf("rate limited = %v, want 2", got)
	}

	SetLoginLink("ns", "a", true, time.Unix(1000, 0), time.Time{})
	if got := testutil.ToFloat64(LinkExpiration.WithLabelValues("ns", "a")); got != 1000 {
		t.Fatalf("expiration = %v", got)
	}
	if n := testutil.CollectAndCount(LinkRenewal); n != 0 {
		t.Fatalf("a zero renewal time must not be exported, found %d series", n)
	}
	SetLoginLinkSuperseded("ns", "a", true)
	if got := testutil.ToFloat64(LinkSuperseded.WithLabelValues("ns", "a")); got != 1 {
		t.Fatalf("superseded = %v, want 1", got)
	}
	SetLoginLinkSuperseded("ns", "a", false)
	if got := testutil.ToFloat64(LinkSuperseded.WithLabelValues("ns", "a")); got != 0 {
		t.Fatalf("superseded = %v, want 0", got)
	}
	DeleteLoginLink("ns", "a")
	if n := testutil.CollectAndCount(LinkReady); n != 0 {
		t.Fatalf("deleted LoginLink still exported: %d series", n)
	}
	if n := testutil.CollectAndCount(LinkSuperseded); n != 0 {
		t.Fatalf("deleted LoginLink still exported as superseded: %d series", n)
	}
}

package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
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
}

func TestObjectsAreComputedAtScrape(t *testing.T) {
	count := func(name string) int { return testutil.CollectAndCount(Objects, name) }
	remove := AddObjectSource(StaticObjects{
		Links: []LinkState{{Namespace: "ns", Name: "a", Ready: true, Expires: time.Unix(1000, 0)},
			{Namespace: "ns", Name: "b", Superseded: true, Expires: time.Unix(2000, 0), Renews: time.Unix(1500, 0)}},
		Accounts: []AccountState{{Namespace: "ns", Name: "p", Ready: true}},
	})
	// A second source seeing the same objects (two managers in one process) adds nothing.
	removeTwin := AddObjectSource(StaticObjects{Links: []LinkState{{Namespace: "ns", Name: "a"}}})
	for name, want := range map[string]int{
		"fifteenth_login_link_ready": 2, "fifteenth_login_link_superseded": 2,
		"fifteenth_login_link_expiration_timestamp_seconds": 2,
		"fifteenth_login_link_renewal_timestamp_seconds":    1, // a zero renewal time is not exported
		"fifteenth_partner_account_ready":                   1,
	} {
		if got := count(name); got != want {
			t.Errorf("%s: %d series, want %d", name, got, want)
		}
	}
	want := `
# HELP fifteenth_login_link_ready 1 when the LoginLink is Ready, else 0.
# TYPE fifteenth_login_link_ready gauge
fifteenth_login_link_ready{name="a",namespace="ns"} 1
fifteenth_login_link_ready{name="b",namespace="ns"} 0
# HELP fifteenth_login_link_superseded 1 when a newer LoginLink holds this LoginLink's user (Ready=False, reason Superseded), else 0.
# TYPE fifteenth_login_link_superseded gauge
fifteenth_login_link_superseded{name="a",namespace="ns"} 0
fifteenth_login_link_superseded{name="b",namespace="ns"} 1
`
	if err := testutil.CollectAndCompare(Objects, strings.NewReader(want), "fifteenth_login_link_ready", "fifteenth_login_link_superseded"); err != nil {
		t.Error(err)
	}
	remove()
	removeTwin()
	if n := testutil.CollectAndCount(Objects); n != 0 {
		t.Fatalf("removed sources still exported: %d series", n)
	}
}

// A scrape at 10,000 accounts collects 110,000 per-object series while the cache is at its
// largest: an object's series share their label pairs, so that each costs little more than
// the registry's own copy. MustNewConstMetric made two pairs and their strings per series.
func TestObjectSeriesShareTheirLabels(t *testing.T) {
	links := make([]LinkState, 100)
	for i := range links {
		links[i] = LinkState{Namespace: "ns", Name: fmt.Sprint("l", i), Ready: true, Expires: time.Unix(1000, 0), Renews: time.Unix(900, 0)}
	}
	remove := AddObjectSource(StaticObjects{Links: links})
	defer remove()
	collect := func() {
		ch := make(chan prometheus.Metric, 4*len(links))
		Objects.Collect(ch)
		close(ch)
		n := 0
		for range ch {
			n++
		}
		if n != 4*len(links) {
			t.Fatalf("%d series, want %d", n, 4*len(links))
		}
	}
	perLink := testing.AllocsPerRun(20, collect) / float64(len(links))
	t.Logf("allocations per LoginLink (4 series): %.1f", perLink)
	// Per LoginLink: its labels (a slice and its name's pair), its four series, and the
	// collector's bookkeeping (the map of objects seen). MustNewConstMetric made 25.
	if perLink > 10 {
		t.Fatalf("%.1f allocations per LoginLink, want at most 10", perLink)
	}
	var m dto.Metric
	first := objectMetric{LinkReady, []*dto.LabelPair{{Name: &labelName, Value: ptrTo("a")}}, 1}
	if err := first.Write(&m); err != nil || m.GetGauge().GetValue() != 1 || m.Label[0].GetValue() != "a" {
		t.Fatalf("Write: %v, %v", &m, err)
	}
}

func ptrTo(s string) *string { return &s }

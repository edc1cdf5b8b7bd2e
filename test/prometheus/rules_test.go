// Package prometheus checks config/prometheus against the metrics the manager exports.
package prometheus

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	im "github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

type rules struct {
	Spec struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
				For   string `json:"for"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

var metricName = regexp.MustCompile(`\bfifteenth_[a-z_]+\b`)

func loadRules(t *testing.T) rules {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Every alert has a duration and refers only to metrics the manager registers.
func TestAlertsReferToExportedMetrics(t *testing.T) {
	r := loadRules(t)
	// Touch every vector so that Gather lists it.
	defer im.AddObjectSource(im.StaticObjects{
		Links:    []im.LinkState{{Namespace: "ns", Name: "n", Ready: true, Expires: time.Unix(1, 0), Renews: time.Unix(1, 0)}},
		Accounts: []im.AccountState{{Namespace: "ns", Name: "n", Ready: true}},
	})()
	im.ObserveRequest("create_account", 201, 0)
	im.ObserveRateLimited("login-link", 0)
	families, err := im.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	alerts := 0
	for _, g := range r.Spec.Groups {
		for _, rule := range g.Rules {
			alerts++
			if rule.For == "" {
				t.Errorf("alert %s has no 'for'", rule.Alert)
			}
			names := metricName.FindAllString(rule.Expr, -1)
			if len(names) == 0 {
				t.Errorf("alert %s refers to no operator metric", rule.Alert)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("alert %s refers to %s, which the manager does not export", rule.Alert, n)
				}
			}
		}
	}
	if alerts < 5 {
		t.Fatalf("found %d alerts", alerts)
	}
}

// The LoginLink alerts fire for a broken LoginLink and stay silent for a superseded one, whose
// Ready=False is expected (a newer LoginLink holds its user). The expressions are evaluated
// at one instant over the series the metrics package exports; "fires" means the expression
// returns the series (Prometheus then waits for the rule's 'for').
func TestLoginLinkAlertsLeaveSupersededOut(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const ns = "alerts-test"
	// broken and superseded are alike but for the superseded gauge: not Ready, the link
	// expires within the hour, and the renewal time passed an hour ago.
	defer im.AddObjectSource(im.StaticObjects{Links: []im.LinkState{
		{Namespace: ns, Name: "broken", Expires: now.Add(time.Hour), Renews: now.Add(-time.Hour)},
		{Namespace: ns, Name: "superseded", Superseded: true, Expires: now.Add(time.Hour), Renews: now.Add(-time.Hour)},
		{Namespace: ns, Name: "healthy", Ready: true, Expires: now.Add(48 * time.Hour), Renews: now.Add(24 * time.Hour)},
	}})()
	families, err := im.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	data := series(families)
	// unlabelled has no superseded series at all (a manager that does not export it yet).
	for name, v := range map[string]float64{"fifteenth_login_link_ready": 0,
		"fifteenth_login_link_expiration_timestamp_seconds": float64(now.Add(time.Hour).Unix()),
		"fifteenth_login_link_renewal_timestamp_seconds":    float64(now.Add(-time.Hour).Unix())} {
		data = append(data, sample{labels: map[string]string{"__name__": name, "namespace": ns, "name": "unlabelled"}, value: v})
	}

	want := map[string][]string{
		"FifteenthLoginLinkNotReady":          {"broken", "unlabelled"},
		"FifteenthLoginLinkExpiringUnrenewed": {"broken", "unlabelled"},
	}
	found := 0
	for _, g := range loadRules(t).Spec.Groups {
		for _, rule := range g.Rules {
			w, ok := want[rule.Alert]
			if !ok {
				continue
			}
			found++
			v, err := evalInstant(rule.Expr, float64(now.Unix()), data)
			if err != nil {
				t.Fatalf("alert %s: %v", rule.Alert, err)
			}
			if v.isScalar {
				t.Fatalf("alert %s evaluates to a scalar", rule.Alert)
			}
			var firing []string
			for _, s := range v.vector {
				if s.labels["namespace"] == ns {
					firing = append(firing, s.labels["name"])
				}
			}
			sort.Strings(firing)
			if !slices.Equal(firing, w) {
				t.Errorf("alert %s fires for %v, want %v", rule.Alert, firing, w)
			}
		}
	}
	if found != len(want) {
		t.Fatalf("found %d of the %d LoginLink alerts", found, len(want))
	}
}

// The evaluator follows PromQL on the constructs the alerts use.
func TestEvaluator(t *testing.T) {
	data := []sample{
		{labels: map[string]string{"__name__": "a", "namespace": "n", "name": "x", "extra": "1"}, value: 0},
		{labels: map[string]string{"__name__": "a", "namespace": "n", "name": "y"}, value: 5},
		{labels: map[string]string{"__name__": "b", "namespace": "n", "name": "x"}, value: 1},
	}
	for _, tt := range []struct {
		expr string
		want []string // names of the resulting series
	}{
		{`a == 0`, []string{"x"}},
		{`5 <= a`, []string{"y"}},
		{`time() - a > 99`, []string{"x"}},                      // 100-0, 100-5
		{`a * 2 + 1 > 10 - 2 * 3`, []string{"y"}},               // precedence: 11 > 4, 1 > 4
		{`a unless on (namespace, name) b == 1`, []string{"y"}}, // unless binds loosest
		{`a unless b`, []string{"x", "y"}},                      // without on(): "extra" differs
		{`a and on(name) b`, []string{"x"}},
		{`a{name="y"} or on(name) b`, []string{"x", "y"}},
		{`a{name=~"x|z"}`, []string{"x"}},
		{`(a == 0) unless on(name) (b == 2)`, []string{"x"}},
	} {
		v, err := evalInstant(tt.expr, 100, data)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		var got []string
		for _, s := range v.vector {
			got = append(got, s.labels["name"])
		}
		sort.Strings(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.expr, got, tt.want)
		}
	}
	for _, expr := range []string{`rate(a[5m])`, `sum(a)`, `a == bool 0`, `a + b`, `1 < 2`} {
		if _, err := evalInstant(expr, 100, data); err == nil {
			t.Errorf("%s: unsupported, yet evaluated", expr)
		}
	}
}

// Package prometheus checks config/prometheus against the metrics the manager exports.
package prometheus

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
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

// Every alert has a duration and refers only to metrics the manager registers.
func TestAlertsReferToExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Touch every vector so that Gather lists it.
	im.SetLoginLink("ns", "n", true, time.Unix(1, 0), time.Unix(1, 0))
	im.AccountReady.WithLabelValues("ns", "n").Set(1)
	im.ObserveRequest("create_account", 201, 0)
	im.ObserveRateLimited("login-link", 0)
	families, err := metrics.Registry.Gather()
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

package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// exposeObjects are objects whose names and namespaces need escaping, each passed once.
func exposeObjects() StaticObjects {
	var s StaticObjects
	for i := 0; i < 40; i++ {
		ns := []string{"a", "b", "", "ns-\"q\"\\x\ny", "é"}[i%5]
		s.Links = append(s.Links, LinkState{Namespace: ns, Name: fmt.Sprint("l", i), Ready: i%2 == 0,
			Superseded: i%3 == 0, Expires: time.Unix(int64(1_800_000_000+i), 0), Renews: time.Unix(int64(i%4*900), 0)})
		if i%3 == 0 {
			s.Accounts = append(s.Accounts, AccountState{Namespace: ns, Name: fmt.Sprint("p", i), Ready: i%2 == 1})
		}
	}
	return s
}

// serve scrapes Handler wrapped around a registry's handler, with the given request headers.
func serve(reg *prometheus.Registry, path string, header map[string]string) *httptest.ResponseRecorder {
	return review3Serve(Handler(promhttp.HandlerFor(reg, innerOpts)), http.MethodGet, path, header)
}

// failingRegistry is a registry whose Gather fails.
func failingRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("broken", "Broken.", nil, nil), fmt.Errorf("boom"))
	}))
	return reg
}

// canonical parses a text exposition and writes it back with families and series sorted, so
// that two expositions of the same series compare equal.
func canonical(t *testing.T, text []byte) string {
	t.Helper()
	fams, err := parseText(model.UTF8Validation, bytes.NewReader(text))
	if err != nil {
		t.Fatalf("not the text format: %v\n%s", err, text)
	}
	return canonicalFamilies(t, fams)
}

func canonicalFamilies(t *testing.T, fams map[string]*dto.MetricFamily) string {
	t.Helper()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		f := fams[n]
		slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(a.String(), b.String()) })
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// A scrape through Handler serves the same series, help and types as a registry holding the
// registry's metrics and the per-object collector (MustNewConstMetric per series, as before),
// whatever format the scraper asks for: Handler always answers text, which each accepts.
func TestHandlerServesWhatARegistryWould(t *testing.T) {
	src := exposeObjects()
	twin := StaticObjects{Links: src.Links[:5], Accounts: src.Accounts[:2]} // a second manager's view
	remove, removeTwin := AddObjectSource(src), AddObjectSource(twin)
	defer removeTwin()
	defer remove()

	reg := prometheus.NewPedanticRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests."}, []string{"code"})
	requests.WithLabelValues("200").Add(3)
	reg.MustRegister(requests)
	want := prometheus.NewPedanticRegistry()
	want.MustRegister(requests, constCollector{src})
	wantFams, err := want.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range wantFams {
		byName[f.GetName()] = f
	}
	wantText := canonicalFamilies(t, byName)
	for _, accept := range []string{"", "text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
		w := serve(reg, "/metrics", map[string]string{"Accept": accept})
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("Accept %q: %d %q", accept, w.Code, w.Header().Get("Content-Type"))
		}
		if got := canonical(t, w.Body.Bytes()); got != wantText {
			t.Errorf("Accept %q: series differ:\n%s\n---- want\n%s", accept, got, wantText)
		}
	}
	// Gatherer (what tests read) has the same per-object series.
	all, err := prometheus.Gatherers{reg, objects}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName = map[string]*dto.MetricFamily{}
	for _, f := range all {
		byName[f.GetName()] = f
	}
	if got := canonicalFamilies(t, byName); got != wantText {
		t.Errorf("Gather: series differ:\n%s\n---- want\n%s", got, wantText)
	}
}

func TestHandlerGzipsWhenAsked(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	reg := prometheus.NewRegistry()
	plain := serve(reg, "/metrics", nil)
	if plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding %q without Accept-Encoding", plain.Header().Get("Content-Encoding"))
	}
	for _, ae := range []string{"gzip", "deflate, gzip;q=0.9", "GZIP"} {
		w := serve(reg, "/metrics", map[string]string{"Accept-Encoding": ae})
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, w.Header().Get("Content-Encoding"))
		}
		if !bytes.Equal(gunzip(t, w.Body.Bytes()), plain.Body.Bytes()) {
			t.Fatalf("Accept-Encoding %q: gunzipped body differs", ae)
		}
	}
	if w := serve(reg, "/metrics", map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 refuses gzip")
	}
}

// A registry that fails answers as promhttp does, with no per-object series; another path is
// the inner handler's alone.
func TestHandlerPassesFailuresAndOtherPathsThrough(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	w := serve(failingRegistry(), "/metrics", nil)
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "fifteenth_") {
		t.Fatalf("failing registry: %d\n%s", w.Code, w.Body)
	}
	w = serve(prometheus.NewRegistry(), "/other", nil)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "fifteenth_") {
		t.Fatalf("/other: %d\n%s", w.Code, w.Body)
	}
}

// A family no object has is left out, as a registry leaves it out.
func TestHandlerLeavesEmptyFamiliesOut(t *testing.T) {
	defer AddObjectSource(StaticObjects{Links: []LinkState{{Namespace: "ns", Name: "a"}}})()
	body := serve(prometheus.NewRegistry(), "/metrics", nil).Body.String()
	for _, absent := range []string{"fifteenth_login_link_expiration_timestamp_seconds", "fifteenth_partner_account_ready"} {
		if strings.Contains(body, absent) {
			t.Errorf("%s exported without series:\n%s", absent, body)
		}
	}
	if !strings.Contains(body, `fifteenth_login_link_ready{name="a",namespace="ns"} 0`) {
		t.Errorf("no ready series:\n%s", body)
	}
}

// A scrape keeps under 100 bytes per object and writes each series as a line: at 10,000
// accounts (110,000 series), the registry kept a message per series until the last was
// encoded, about 30 MiB at the moment the cache is largest. WriteText allocates a few times
// per scrape (its two slices, sized from the last scrape), not per object.
func TestWriteTextAllocatesNothingPerObject(t *testing.T) {
	links := make([]LinkState, 1000)
	for i := range links {
		links[i] = LinkState{Namespace: "ns", Name: fmt.Sprint("l", i), Ready: true,
			Expires: time.Unix(1_800_000_000, 0), Renews: time.Unix(1_799_000_000, 0)}
	}
	defer AddObjectSource(StaticObjects{Links: links})()
	bw := bufio.NewWriterSize(io.Discard, 32<<10)
	perLink := testing.AllocsPerRun(10, func() {
		if err := Objects.WriteText(bw, nil); err != nil {
			t.Fatal(err)
		}
	}) / float64(len(links))
	t.Logf("allocations per LoginLink (4 series): %.3f", perLink)
	if perLink > 0.05 {
		t.Fatalf("%.3f allocations per LoginLink, want a few per scrape", perLink)
	}
}

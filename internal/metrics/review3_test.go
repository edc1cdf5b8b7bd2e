package metrics

// Review of 8293b47/5c021d6 (metrics.Handler). The tests marked "Found by review, fixed"
// failed on the reviewed code; the others document what was checked and held.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const prom3Accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6," +
	"application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5," +
	"text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

// innerOpts are controller-runtime's metrics server's promhttp options.
var innerOpts = promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}

func review3Registry() *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests."}, []string{"code"})
	c.WithLabelValues("200").Add(3)
	reg.MustRegister(c)
	return reg
}

func review3Serve(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip stream: %v", err)
	}
	return out
}

// A Prometheus 3 scrape (its Accept, Accept-Encoding: gzip) gets text 0.0.4, valid gzip, the
// same series as a registry holding the per-object collector.
func TestReview3Prometheus3Scrape(t *testing.T) {
	src := exposeObjects()
	defer AddObjectSource(src)()
	reg := review3Registry()
	w := review3Serve(Handler(promhttp.HandlerFor(reg, innerOpts)), http.MethodGet, "/metrics",
		map[string]string{"Accept": prom3Accept, "Accept-Encoding": "gzip", "X-Prometheus-Scrape-Timeout-Seconds": "10"})
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	ct := w.Header().Get("Content-Type")
	if got := expfmt.ResponseFormat(w.Header()); got.FormatType() != expfmt.TypeTextPlain || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q (%v)", ct, got)
	}
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", w.Header().Get("Content-Encoding"))
	}
	body := gunzip(t, w.Body.Bytes())
	want := prometheus.NewPedanticRegistry()
	want.MustRegister(constCollector{src})
	fams, err := prometheus.Gatherers{reg, want}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got, want := canonical(t, body), canonicalFamilies(t, byName); got != want {
		t.Fatalf("series differ:\n%s\n--- want\n%s", got, want)
	}
	// And the legacy-validation parser (what Prometheus 2 / e2e use) too.
	if _, err := parseText(model.LegacyValidation, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	t.Logf("Content-Type %q, Vary %q", ct, w.Header().Values("Vary"))
}

// The values written for timestamps are those of expfmt's encoder, for every magnitude.
func TestReview3FloatFormatting(t *testing.T) {
	vals := []float64{0, 1, -1, 2, 0.5, 1e-9, 123456789, 1_700_000_000, 1_800_000_001, 4_102_444_800, 32_503_680_000,
		253_402_300_799, -62_135_596_800, 1 << 53, 1<<53 + 2, 9.223372036854776e18, -1_000_000_000, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for i := 0; i < 2000; i++ {
		vals = append(vals, float64(int64(i)*7919*1_000_003))
	}
	for _, v := range vals {
		name, help := "x", "h"
		var buf bytes.Buffer
		_, _ = expfmt.MetricFamilyToText(&buf, &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}})
		want := strings.TrimSuffix(strings.SplitN(buf.String(), "\nx ", 2)[1], "\n")
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("%v: %q, expfmt %q", v, got, want)
		}
	}
}

// Label values needing escaping (backslash, quote, newline, UTF-8) and HELP text: as a
// registry writes them, byte for byte (one series per family so that the order is fixed).
func TestReview3EscapingByteForByte(t *testing.T) {
	for _, s := range []string{`a\b`, `q"q`, "n\nl", "é😀", `\\"` + "\n\\n", "\t", "a b", "\r"} {
		src := StaticObjects{Links: []LinkState{{Namespace: s, Name: s + "x", Ready: true, Expires: time.Unix(1_800_000_000, 0)}},
			Accounts: []AccountState{{Namespace: s, Name: s}}}
		remove := AddObjectSource(src)
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		if err := Objects.WriteText(bw, nil); err != nil {
			t.Fatal(err)
		}
		_ = bw.Flush()
		remove()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(constCollector{src})
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		for _, f := range fams {
			if _, err := expfmt.MetricFamilyToText(&want, f); err != nil {
				t.Fatal(err)
			}
		}
		if got.String() != want.String() {
			t.Errorf("%q:\n%s\n--- registry\n%s", s, got.String(), want.String())
		}
	}
}

// promhttp's choice of encoding for an Accept-Encoding, and Handler's.
func encodings(t *testing.T, ae string) (promhttpEnc, handlerEnc string) {
	t.Helper()
	reg := review3Registry()
	p := review3Serve(promhttp.HandlerFor(reg, innerOpts), http.MethodGet, "/metrics", map[string]string{"Accept-Encoding": ae})
	h := review3Serve(Handler(promhttp.HandlerFor(reg, innerOpts)), http.MethodGet, "/metrics", map[string]string{"Accept-Encoding": ae})
	if enc := h.Header().Get("Content-Encoding"); enc == "gzip" {
		gunzip(t, h.Body.Bytes())
	} else if enc != "" {
		t.Fatalf("%q: Content-Encoding %q", ae, enc)
	} else if _, err := parseText(model.UTF8Validation, bytes.NewReader(h.Body.Bytes())); err != nil {
		t.Fatalf("%q: identity body not text: %v", ae, err)
	}
	return p.Header().Get("Content-Encoding"), h.Header().Get("Content-Encoding")
}

// Accept-Encoding values where Handler's choice is acceptable to the client.
func TestReview3AcceptEncoding(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	for _, c := range []struct{ ae, want string }{
		{"gzip", "gzip"}, {"gzip;q=0, *", ""}, {"identity", ""}, {"x-gzip", ""}, {"*", ""}, {"", ""},
		{"br, gzip;q=0.5", "gzip"}, {"gzip; q=0", ""}, {"zstd", ""}, {"gzip;q=0.001", "gzip"},
	} {
		p, h := encodings(t, c.ae)
		t.Logf("Accept-Encoding %-16q promhttp %-6q Handler %q", c.ae, p, h)
		if h != c.want {
			t.Errorf("Accept-Encoding %q: Handler %q, want %q", c.ae, h, c.want)
		}
	}
}

// Found by review, fixed: RFC 9110 12.4.2/12.5.3: q=0, q=0.0, q=0.000 all mean "not acceptable", and
// parameter names are case-insensitive. Handler gzips for these although the client refused
// gzip (promhttp, before the change, did not).
func TestReview3GzipRefusedWithQZeroSpelledDifferently(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	for _, ae := range []string{"gzip;q=0.0", "gzip;q=0.000", "gzip;Q=0", "identity, gzip;q=0.00"} {
		p, h := encodings(t, ae)
		if h == "gzip" {
			t.Errorf("Accept-Encoding %q: Handler answers gzip (promhttp: %q)", ae, p)
		}
	}
}

// Found by review, fixed: promhttp (client_golang 1.24) serves only the families named by name[] query
// parameters; Handler adds every per-object family to whatever the filter kept, so
// /metrics?name[]=test_requests_total answers all per-object series (110,000 at 10,000
// accounts), and ?name[]=fifteenth_login_link_ready answers all five per-object families.
// Before the change the registry served them, filtered.
func TestReview3NameFilterIgnored(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	reg := review3Registry()
	h := Handler(promhttp.HandlerFor(reg, innerOpts))
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"name[]=test_requests_total", []string{"test_requests_total"}},
		{"name[]=fifteenth_login_link_ready", []string{"fifteenth_login_link_ready"}},
		{"name[]=fifteenth_partner_account_ready&name[]=test_requests_total", []string{"fifteenth_partner_account_ready", "test_requests_total"}},
	} {
		w := review3Serve(h, http.MethodGet, "/metrics?"+c.query, nil)
		fams, err := parseText(model.UTF8Validation, bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for n := range fams {
			got = append(got, n)
		}
		if len(got) != len(c.want) {
			t.Errorf("?%s: families %v, want %v", c.query, got, c.want)
		}
	}
}

// Found by review, fixed: before the change Objects was registered in controller-runtime's registry, so a
// collector exporting one of the per-object family names could not be registered there.
// Now nothing stops it, and /metrics then writes the family twice: the exposition is
// invalid (expfmt: "second TYPE line"; Prometheus: duplicate series / scrape failure).
func TestReview3DuplicateFamilyNotPrevented(t *testing.T) {
	defer AddObjectSource(StaticObjects{Accounts: []AccountState{{Namespace: "ns", Name: "p", Ready: true}}})()
	dup := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fifteenth_partner_account_ready", Help: helpAccountReady}, []string{"namespace", "name"})
	dup.WithLabelValues("other", "q").Set(1)
	err := ctrlmetrics.Registry.Register(dup)
	if err == nil {
		defer ctrlmetrics.Registry.Unregister(dup)
		t.Errorf("controller-runtime's registry accepts a collector named like a per-object family")
	}
	w := review3Serve(Handler(promhttp.HandlerFor(ctrlmetrics.Registry, innerOpts)), http.MethodGet, "/metrics", nil)
	if _, perr := parseText(model.UTF8Validation, bytes.NewReader(w.Body.Bytes())); perr != nil {
		t.Errorf("/metrics is not a valid exposition: %v", perr)
	}
	// Gatherer (the tests' view) merges the two silently, so no test reading it notices.
	if _, gerr := Gatherer.Gather(); gerr != nil {
		t.Logf("Gatherer: %v", gerr)
	} else if err == nil {
		t.Logf("Gatherer.Gather() reports no error for the duplicate family")
	}
}

// A failing inner handler: status, headers and body passed on, no gzip header, no series,
// whatever the client accepts.
func TestReview3InnerFailure(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	for _, h := range []http.Handler{promhttp.HandlerFor(failingRegistry(), innerOpts),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", http.StatusServiceUnavailable) })} {
		w := review3Serve(Handler(h), http.MethodGet, "/metrics", map[string]string{"Accept": prom3Accept, "Accept-Encoding": "gzip"})
		if w.Code < 500 || w.Header().Get("Content-Encoding") != "" || strings.Contains(w.Body.String(), "fifteenth_") ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; charset=utf-8") {
			t.Errorf("%d %v\n%s", w.Code, w.Header(), w.Body)
		}
	}
}

// HEAD: 200 with the text Content-Type, as promhttp answers it.
func TestReview3Head(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	srv := httptest.NewServer(Handler(promhttp.HandlerFor(review3Registry(), innerOpts)))
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}

// errSource passes some objects, then fails (as a List of a later bucket may).
type errSource struct{ n int }

func (s errSource) EachObject(link func(LinkState), _ func(AccountState)) error {
	for i := 0; i < s.n; i++ {
		link(LinkState{Namespace: "err", Name: fmt.Sprint("l", i), Ready: true})
	}
	return errors.New("list failed")
}

// A source that fails part-way: the scrape still answers 200 and valid text, with the
// series passed before the error (as Collect did before the change: no regression).
func TestReview3SourceError(t *testing.T) {
	defer AddObjectSource(errSource{3})()
	w := review3Serve(Handler(promhttp.HandlerFor(review3Registry(), innerOpts)), http.MethodGet, "/metrics", nil)
	fams, err := parseText(model.UTF8Validation, bytes.NewReader(w.Body.Bytes()))
	if w.Code != 200 || err != nil {
		t.Fatalf("%d %v", w.Code, err)
	}
	t.Logf("series of the failing source still exported: %d (a partial view, not an error)", len(fams["fifteenth_login_link_ready"].GetMetric()))
}

// manyLinks is a source large enough that a scrape is several MB.
func manyLinks(n int) StaticObjects {
	s := StaticObjects{Links: make([]LinkState, n)}
	for i := range s.Links {
		s.Links[i] = LinkState{Namespace: "namespace-with-a-long-name", Name: fmt.Sprint("loginlink-with-a-long-name-", i), Ready: true,
			Expires: time.Unix(1_800_000_000, 0), Renews: time.Unix(1_799_000_000, 0)}
	}
	return s
}

// A scraper that goes away mid-stream: the handler returns (it does not block or spin), and
// no goroutine is left behind.
func TestReview3ClientDisconnect(t *testing.T) {
	defer AddObjectSource(manyLinks(100_000))()
	done := make(chan struct{}, 16)
	h := Handler(promhttp.HandlerFor(review3Registry(), innerOpts))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	before := runtime.NumGoroutine()
	for _, ae := range []string{"", "gzip"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
		req.Header.Set("Accept-Encoding", ae)
		if ae == "" {
			req.Header.Set("Accept-Encoding", "identity")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadFull(resp.Body, make([]byte, 4096))
		cancel()
		resp.Body.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("Accept-Encoding %q: handler still running 20s after the client left", ae)
		}
	}
	srv.CloseClientConnections()
	time.Sleep(200 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines %d -> %d", before, after)
	}
}

// Concurrent scrapes (run with -race) while sources come and go: each answer is valid and
// complete for the sources it saw.
func TestReview3ConcurrentScrapes(t *testing.T) {
	defer AddObjectSource(exposeObjects())()
	h := Handler(promhttp.HandlerFor(review3Registry(), innerOpts))
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		for {
			select {
			case <-stop:
				return
			default:
				AddObjectSource(manyLinks(50))()
			}
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				ae := []string{"", "gzip"}[(i+j)%2]
				w := review3Serve(h, http.MethodGet, "/metrics", map[string]string{"Accept-Encoding": ae})
				body := w.Body.Bytes()
				if ae == "gzip" {
					body = gunzip(t, body)
				}
				if _, err := parseText(model.UTF8Validation, bytes.NewReader(body)); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	churn.Wait()
}

func parseText(v model.ValidationScheme, r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(v)
	return p.TextToMetricFamilies(r)
}

package metrics

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// constCollector is the pre-3928c37 Collect: MustNewConstMetric per series.
type constCollector struct{ src StaticObjects }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { Objects.Describe(ch) }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, ns, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ns, name)
	}
	seen := map[string]bool{}
	_ = c.src.EachObject(func(l LinkState) {
		if k := "ll/" + l.Namespace + "/" + l.Name; !seen[k] {
			seen[k] = true
			g(LinkReady, boolValue(l.Ready), l.Namespace, l.Name)
			g(LinkSuperseded, boolValue(l.Superseded), l.Namespace, l.Name)
			if !l.Expires.IsZero() {
				g(LinkExpiration, float64(l.Expires.Unix()), l.Namespace, l.Name)
			}
			if !l.Renews.IsZero() {
				g(LinkRenewal, float64(l.Renews.Unix()), l.Namespace, l.Name)
			}
		}
	}, func(a AccountState) {
		if k := "pa/" + a.Namespace + "/" + a.Name; !seen[k] {
			seen[k] = true
			g(AccountReady, boolValue(a.Ready), a.Namespace, a.Name)
		}
	})
}

func reviewObjects() StaticObjects {
	var s StaticObjects
	for i := 0; i < 50; i++ {
		ns := []string{"a", "b", "", "ns-\"q\"\\x", "é"}[i%5]
		s.Links = append(s.Links, LinkState{Namespace: ns, Name: fmt.Sprint("l", i%30), Ready: i%2 == 0,
			Superseded: i%3 == 0, Expires: time.Unix(int64(1000+i), 0), Renews: time.Unix(int64(i%4*900), 0)})
		s.Accounts = append(s.Accounts, AccountState{Namespace: ns, Name: fmt.Sprint("l", i%20), Ready: i%2 == 1})
	}
	return s
}

func scrape(t *testing.T, g prometheus.Gatherer, accept string) []byte {
	t.Helper()
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError, EnableOpenMetrics: true})
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", accept, w.Code, w.Body)
	}
	return w.Body.Bytes()
}

func TestReviewObjectMetricOutputEqualsConstMetric(t *testing.T) {
	src := reviewObjects()
	remove := AddObjectSource(src)
	defer remove()
	// Objects is a package global; only this source is registered during the test.
	newReg := prometheus.NewPedanticRegistry()
	newReg.MustRegister(Objects)
	oldReg := prometheus.NewPedanticRegistry()
	oldReg.MustRegister(constCollector{src})
	for _, accept := range []string{"", "text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
		"text/plain;version=1.0.0;escaping=values"} {
		got, want := scrape(t, newReg, accept), scrape(t, oldReg, accept)
		if !bytes.Equal(got, want) {
			t.Errorf("%q: output differs:\n%s\n---- want\n%s", accept, got, want)
		}
	}
	// Gather twice on the same collected metrics (a metric written twice).
	ch := make(chan prometheus.Metric, 1000)
	Objects.Collect(ch)
	close(ch)
	for m := range ch {
		var a, b dto.Metric
		_ = m.Write(&a)
		_ = m.Write(&b)
		if a.String() != b.String() {
			t.Fatal("Write not repeatable")
		}
	}
}

// Concurrent scrapes under -race, through every encoder.
func TestReviewObjectMetricConcurrentScrapes(t *testing.T) {
	remove := AddObjectSource(reviewObjects())
	defer remove()
	reg := prometheus.NewRegistry()
	reg.MustRegister(Objects)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for _, f := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeProtoDelim), expfmt.NewFormat(expfmt.TypeOpenMetrics)} {
				mfs, err := reg.Gather()
				if err != nil {
					t.Error(err)
					return
				}
				var buf bytes.Buffer
				enc := expfmt.NewEncoder(&buf, f)
				for _, mf := range mfs {
					if err := enc.Encode(mf); err != nil {
						t.Error(err)
					}
				}
			}
		}(i)
	}
	wg.Wait()
}

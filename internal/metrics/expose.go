package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The per-object series are not in controller-runtime's registry: a registry turns every
// series of a scrape into a protobuf message and keeps them all until the last is encoded. At
// 10,000 accounts (110,000 series) that was about 30 MiB at once, at the moment the cache is
// largest, and it set the manager's peak memory. Handler writes them as text straight from the
// cache instead, one family after the other; objects is the registry the tests gather from.
var objects = prometheus.NewRegistry()

func init() {
	objects.MustRegister(Objects)
	// The per-object families' names are taken in controller-runtime's registry too, so that
	// no other collector registered there can export a family of the same name (/metrics
	// would then write it twice): a collector that describes them and collects nothing.
	metrics.Registry.MustRegister(reserved{})
}

// reserved describes the per-object families and collects nothing: Handler writes them.
type reserved struct{}

func (reserved) Describe(ch chan<- *prometheus.Desc) { Objects.Describe(ch) }
func (reserved) Collect(chan<- prometheus.Metric)    {}

// Gatherer gathers everything /metrics serves: controller-runtime's registry (where this
// package's other metrics are) and the per-object series. For tests; Handler serves a scrape.
var Gatherer prometheus.Gatherer = prometheus.Gatherers{metrics.Registry, objects}

// MetricsPath is the path Handler adds the per-object series to.
const MetricsPath = "/metrics"

// textFormat is the exposition format Handler serves: Prometheus's text format 0.0.4, which
// every scraper accepts (Prometheus asks for protobuf or OpenMetrics first, and takes text).
var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// Handler serves a scrape of MetricsPath: what inner (controller-runtime's registry handler)
// serves, asked for as uncompressed text, followed by the per-object series written straight
// from their sources, gzipped when the scraper accepts it. Other paths go to inner as they
// are. When inner fails, its answer is passed on and no series are added.
func Handler(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != MetricsPath {
			inner.ServeHTTP(w, r)
			return
		}
		in := r.Clone(r.Context())
		in.Header.Set("Accept", string(textFormat))
		in.Header.Del("Accept-Encoding")
		rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		inner.ServeHTTP(rec, in)
		if rec.code != http.StatusOK {
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(rec.body.Bytes())
			return
		}
		w.Header().Set("Content-Type", string(textFormat))
		var out io.Writer = w
		if acceptsGzip(r) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Add("Vary", "Accept-Encoding")
			gz := gzip.NewWriter(w)
			defer func() { _ = gz.Close() }()
			out = gz
		}
		bw := bufio.NewWriterSize(out, 32<<10)
		if _, err := bw.Write(rec.body.Bytes()); err != nil {
			return // the scraper went away
		}
		// ?name[]=... asks for some families only: inner kept those of its own.
		var only map[string]bool
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			only = map[string]bool{}
			for _, n := range names {
				only[n] = true
			}
		}
		if err := Objects.WriteText(bw, only); err != nil {
			return
		}
		_ = bw.Flush()
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		// A weight of zero (q=0, q=0.0, Q=0.000) refuses it.
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// bufferedResponse keeps what inner answers: the registry's own metrics, a few hundred series.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.code, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

// family is one per-object metric family: Handler writes it (name, help), Collect makes it
// (desc), and both take an object's series from link or account.
type family struct {
	name, help string
	desc       *prometheus.Desc
	// link or account says the object's series of this family, if it has one.
	link    func(LinkState) (float64, bool)
	account func(AccountState) (float64, bool)
}

// families are the per-object families in the order Handler writes them (by name, as a
// registry does).
var families = []family{
	{name: "fifteenth_login_link_expiration_timestamp_seconds", help: helpExpiration, desc: LinkExpiration, link: func(l LinkState) (float64, bool) {
		return float64(l.Expires.Unix()), !l.Expires.IsZero()
	}},
	{name: "fifteenth_login_link_ready", help: helpLinkReady, desc: LinkReady, link: func(l LinkState) (float64, bool) { return boolValue(l.Ready), true }},
	{name: "fifteenth_login_link_renewal_timestamp_seconds", help: helpRenewal, desc: LinkRenewal, link: func(l LinkState) (float64, bool) {
		return float64(l.Renews.Unix()), !l.Renews.IsZero()
	}},
	{name: "fifteenth_login_link_superseded", help: helpSuperseded, desc: LinkSuperseded, link: func(l LinkState) (float64, bool) { return boolValue(l.Superseded), true }},
	{name: "fifteenth_partner_account_ready", help: helpAccountReady, desc: AccountReady, account: func(a AccountState) (float64, bool) { return boolValue(a.Ready), true }},
}

// WriteText writes the per-object series of every source in the text exposition format. It
// reads the sources once, keeping what the series say of each object (under 100 bytes a
// LoginLink: its name and namespace are the cache's strings), then writes one family after the
// other (a family's series must be together), each series a line. A family without series is
// left out, as a registry does. When two sources pass the same object, the first added wins.
// It returns the first write error (the scraper went away).
//
// only, when not nil, names the families to write (a scrape's name[] parameters); the sources
// are not read when it names none of them.
func (o *objectCollector) WriteText(w *bufio.Writer, only map[string]bool) error {
	if only != nil && !slices.ContainsFunc(families, func(f family) bool { return only[f.name] }) {
		return nil
	}
	sources := o.snapshot()
	links := make([]LinkState, 0, o.links.Load())
	accounts := make([]AccountState, 0, o.accounts.Load())
	// seen is needed only when several sources (several managers in one test process) may
	// pass the same object.
	type key struct {
		link            bool
		namespace, name string
	}
	var seen map[key]bool
	first := func(k key) bool {
		if seen == nil {
			return true
		}
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	if len(sources) > 1 {
		seen = map[key]bool{}
	}
	for _, s := range sources {
		// A source that cannot list (its cache not synced yet) exports nothing this time.
		_ = s.EachObject(func(l LinkState) {
			if first(key{true, l.Namespace, l.Name}) {
				links = append(links, l)
			}
		}, func(a AccountState) {
			if first(key{false, a.Namespace, a.Name}) {
				accounts = append(accounts, a)
			}
		})
	}
	o.links.Store(int64(len(links)))
	o.accounts.Store(int64(len(accounts)))

	var line []byte
	for _, f := range families {
		if only != nil && !only[f.name] {
			continue
		}
		wroteHeader := false
		emit := func(ns, name string, v float64) error {
			if !wroteHeader {
				wroteHeader = true
				line = append(line[:0], "# HELP "...)
				line = append(line, f.name...)
				line = append(line, ' ')
				line = appendEscaped(line, f.help, false)
				line = append(line, "\n# TYPE "...)
				line = append(line, f.name...)
				line = append(line, " gauge\n"...)
				if _, err := w.Write(line); err != nil {
					return err
				}
			}
			line = append(line[:0], f.name...)
			line = append(line, `{name="`...)
			line = appendEscaped(line, name, true)
			line = append(line, `",namespace="`...)
			line = appendEscaped(line, ns, true)
			line = append(line, `"} `...)
			line = appendFloat(line, v)
			line = append(line, '\n')
			_, err := w.Write(line)
			return err
		}
		if f.link != nil {
			for i := range links {
				if v, ok := f.link(links[i]); ok {
					if err := emit(links[i].Namespace, links[i].Name, v); err != nil {
						return err
					}
				}
			}
		}
		if f.account != nil {
			for i := range accounts {
				if v, ok := f.account(accounts[i]); ok {
					if err := emit(accounts[i].Namespace, accounts[i].Name, v); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// appendEscaped escapes as the text format does: a backslash and a line feed always, a double
// quote in a label value.
func appendEscaped(b []byte, s string, labelValue bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && labelValue:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat writes a value as the text format's encoder does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case v == -1:
		return append(b, "-1"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

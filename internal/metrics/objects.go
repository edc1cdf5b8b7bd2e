package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The per-object series: one per LoginLink or PartnerAccount and metric. They are not kept
// in gauge vectors: at 10,000 accounts (35,000 objects) the vectors held 110,000 series,
// about 60 MiB of the manager's heap. Objects computes them when Prometheus scrapes, from
// the objects' status in the manager's cache, as kube-state-metrics does, and Handler writes
// them without a registry (see expose.go).
var (
	// LinkExpiration is when each LoginLink's current link expires.
	LinkExpiration = prometheus.NewDesc("fifteenth_login_link_expiration_timestamp_seconds", helpExpiration, []string{"namespace", "name"}, nil)
	// LinkRenewal is when each LoginLink's link will be renewed.
	LinkRenewal = prometheus.NewDesc("fifteenth_login_link_renewal_timestamp_seconds", helpRenewal, []string{"namespace", "name"}, nil)
	// LinkReady is 1 when the LoginLink is Ready, else 0.
	LinkReady = prometheus.NewDesc("fifteenth_login_link_ready", helpLinkReady, []string{"namespace", "name"}, nil)
	// LinkSuperseded is 1 when the LoginLink is Ready=False with reason Superseded, else 0:
	// alerts leave such links out, as fifteenth_login_link_ready cannot tell them from broken ones.
	LinkSuperseded = prometheus.NewDesc("fifteenth_login_link_superseded", helpSuperseded, []string{"namespace", "name"}, nil)
	// AccountReady is 1 when the PartnerAccount is Ready, else 0.
	AccountReady = prometheus.NewDesc("fifteenth_partner_account_ready", helpAccountReady, []string{"namespace", "name"}, nil)

	// Objects exports the per-object series of every source added with AddObjectSource.
	Objects = &objectCollector{sources: map[int]ObjectSource{}}
)

// The help texts of the per-object families.
const (
	helpExpiration   = "Unix time at which the LoginLink's current link expires."
	helpRenewal      = "Unix time at which the LoginLink's link will be renewed."
	helpLinkReady    = "1 when the LoginLink is Ready, else 0."
	helpSuperseded   = "1 when a newer LoginLink holds this LoginLink's user (Ready=False, reason Superseded), else 0."
	helpAccountReady = "1 when the PartnerAccount is Ready, else 0."
)

// LinkState is what the series say of one LoginLink. Zero times are not exported.
type LinkState struct {
	Namespace, Name   string
	Ready, Superseded bool
	Expires, Renews   time.Time
}

// AccountState is what the series say of one PartnerAccount.
type AccountState struct {
	Namespace, Name string
	Ready           bool
}

// ObjectSource lists the objects to export, by calling link and account once for each (a
// source passes an object at most once: several sources may pass the same one). An
// object paused or in standby is not passed (not Ready on purpose: no series, no alert). A
// source that is not ready (e.g. not the leader) passes nothing.
type ObjectSource interface {
	EachObject(link func(LinkState), account func(AccountState)) error
}

type objectCollector struct {
	mu      sync.Mutex
	next    int
	sources map[int]ObjectSource
	// links and accounts are how many objects the last WriteText read, to size the next.
	links, accounts atomic.Int64
}

// AddObjectSource exports the objects of s until the returned function is called.
func AddObjectSource(s ObjectSource) (remove func()) {
	o := Objects
	o.mu.Lock()
	defer o.mu.Unlock()
	id := o.next
	o.next++
	o.sources[id] = s
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		delete(o.sources, id)
	}
}

func (o *objectCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{LinkExpiration, LinkRenewal, LinkReady, LinkSuperseded, AccountReady} {
		ch <- d
	}
}

// snapshot returns the sources in the order they were added.
func (o *objectCollector) snapshot() []ObjectSource {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]int, 0, len(o.sources))
	for id := range o.sources {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	sources := make([]ObjectSource, 0, len(ids))
	for _, id := range ids {
		sources = append(sources, o.sources[id])
	}
	return sources
}

// Collect makes the per-object series for a registry (Gatherer, in tests). A scrape does not
// use it: Handler writes them with WriteText.
func (o *objectCollector) Collect(ch chan<- prometheus.Metric) {
	sources := o.snapshot()
	// Two sources (two managers in one test process) may see the same object: once is enough,
	// and the first added wins, so a scrape does not depend on a map's order.
	type key struct{ kind, namespace, name string }
	seen := map[key]bool{}
	namespaces := map[string]*dto.LabelPair{}
	// labels are one object's label pairs, sorted by name as the registry wants them: its
	// series share them, and the objects of a namespace share its pair.
	labels := func(ns, name string) []*dto.LabelPair {
		nsPair, ok := namespaces[ns]
		if !ok {
			nsPair = &dto.LabelPair{Name: &labelNamespace, Value: &ns}
			namespaces[ns] = nsPair
		}
		return []*dto.LabelPair{{Name: &labelName, Value: &name}, nsPair}
	}
	for _, s := range sources {
		// A source that cannot list (its cache not synced yet) exports nothing this time.
		_ = s.EachObject(func(l LinkState) {
			if k := (key{"ll", l.Namespace, l.Name}); !seen[k] {
				seen[k] = true
				lp := labels(l.Namespace, l.Name)
				for _, f := range families {
					if f.link != nil {
						if v, ok := f.link(l); ok {
							ch <- objectMetric{f.desc, lp, v}
						}
					}
				}
			}
		}, func(a AccountState) {
			if k := (key{"pa", a.Namespace, a.Name}); !seen[k] {
				seen[k] = true
				lp := labels(a.Namespace, a.Name)
				for _, f := range families {
					if f.account != nil {
						if v, ok := f.account(a); ok {
							ch <- objectMetric{f.desc, lp, v}
						}
					}
				}
			}
		})
	}
}

// The label names of the per-object series.
var labelName, labelNamespace = "name", "namespace"

// objectMetric is one per-object gauge. Unlike prometheus.MustNewConstMetric, which makes the
// label pairs of each series anew (at 10,000 accounts, 110,000 series and twice as many pairs
// in each scrape, while the cache is at its largest), an object's series share its pairs.
type objectMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (m objectMetric) Desc() *prometheus.Desc { return m.desc }

func (m objectMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Gauge = &dto.Gauge{Value: &m.value}
	return nil
}

// StaticObjects is an ObjectSource of fixed objects (tests, and the alert rules' checks).
type StaticObjects struct {
	Links    []LinkState
	Accounts []AccountState
}

// EachObject passes the fixed objects.
func (s StaticObjects) EachObject(link func(LinkState), account func(AccountState)) error {
	for _, l := range s.Links {
		link(l)
	}
	for _, a := range s.Accounts {
		account(a)
	}
	return nil
}

package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// sample is one line of a Prometheus text exposition: a metric name, its label set as
// written (`a="x",b="y"`, without braces) and its value.
type sample struct {
	name   string
	labels string
	value  float64
}

// scrape is one reading of a /metrics page.
type scrape struct {
	samples []sample
	series  int // non-comment, non-empty lines: the number of series exported
}

func parseMetrics(r io.Reader) (scrape, error) {
	var s scrape
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s.series++
		name, labels, rest := line, "", ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.samples = append(s.samples, sample{name: name, labels: labels, value: v})
	}
	return s, sc.Err()
}

// sum adds the samples of name whose labels contain every one of match (e.g. `controller="loginlink"`).
func (s scrape) sum(name string, match ...string) float64 {
	total := 0.0
outer:
	for _, x := range s.samples {
		if x.name != name {
			continue
		}
		for _, m := range match {
			if !strings.Contains(x.labels, m) {
				continue outer
			}
		}
		total += x.value
	}
	return total
}

// label returns the value of label key in a label set as written.
func label(labels, key string) string {
	i := strings.Index(","+labels, ","+key+`="`)
	if i < 0 {
		return ""
	}
	v := labels[i+len(key)+2:]
	if j := strings.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return v
}

// by sums the samples of name by the value of label key.
func (s scrape) by(name, key string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s.samples {
		if x.name == name {
			out[label(x.labels, key)] += x.value
		}
	}
	return out
}

// families returns the metric families with the most series, largest first, as "name N".
func (s scrape) families(top int) []string {
	count := map[string]int{}
	for _, x := range s.samples {
		name := x.name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		count[name]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	out := make([]string, 0, top)
	for _, n := range names[:min(top, len(names))] {
		out = append(out, fmt.Sprintf("%s %d", n, count[n]))
	}
	return out
}

// managerMetrics reads the manager's /metrics.
func (w *world) managerMetrics() (scrape, error) {
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return scrape{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("manager /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// apiserverMetrics reads kube-apiserver's /metrics (the bench's user is an administrator).
func (b *bench) apiserverMetrics() (scrape, error) {
	hc, err := rest.HTTPClientFor(b.cfg)
	if err != nil {
		return scrape{}, err
	}
	resp, err := hc.Get(strings.TrimSuffix(b.cfg.Host, "/") + "/metrics")
	if err != nil {
		return scrape{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("kube-apiserver /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// memStats reads the manager's runtime.MemStats from pprof's text heap profile; gc forces a
// collection first, so that HeapAlloc is the live heap.
func (w *world) memStats(gc bool) (heapAlloc, heapInuse float64, err error) {
	m, err := w.memStatsAll(gc)
	return m["HeapAlloc"], m["HeapInuse"], err
}

// memStatsAll reads the manager's runtime.MemStats from the end of its heap profile (debug=1),
// by field name, in bytes ("Stack" and "MSpan" are the bytes in use, the first of two figures).
func (w *world) memStatsAll(gc bool) (map[string]float64, error) {
	url := "http://" + w.pprof + "/debug/pprof/heap?debug=1"
	if gc {
		url += "&gc=1"
	}
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	m := map[string]float64{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "#" || f[2] != "=" {
			continue
		}
		if v, perr := strconv.ParseFloat(f[3], 64); perr == nil {
			m[f[1]] = v
		}
	}
	if _, ok := m["HeapInuse"]; !ok {
		return nil, fmt.Errorf("no MemStats in %s", url)
	}
	if _, ok := m["HeapAlloc"]; !ok {
		return nil, fmt.Errorf("no MemStats in %s", url)
	}
	return m, sc.Err()
}

// saveHeapProfile writes the manager's heap profile (the binary format go tool pprof reads) to path.
func (w *world) saveHeapProfile(path string) error {
	resp, err := http.Get("http://" + w.pprof + "/debug/pprof/heap")
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// scrapeCost times one scrape of the manager's /metrics and counts its bytes.
func (w *world) scrapeCost() (time.Duration, int64, error) {
	began := time.Now()
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.Copy(io.Discard, resp.Body)
	return time.Since(began), n, err
}

// peaks are the maxima the sampler saw.
type peaks struct {
	heapInuse, heapAlloc float64            // bytes
	depth                map[string]float64 // workqueue depth by controller
	samples, scrapes     int
	atRSS                rssPeak // the reading with the highest resident memory
}

// rssPeak is what the manager's memory was made of at the sampler's highest reading of its
// resident memory, in bytes.
type rssPeak struct {
	at                   time.Duration // since the sampler started
	sinceScrape          time.Duration // since the last /metrics scrape began
	rss, anon, file      float64
	heapInuse, heapAlloc float64
	heapUnreturned       float64 // freed heap pages the runtime has not yet returned (HeapIdle - HeapReleased)
	stacks, runtime      float64 // goroutine stacks; the runtime's own (spans, GC metadata, other)
}

// rssNow reads the manager's resident memory and its anonymous and file-backed parts, in bytes.
func (w *world) rssNow() (rss, anon, file float64) {
	st := procStatus(w.cmd.Process.Pid)
	return st["VmRSS:"], st["RssAnon:"], st["RssFile:"]
}

// procStatus reads the /proc/<pid>/status figures given in kB, in bytes, by field ("VmRSS:",
// "VmHWM:", ...).
func procStatus(pid int) map[string]float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	st := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "kB" {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				st[f[0]] = kb * 1024
			}
		}
	}
	return st
}

// sampler reads the manager's /metrics every interval until stopped and keeps the peaks of
// its heap and of each controller's workqueue depth, and what the memory was made of at its
// highest reading of RSS (the exact peak is the kernel's own, VmHWM). The manager exports series per object, so at 10,000 objects a reading
// costs it real work: the sampler waits at least 10 times as long as the last reading took,
// which keeps it below a tenth of the manager's time.
type sampler struct {
	mu   sync.Mutex
	p    peaks
	stop chan struct{}
	done chan struct{}
}

func (w *world) startSampler(interval time.Duration) *sampler {
	s := &sampler{p: peaks{depth: map[string]float64{}}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		lastScrape, lastHeap, began := time.Time{}, time.Time{}, time.Now()
		for {
			// RSS from /proc costs the manager nothing. Its heap does: the heap profile that
			// carries runtime.MemStats writes every sampled stack, a few MB each time (read every
			// 500 ms it was a tenth of all the manager allocated at 10,000 accounts). So the heap
			// is read every heapInterval, and at each new high of RSS, to say what it is made of.
			rss, anon, file := w.rssNow()
			s.mu.Lock()
			high := rss > s.p.atRSS.rss+mib
			s.mu.Unlock()
			if high || time.Since(lastHeap) >= heapInterval {
				lastHeap = time.Now()
				if m, err := w.memStatsAll(false); err == nil {
					s.mu.Lock()
					s.p.samples++
					s.p.heapInuse = max(s.p.heapInuse, m["HeapInuse"])
					s.p.heapAlloc = max(s.p.heapAlloc, m["HeapAlloc"])
					if rss > s.p.atRSS.rss {
						s.p.atRSS = rssPeak{at: time.Since(began), sinceScrape: time.Since(lastScrape), rss: rss, anon: anon, file: file,
							heapInuse: m["HeapInuse"], heapAlloc: m["HeapAlloc"], heapUnreturned: m["HeapIdle"] - m["HeapReleased"],
							stacks: m["Stack"], runtime: m["MSpan"] + m["MCache"] + m["BuckHashSys"] + m["GCSys"] + m["OtherSys"]}
					}
					s.mu.Unlock()
				}
			}
			// The workqueue depths from /metrics at Prometheus's usual interval: the scrape's
			// own cost (the per-object series) is then part of the figures, as in a cluster.
			if time.Since(lastScrape) >= scrapeInterval {
				lastScrape = time.Now()
				if m, err := w.managerMetrics(); err == nil {
					s.mu.Lock()
					s.p.scrapes++
					for c, d := range m.by("workqueue_depth", "controller") {
						s.p.depth[c] = max(s.p.depth[c], d)
					}
					s.mu.Unlock()
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(interval):
			}
		}
	}()
	return s
}

// scrapeInterval is how often the sampler reads /metrics, as a Prometheus would.
const scrapeInterval = 30 * time.Second

// heapInterval is how often the sampler reads the manager's heap between new highs of RSS.
const heapInterval = 10 * time.Second

func (s *sampler) finish() peaks {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on Linux for
// every architecture Go supports.
const clockTicks = 100

// cpuSeconds returns the user+system CPU time a process has used, in seconds.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count from its end.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return (utime + stime) / clockTicks, nil
}

// controlPlanePIDs finds this bench's kube-apiserver (by its secure port, from b.cfg.Host) and
// its etcd (by the client URL kube-apiserver was given in --etcd-servers) among the processes
// under /proc: other control planes may run on the machine, so a name is not enough.
func (b *bench) controlPlanePIDs() (apiserver, etcd int, err error) {
	u, err := url.Parse(b.cfg.Host)
	if err != nil {
		return 0, 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	cmdlines := map[int][]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(raw) == 0 {
			continue
		}
		cmdlines[pid] = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	}
	etcdURL := ""
	for pid, args := range cmdlines {
		if !strings.HasSuffix(args[0], "kube-apiserver") {
			continue
		}
		port, servers := "", ""
		for i, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok && i+1 < len(args) {
				v = args[i+1]
			}
			switch k {
			case "--secure-port":
				port = v
			case "--etcd-servers":
				servers = v
			}
		}
		if port == u.Port() {
			apiserver, etcdURL = pid, strings.Split(servers, ",")[0]
			break
		}
	}
	if apiserver == 0 || etcdURL == "" {
		return 0, 0, fmt.Errorf("no kube-apiserver serving port %s under /proc", u.Port())
	}
	for pid, args := range cmdlines {
		if !strings.HasSuffix(args[0], "etcd") {
			continue
		}
		for _, a := range args {
			if strings.Contains(a, "listen-client-urls") && strings.Contains(a, strings.TrimPrefix(strings.TrimPrefix(etcdURL, "http://"), "https://")) {
				return apiserver, pid, nil
			}
		}
	}
	return apiserver, 0, fmt.Errorf("no etcd listening on %s under /proc", etcdURL)
}

// cpuClock reads the CPU time of the manager, kube-apiserver, etcd and the bench itself.
type cpuClock struct {
	pids  [4]int
	names [4]string
}

func (b *bench) newCPUClock(manager int) cpuClock {
	c := cpuClock{names: [4]string{"manager", "kube-apiserver", "etcd", "bench (clients, simulator, polling)"}}
	c.pids[0], c.pids[3] = manager, os.Getpid()
	var err error
	if c.pids[1], c.pids[2], err = b.controlPlanePIDs(); err != nil {
		b.logf("CPU of the control plane not measured: %v", err)
	}
	return c
}

func (c cpuClock) read() [4]float64 {
	var out [4]float64
	for i, pid := range c.pids {
		if pid == 0 {
			out[i] = -1
			continue
		}
		v, err := cpuSeconds(pid)
		if err != nil {
			out[i] = -1
			continue
		}
		out[i] = v
	}
	return out
}

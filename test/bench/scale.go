package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// mainControllers are the controllers the scale run exercises, each with managerConcurrency workers.
var mainControllers = []string{"partneraccount", "loginlink"}

const mib = 1024 * 1024

// idleResult is what one resync of the Ready objects cost.
type idleResult struct {
	window       time.Duration
	reconciles   float64
	apiCalls     int
	statusWrites int
	writes       map[string]float64 // the manager's own writes by method
	requests     float64            // all the manager's requests to kube-apiserver
	end          scrape             // the manager's metrics at the end
	rss, rssPeak float64            // the manager's RSS at the end, and its peak since it started (MiB)
	scrapes      int                // readings of /metrics during the resync
}

// idle waits, restarting nothing, for the manager's next resync of every object (its
// --sync-period is b.o.idleSync, which each informer stretches by up to 10%) and counts what
// happened over 1.1 sync periods, or longer until each controller has reconciled at least as
// many times as it has objects and the queues are empty (three periods at most).
func (w *world) idle(accounts, objects int) (idleResult, error) {
	var r idleResult
	st0, err := w.stats()
	if err != nil {
		return r, err
	}
	ll0, pa0, err := w.b.statusWrites()
	if err != nil {
		return r, err
	}
	m0, err := w.managerMetrics()
	if err != nil {
		return r, err
	}
	start := time.Now()
	period := w.b.o.idleSync
	w.b.logf("idle: counting over one resync (--sync-period %v) of the %d Ready objects", period, objects)
	var m1 scrape
	// The reconcile counts come from /metrics, which at 10,000 accounts takes the manager
	// seconds to write: as the sampler does, wait at least 10 times as long as the last reading
	// took (and a second), so that the readings cost the manager under a tenth of its time, as
	// a Prometheus scraping every 30 s would.
	wait := time.Second
	for {
		time.Sleep(wait)
		began := time.Now()
		if m1, err = w.managerMetrics(); err != nil {
			return r, err
		}
		r.scrapes++
		wait = max(time.Second, 10*time.Since(began))
		pa := delta(m0, m1, "controller_runtime_reconcile_total", `controller="partneraccount"`)
		ll := delta(m0, m1, "controller_runtime_reconcile_total", `controller="loginlink"`)
		resynced := pa >= float64(accounts) && ll >= float64(objects-accounts)
		if time.Since(start) >= period*11/10 && resynced && m1.sum("workqueue_depth") == 0 {
			break
		}
		if time.Since(start) >= 3*period {
			w.b.fail("idle: %.0f PartnerAccount and %.0f LoginLink reconciles in %v, fewer than the %d and %d objects: no full resync",
				pa, ll, time.Since(start).Round(time.Second), accounts, objects-accounts)
			break
		}
	}
	r.window = time.Since(start)
	r.rss, r.rssPeak = w.rss()
	st1, err := w.stats()
	if err != nil {
		return r, err
	}
	ll1, pa1, err := w.b.statusWrites()
	if err != nil {
		return r, err
	}
	r.end = m1
	r.reconciles = m1.sum("controller_runtime_reconcile_total") - m0.sum("controller_runtime_reconcile_total")
	r.statusWrites = ll1 - ll0 + pa1 - pa0
	r.requests = m1.sum("rest_client_requests_total") - m0.sum("rest_client_requests_total")
	r.writes = map[string]float64{}
	before := m0.by("rest_client_requests_total", "method")
	for method, v := range m1.by("rest_client_requests_total", "method") {
		if method != "GET" && method != "LIST" && method != "WATCH" {
			if d := v - before[method]; d > 0 {
				r.writes[method] = d
			}
		}
	}
	for route, codes := range st1.Requests {
		if !strings.HasPrefix(route, "POST /v1beta") && !strings.HasPrefix(route, "GET /v1beta") {
			continue
		}
		for code, n := range codes {
			r.apiCalls += n - st0.Requests[route][code]
		}
	}
	if r.apiCalls > 0 {
		w.b.fail("idle: %d API calls during a resync of Ready objects", r.apiCalls)
	}
	if lim := w.b.o.memoryLimit; lim != "" {
		if q, err := resource.ParseQuantity(lim); err == nil && r.rssPeak*mib > float64(q.Value()) {
			w.b.fail("the manager's resident memory peaked at %.0f MiB, over the %s limit it was told: a container would be OOM-killed", r.rssPeak, lim)
		}
	}
	if r.reconciles > 0 && float64(r.statusWrites) > 0.01*r.reconciles {
		w.b.fail("idle: %d status writes for %.0f reconciles (more than 1%%)", r.statusWrites, r.reconciles)
	}
	w.b.logf("idle: %.0f reconciles in %v, %d API calls, %d status writes, manager writes %v; RSS %.0f MiB, peak %.0f MiB", r.reconciles,
		r.window.Round(time.Second), r.apiCalls, r.statusWrites, r.writes, r.rss, r.rssPeak)
	return r, nil
}

// delta is after minus before of one metric.
func delta(before, after scrape, name string, match ...string) float64 {
	return after.sum(name, match...) - before.sum(name, match...)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// whereTime writes the "where the time goes" tables of the scale run: per controller, its
// reconciles, their results and time, and its queue; the processes' CPU; the requests.
func whereTime(sb *strings.Builder, m0, m1, a0, a1 scrape, p peaks, cpu cpuClock, c0, c1 [4]float64, elapsed time.Duration) {
	sec := elapsed.Seconds()
	fmt.Fprintf(sb, `### Where the time goes

Per controller, over the run (%v; %d workers each). "Busy" is the reconcile time summed over
the workers divided by workers x run time: near 100%% the workers are the bottleneck, far
below it they wait for work. "Queue wait" is the mean time an item waited in the queue.

| controller | reconciles: success / requeue / requeue_after / error | reconcile time sum | busy | mean reconcile | queue adds / retries | queue depth peak | mean queue wait |
| --- | --- | --- | --- | --- | --- | --- | --- |
`, elapsed.Round(time.Millisecond), managerConcurrency)
	for _, c := range mainControllers {
		ctl := `controller="` + c + `"`
		res := func(r string) float64 {
			return delta(m0, m1, "controller_runtime_reconcile_total", ctl, `result="`+r+`"`)
		}
		total := delta(m0, m1, "controller_runtime_reconcile_total", ctl)
		busy := delta(m0, m1, "controller_runtime_reconcile_time_seconds_sum", ctl)
		qwait := ratio(delta(m0, m1, "workqueue_queue_duration_seconds_sum", ctl), delta(m0, m1, "workqueue_queue_duration_seconds_count", ctl))
		fmt.Fprintf(sb, "| %s | %.0f / %.0f / %.0f / %.0f | %.1f s | %.0f%% | %.1f ms | %.0f / %.0f | %.0f | %.2f s |\n", c,
			res("success"), res("requeue"), res("requeue_after"), res("error"), busy, 100*busy/(managerConcurrency*sec),
			1000*ratio(busy, total), delta(m0, m1, "workqueue_adds_total", ctl), delta(m0, m1, "workqueue_retries_total", ctl),
			p.depth[c], qwait)
	}
	fmt.Fprintf(sb, `
CPU over the run, from /proc/<pid>/stat (utime+stime), on %d cores (%.0f CPU-seconds available):

| process | CPU-seconds | mean cores used |
| --- | --- | --- |
`, numCPU(), float64(numCPU())*sec)
	for i, name := range cpu.names {
		if c0[i] < 0 || c1[i] < 0 {
			fmt.Fprintf(sb, "| %s | not measured | |\n", name)
			continue
		}
		fmt.Fprintf(sb, "| %s | %.1f | %.2f |\n", name, c1[i]-c0[i], (c1[i]-c0[i])/sec)
	}
	fmt.Fprintf(sb, `
Requests the manager made to kube-apiserver (rest_client_requests_total), by method, and the
server's mean time per request of that verb (apiserver_request_duration_seconds, all clients):

| method | requests | of which 409 Conflict | server mean |
| --- | --- | --- | --- |
`)
	before := m0.by("rest_client_requests_total", "method")
	for _, method := range []string{"GET", "LIST", "POST", "PUT", "PATCH", "DELETE"} {
		n := m1.by("rest_client_requests_total", "method")[method] - before[method]
		if n == 0 {
			continue
		}
		conflicts := delta(m0, m1, "rest_client_requests_total", `method="`+method+`"`, `code="409"`)
		verb := `verb="` + method + `"`
		mean := ratio(delta(a0, a1, "apiserver_request_duration_seconds_sum", verb), delta(a0, a1, "apiserver_request_duration_seconds_count", verb))
		fmt.Fprintf(sb, "| %s | %.0f | %.0f | %.1f ms |\n", method, n, conflicts, 1000*mean)
	}
	if d := delta(m0, m1, "rest_client_request_duration_seconds_count"); d > 0 {
		fmt.Fprintf(sb, "\nThe manager's own mean request time (rest_client_request_duration_seconds): %.1f ms.\n",
			1000*ratio(delta(m0, m1, "rest_client_request_duration_seconds_sum"), d))
	} else {
		sb.WriteString("\nThe manager does not export rest_client_request_duration_seconds (opt-in in controller-runtime v0.25): the server's time stands in for it.\n")
	}
	sb.WriteString("\n")
}

func numCPU() int { return runtime.NumCPU() }

func (b *bench) writeIdle(ir idleResult, objects int) {
	methods := make([]string, 0, len(ir.writes))
	for m, v := range ir.writes {
		methods = append(methods, fmt.Sprintf("%s %.0f", m, v))
	}
	slices.Sort(methods)
	writes := "none"
	if len(methods) > 0 {
		writes = strings.Join(methods, ", ")
	}
	fmt.Fprintf(&b.report, `### Idle: one resync of the %d Ready objects

Once all were Ready, nothing restarted: the manager (--sync-period %v) resynced every object.
Counted over %v, from the first reading after all were Ready until 1.1 sync periods had
passed (an informer stretches its period by up to 10%%), each controller had reconciled at
least as many times as it has objects, and the queues were empty.

| measure | value |
| --- | --- |
| reconciles | %.0f |
| API calls (simulator) during the idle resync | %d |
| status writes (PATCH/PUT of PartnerAccount and LoginLink status, kube-apiserver) | %d |
| status writes per idle reconcile | %.4f |
| all the manager's writes, by method (rest_client_requests_total) | %s |
| all the manager's requests to kube-apiserver | %.0f |
| metric series the manager exports (non-comment lines of /metrics) | %d |
| the largest metric families (series) | %s |
| readings of /metrics during the resync | %d |
| manager RSS at the end of the resync / its peak since it started (scale run and resync) | %.0f MiB / %.0f MiB |

`, objects, b.o.idleSync, ir.window.Round(time.Second), ir.reconciles, ir.apiCalls, ir.statusWrites,
		ratio(float64(ir.statusWrites), ir.reconciles), writes, ir.requests, ir.end.series, strings.Join(ir.end.families(5), ", "),
		ir.scrapes, ir.rss, ir.rssPeak)
}

// writeFloor measures and reports the control plane's write floor for the scale run's writes.
func (b *bench) writeFloor(writes map[writeKind]int, m0, m1 scrape, cpu cpuClock, elapsed time.Duration, nAccounts, nLinks int) error {
	total := 0
	for _, v := range writes {
		total += v
	}
	b.logf("floor: replaying the scale run's %d writes with %d writers", total, b.o.floorWorkers)
	c0 := cpu.read()
	fr, err := b.floor(writes, b.o.floorWorkers)
	if err != nil {
		return err
	}
	c1 := cpu.read()
	cpuOf := func(i int) string {
		if c0[i] < 0 || c1[i] < 0 {
			return "not measured"
		}
		return fmt.Sprintf("%.1f s (%.2f cores)", c1[i]-c0[i], (c1[i]-c0[i])/fr.elapsed.Seconds())
	}
	r := ratio(elapsed.Seconds(), fr.elapsed.Seconds())
	b.logf("floor: %d writes in %v (%d failed); the operator took %v: ratio %.2f", fr.writes, fr.elapsed.Round(time.Millisecond),
		fr.failures, elapsed.Round(time.Millisecond), r)
	var mgr []string
	before := m0.by("rest_client_requests_total", "method")
	mgrTotal := 0.0
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if d := m1.by("rest_client_requests_total", "method")[method] - before[method]; d > 0 {
			mgr = append(mgr, fmt.Sprintf("%s %.0f", method, d))
			mgrTotal += d
		}
	}
	fmt.Fprintf(&b.report, `### Write floor

Every write kube-apiserver served during the scale run (apiserver_request_total, by resource
and verb, whatever the answer): the operator's, the bench's own %d PartnerAccount and %d
LoginLink creations (they are part of the run's time), and the few Lease renewals of
kube-apiserver itself. The manager's client counted %.0f writes of its own (%s). Once the
manager had stopped, the bench issued the same number of writes of each kind on fresh objects
in the namespace %s with a plain controller-runtime client: no client-side rate limit
(QPS -1, controller-runtime's default, as the manager has) and %d concurrent writers (the
manager's two main controllers with %d workers each): first the creations (Secrets of a login
link's size, Leases, Events, PartnerAccounts, LoginLinks), then the updates and status patches
(each one changes the object, so each reaches etcd), then the deletions, kinds interleaved.

| writes | served during the run | replayed by the floor |
| --- | --- | --- |
`, nAccounts, nLinks, mgrTotal, strings.Join(mgr, ", "), floorNS, b.o.floorWorkers, managerConcurrency)
	for _, k := range sortedKinds(writes) {
		replayed := fmt.Sprint(writes[k])
		if fr.skipped[k.String()] > 0 {
			replayed = "not replayed (a kind the floor does not write)"
		}
		fmt.Fprintf(&b.report, "| %s | %d | %s |\n", k, writes[k], replayed)
	}
	goal := "met"
	if r > 3 {
		goal = "not met"
	}
	fmt.Fprintf(&b.report, `
| measure | value |
| --- | --- |
| writes the floor issued (of which failed; updates written again after a conflict with a patch) | %d (%d; %d) |
| floor time | %v |
| operator time (apply to all Ready) | %v |
| ratio operator / floor (goal <= 3: %s) | %.2f |
| CPU during the floor: kube-apiserver / etcd / bench | %s / %s / %s |

`, fr.writes, fr.failures, fr.retries.Load(), fr.elapsed.Round(time.Millisecond), elapsed.Round(time.Millisecond), goal, r, cpuOf(1), cpuOf(2), cpuOf(3))
	return nil
}

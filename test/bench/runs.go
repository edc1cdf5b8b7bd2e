package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/memlimit"
)

func jsonNewDecoder(resp *http.Response) *json.Decoder { return json.NewDecoder(resp.Body) }

// unlimited lifts the documented limits in the scale run, which measures the operator, not them.
var unlimited = fifteenth.Rate{N: 1 << 20, Per: time.Minute}

func scaled(r fifteenth.Rate, scale float64) string {
	return fmt.Sprintf("%d/%s", r.N, time.Duration(float64(r.Per)/scale))
}

func (b *bench) scaleRun() error {
	n := b.o.n
	b.logf("scale run: %d PartnerAccounts (half with a spouse) and %d LoginLinks at once", n, n)
	w, err := b.newWorld("scale", sim.Config{AccountRate: unlimited, LinkRate: fifteenth.Rate{N: 1 << 20, Per: time.Hour}},
		"--account-create-limit", "1048576/1m", "--login-link-limit", "1048576/1h", "--sync-period", b.o.idleSync.String())
	if err != nil {
		return err
	}
	defer w.stop()
	ids, err := w.preCreate(n, "scale")
	if err != nil {
		return err
	}
	rssBefore, _ := w.rss()
	m0, err := w.managerMetrics()
	if err != nil {
		return err
	}
	a0, err := b.apiserverMetrics()
	if err != nil {
		return err
	}
	cpu := b.newCPUClock(w.cmd.Process.Pid)
	c0 := cpu.read()
	smp := w.startSampler(500 * time.Millisecond)
	start := time.Now()
	if err := w.apply(n, ids, nil); err != nil {
		_ = smp.finish()
		return err
	}
	applied := time.Since(start)
	// PartnerAccounts, their holder and spouse LoginLinks, and the LoginLinks by accountID.
	objects := n + n + (n+1)/2 + n
	times, err := w.waitReady(objects, 15*time.Minute)
	p := smp.finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	c1 := cpu.read()
	rssAfter, rssPeak := w.rss()
	m1, err := w.managerMetrics()
	if err != nil {
		return err
	}
	a1, err := b.apiserverMetrics()
	if err != nil {
		return err
	}
	recBefore, recAfter := m0.sum("controller_runtime_reconcile_total"), m1.sum("controller_runtime_reconcile_total")
	heapBefore, heapAfter := m0.sum("go_memstats_heap_inuse_bytes"), m1.sum("go_memstats_heap_inuse_bytes")
	allocBefore, allocAfter := m0.sum("go_memstats_heap_alloc_bytes"), m1.sum("go_memstats_heap_alloc_bytes")
	// The live heap: what the cache and the rest really hold, after a forced collection.
	liveAfter, _, err := w.memStats(true)
	if err != nil {
		return err
	}
	if b.o.heapProfile != "" {
		if err := w.saveHeapProfile(b.o.heapProfile); err != nil {
			return err
		}
	}
	scrapeTime, scrapeBytes, err := w.scrapeCost()
	if err != nil {
		return err
	}
	_, rssAfterScrape := w.rss()
	creates, links, gets, tooMany, err := w.checkAPI("scale", n, n, n, n)
	if err != nil {
		return err
	}
	lr, err := w.links("scale")
	if err != nil {
		return err
	}
	b.logf("scale run: all %d objects Ready in %v (p50 %v, p99 %v); RSS %.0f -> %.0f MiB (peak %.0f)", objects,
		elapsed.Round(time.Millisecond), pct(times, 0.5).Round(time.Millisecond), pct(times, 0.99).Round(time.Millisecond), rssBefore, rssAfter, rssPeak)
	fmt.Fprintf(&b.report, `## Scale: %d PartnerAccounts and %d LoginLinks at once

%d PartnerAccounts (half with a spouse) and %d LoginLinks by accountID, created at once (16
writers, %v to apply), in a namespace (watched by the manager) that also holds %d unrelated Secrets of %d KiB. The documented rate
limits are lifted in this run (simulator and manager alike): it measures the operator.

| measure | value |
| --- | --- |
| objects to be Ready (PartnerAccounts, their %d owned LoginLinks, the LoginLinks) | %d |
| time until all Ready | %v |
| per object, creation to Ready: p50 / p99 | %v / %v |
| account creations (minimum: 1 per PartnerAccount) | %d (minimum %d) |
| link generations (minimum: 1 per LoginLink; created accounts' links come with the creation) | %d (minimum %d) |
| Retrieve Account calls (minimum: 1 per LoginLink by accountID without userEmail, to learn the holder's email) | %d (minimum %d) |
| 429 answers | %d |
| manager RSS before the objects, with %d unrelated Secrets in its namespace | %.0f MiB |
| manager RSS after / peak | %.0f MiB / %.0f MiB |
| memory per object ((peak - before) / objects) | %.1f KiB |
| reconciles (both controllers) / per second | %.0f / %.0f |
| Ready links valid (Ready LoginLinks whose Secret holds a link the simulator reports valid) | %d/%d |
| users with an active LoginLink that have exactly one valid link | %d/%d |

`, n, n, n, n, applied.Round(time.Millisecond), b.o.noise, b.o.noiseBytes/1024, n+(n+1)/2, objects,
		elapsed.Round(time.Millisecond), pct(times, 0.5).Round(time.Millisecond), pct(times, 0.99).Round(time.Millisecond),
		creates, n, links, n, gets, n, tooMany, b.o.noise, rssBefore, rssAfter, rssPeak,
		(rssPeak-rssBefore)*1024/float64(objects), recAfter-recBefore, (recAfter-recBefore)/elapsed.Seconds(),
		lr.ReadyValid, lr.Ready, lr.UsersOK, lr.Users)
	fmt.Fprintf(&b.report, `The manager's RSS was read from /proc every 500 ms during the run; its heap, from its
runtime.MemStats (at the end of pprof's heap profile, which costs it a few MB to write), every
10 s and at each new high of RSS (%d readings); /metrics was scraped
every %v as a Prometheus would (%d scrapes), so its cost is in the peaks. The live heap is
read after a collection forced once all were Ready (pprof's gc=1):

| measure | value |
| --- | --- |
| live heap after a forced collection, all Ready | %.1f MiB |
| live heap per object (live heap - heap in use before) / objects | %.2f KiB |
| heap in use (go_memstats_heap_inuse_bytes) before / after all Ready / peak | %.1f / %.1f / %.1f MiB |
| heap allocated (go_memstats_heap_alloc_bytes) before / after all Ready / peak | %.1f / %.1f / %.1f MiB |
| memory per object from RSS ((peak - before) / objects) | %.1f KiB |
| one scrape of /metrics, all Ready: time / size / RSS peak after it | %v / %.1f MiB / %.0f MiB |
| the highest RSS reading: when (since the apply began; since a /metrics scrape began) | %v; %v |
| at it: RSS = anonymous + file-backed (the binary's pages) | %.0f = %.0f + %.0f MiB |
| at it: heap in use (of which allocated) / freed heap not yet returned to the kernel / stacks / the runtime's own | %.1f (%.1f) / %.1f / %.1f / %.1f MiB |

`, p.samples, scrapeInterval, p.scrapes, liveAfter/mib, (liveAfter-heapBefore)/1024/float64(objects),
		heapBefore/mib, heapAfter/mib, p.heapInuse/mib, allocBefore/mib, allocAfter/mib, p.heapAlloc/mib,
		(rssPeak-rssBefore)*1024/float64(objects), scrapeTime.Round(time.Millisecond), float64(scrapeBytes)/mib, rssAfterScrape,
		p.atRSS.at.Round(time.Second), p.atRSS.sinceScrape.Round(time.Second), p.atRSS.rss/mib, p.atRSS.anon/mib, p.atRSS.file/mib,
		p.atRSS.heapInuse/mib, p.atRSS.heapAlloc/mib, p.atRSS.heapUnreturned/mib, p.atRSS.stacks/mib, p.atRSS.runtime/mib)
	b.logf("scale run: live heap %.1f MiB after a forced collection; heap peak %.1f MiB in use; one scrape %v, %.1f MiB",
		liveAfter/mib, p.heapInuse/mib, scrapeTime.Round(time.Millisecond), float64(scrapeBytes)/mib)
	whereTime(&b.report, m0, m1, a0, a1, p, cpu, c0, c1, elapsed)
	ir, err := w.idle(n, objects)
	if err != nil {
		return err
	}
	w.stop()
	b.writeIdle(ir, objects)
	return b.writeFloor(writesBetween(a0, a1), m0, m1, cpu, elapsed, n, len(ids))
}

func (b *bench) rateRun() error {
	n, scale := b.o.rateN, b.o.rateScale
	limit := fifteenth.DefaultAccountCreateRate
	window := time.Duration(float64(limit.Per) / scale)
	bound := time.Duration(math.Ceil(float64(n)/float64(limit.N))-1) * window
	b.logf("rate-limit run: %d PartnerAccounts at %s per key, time scale %g (a window lasts %v)", n, limit, scale, window)
	w, err := b.newWorld("rate", sim.Config{TimeScale: scale},
		"--account-create-limit", scaled(limit, scale), "--login-link-limit", scaled(fifteenth.DefaultLoginLinkRate, scale))
	if err != nil {
		return err
	}
	defer w.stop()
	// Reconciles of PartnerAccounts (controller_runtime_reconcile_total of the controller named
	// in controllers/setup.go), summed over its results.
	paReconciles := func() float64 {
		sum := 0.0
		for _, result := range []string{"success", "error", "requeue", "requeue_after"} {
			v, _ := w.metric(`controller_runtime_reconcile_total{controller="partneraccount",result="` + result + `"}`)
			sum += v
		}
		return sum
	}
	recBefore := paReconciles()
	_, paWritesBefore, err := b.statusWrites()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := w.apply(n, nil, nil); err != nil {
		return err
	}
	b.logf("rate-limit run: %d PartnerAccounts applied in %v", n, time.Since(start).Round(time.Millisecond))
	times, err := w.waitReady(n+n+(n+1)/2, 15*time.Minute)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	_, paWrites, err := b.statusWrites()
	if err != nil {
		return err
	}
	creates, links, gets, tooMany, err := w.checkAPI("rate", n, 0, 0, 0)
	if err != nil {
		return err
	}
	perCreate := func(v float64) float64 {
		if creates == 0 {
			return 0
		}
		return v / float64(creates)
	}
	recPerCreate, writesPerCreate := perCreate(paReconciles()-recBefore), perCreate(float64(paWrites-paWritesBefore))
	if recPerCreate > 3 {
		b.fail("rate: %.2f reconciles of PartnerAccounts per created account (at most 3): waiting wakes them more than once", recPerCreate)
	}
	lr, err := w.links("rate")
	if err != nil {
		return err
	}
	over := 100 * (elapsed.Seconds()/bound.Seconds() - 1)
	b.logf("rate-limit run: all Ready in %v against a bound of %v (%+.1f%%); %.2f reconciles and %.2f status writes per created account",
		elapsed.Round(time.Millisecond), bound, over, recPerCreate, writesPerCreate)
	fmt.Fprintf(&b.report, `## Rate limit: %d PartnerAccounts at the documented 100 creations per minute

The simulator enforces 100 creations per minute per key at time scale %g (a minute lasts %v);
the manager's limiter is matched (--account-create-limit %s). No account can be created faster
than %d full windows after the first batch: the bound is %v.

| measure | value |
| --- | --- |
| time until all Ready | %v |
| against the bound | %+.1f%% |
| per object p50 / p99 | %v / %v |
| account creations / link generations / reads | %d / %d / %d |
| 429 answers | %d |
| reconciles of PartnerAccounts per created account (at most 3: each freed slot wakes one waiting PartnerAccount) | %.2f |
| status writes of PartnerAccounts per created account (counted by kube-apiserver) | %.2f |
| Ready links valid | %d/%d |
| users with an active LoginLink that have exactly one valid link | %d/%d |

`, n, scale, window, scaled(limit, scale), int(math.Ceil(float64(n)/float64(limit.N)))-1, bound,
		elapsed.Round(time.Millisecond), over, pct(times, 0.5).Round(time.Millisecond), pct(times, 0.99).Round(time.Millisecond),
		creates, links, gets, tooMany, recPerCreate, writesPerCreate, lr.ReadyValid, lr.Ready, lr.UsersOK, lr.Users)
	return nil
}

func (b *bench) steadyRun() error {
	m, scale := b.o.steadyN, b.o.steadyScl
	hour := time.Duration(float64(time.Hour) / scale)
	b.logf("steady-state run: %d LoginLinks of 1 hour and %d PartnerAccounts for one API hour (%v), resync every 10s", m, m, hour)
	w, err := b.newWorld("steady", sim.Config{TimeScale: scale},
		"--account-create-limit", scaled(fifteenth.DefaultAccountCreateRate, scale),
		"--login-link-limit", scaled(fifteenth.DefaultLoginLinkRate, scale), "--sync-period", "10s")
	if err != nil {
		return err
	}
	defer w.stop()
	ids, err := w.preCreate(m, "steady")
	if err != nil {
		return err
	}
	if err := w.apply(m, ids, func(s *partnersv1.LoginLinkSpec) { s.ExpiryHours = ptr.To[int32](1) }); err != nil {
		return err
	}
	if _, err := w.waitReady(m+m+(m+1)/2+m, 10*time.Minute); err != nil {
		return err
	}
	before, err := w.stats()
	if err != nil {
		return err
	}
	renewedBefore, err := b.renewedEvents(w.ns)
	if err != nil {
		return err
	}
	recBefore, _ := w.metric("controller_runtime_reconcile_total")
	llWritesBefore, paWritesBefore, err := b.statusWrites()
	if err != nil {
		return err
	}
	time.Sleep(hour) // the measured period itself: one API hour passes
	after, err := w.stats()
	if err != nil {
		return err
	}
	renewedAfter, err := b.renewedEvents(w.ns)
	if err != nil {
		return err
	}
	recAfter, _ := w.metric("controller_runtime_reconcile_total")
	llWrites, paWrites, err := b.statusWrites()
	if err != nil {
		return err
	}
	llWrites, paWrites = llWrites-llWritesBefore, paWrites-paWritesBefore
	reconciles := recAfter - recBefore
	perReconcile := 0.0
	if reconciles > 0 {
		perReconcile = float64(llWrites+paWrites) / reconciles
	}
	lr, err := w.links("steady")
	if err != nil {
		return err
	}
	calls, tooMany := 0, 0
	for route, codes := range after.Requests {
		if !strings.HasPrefix(route, "POST /v1beta") && !strings.HasPrefix(route, "GET /v1beta") {
			continue
		}
		for code, n := range codes {
			d := n - before.Requests[route][code]
			calls += d
			if code == "429" {
				tooMany += d
			}
		}
	}
	renewals := renewedAfter - renewedBefore
	if tooMany > 0 {
		b.fail("steady: %d answers were 429", tooMany)
	}
	if calls != renewals {
		b.fail("steady: %d calls for %d renewals: resyncs or restarts cost calls", calls, renewals)
	}
	b.logf("steady-state run: %d calls, %d renewals, %.0f reconciles, %d status writes (%.3f per reconcile) in one API hour",
		calls, renewals, reconciles, llWrites+paWrites, perReconcile)
	fmt.Fprintf(&b.report, `## Steady state: one hour of API time

%d LoginLinks of 1-hour links and %d PartnerAccounts (their links last 168 hours) at time scale
%g: one API hour lasts %v. The manager resyncs every object every 10 s (--sync-period 10s).

| measure | value |
| --- | --- |
| API calls during the hour | %d |
| renewals during the hour (Renewed Events) | %d |
| calls that were not renewals (resyncs, restarts) | %d |
| reconciles during the hour | %.0f |
| status writes during the hour (PATCH/PUT of status, counted by kube-apiserver): LoginLinks / PartnerAccounts | %d / %d |
| status writes per reconcile | %.3f |
| 429 answers | %d |
| Ready links valid, at the end of the hour | %d/%d |
| users with an active LoginLink that have exactly one valid link | %d/%d |

`, m, m, scale, hour, calls, renewals, calls-renewals, reconciles, llWrites, paWrites, perReconcile, tooMany,
		lr.ReadyValid, lr.Ready, lr.UsersOK, lr.Users)
	return nil
}

func (b *bench) renewedEvents(ns string) (int, error) {
	var evs eventsv1.EventList
	if err := b.k8s.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range evs.Items {
		if e.Reason == "Renewed" {
			c := 1
			if e.Series != nil {
				c = int(e.Series.Count)
			}
			n += c
		}
	}
	return n, nil
}

func (b *bench) write(total time.Duration) error {
	args := strings.Join(os.Args[1:], " ")
	if args == "" {
		args = "(the defaults)"
	}
	gomemlimit := "unset"
	if b.o.memoryLimit != "" {
		gomemlimit = fmt.Sprintf("from a container limit of %s (MEMORY_LIMIT, as config/manager sets it): %.0f%% of it", b.o.memoryLimit, memlimit.Ratio*100)
	}
	if b.o.gomemlimit != "" {
		gomemlimit = b.o.gomemlimit
	}
	status := "All checks passed: no 429, no duplicate account, calls within 1% of the minimum, every Ready link valid, one valid link per user."
	if len(b.failures) > 0 {
		status = "FAILED: " + strings.Join(b.failures, "; ")
	}
	doc := fmt.Sprintf(`# Benchmark results

Produced by `+"`make bench`"+` (test/bench) on %s, in %v.
Machine: %s.
Flags: %s.
Managers: --max-concurrent-reconciles %d, GOMEMLIMIT %s.

%s

%s`, time.Now().UTC().Format(time.RFC3339), total.Round(time.Second), machine(), args, managerConcurrency, gomemlimit, status, b.report.String())
	if err := os.MkdirAll(filepath.Dir(b.o.out), 0o750); err != nil {
		return err
	}
	return os.WriteFile(b.o.out, []byte(doc), 0o600)
}

// Command bench measures the operator at scale and writes bench/results.md: N PartnerAccounts
// (half with a spouse) and N LoginLinks applied at once in a cluster holding 10,000 unrelated
// Secrets; a run at the documented 100 creations per minute (time-scaled); and one hour of API
// time with every link live. It runs the built manager against the local control plane and
// the simulator, and fails if a 429 was received, a duplicate account exists, the calls
// exceed the minimum by more than 1%, a Ready LoginLink's Secret holds a link the simulator
// does not report valid, or a user with an active LoginLink has other than one valid link.
// The scale run also reports the manager's live heap and RSS per object, where the time goes
// (workers, queues, CPU of each process), the cost of one idle resync of the Ready objects
// (it fails on any API call, or status writes above 1% of the reconciles), and the control
// plane's write floor: the run's writes replayed by a plain client once the manager stopped.
// Run with `make bench` (BENCH_ARGS=-n 500 to scale down; the 10,000 run is
// BENCH_ARGS="-n 10000", optionally with -gomemlimit 200MiB; it takes tens of minutes).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	scheme = kruntime.NewScheme()
	ctx    = context.Background()
)

type options struct {
	n          int
	noise      int
	noiseBytes int
	rateN      int
	rateScale  float64
	steadyN    int
	steadyScl  float64
	out        string
	// gomemlimit is passed to every manager as GOMEMLIMIT (unset: the runtime's default).
	gomemlimit string
	// memoryLimit is passed to every manager as MEMORY_LIMIT, as config/manager's downward API
	// does with the container's limits.memory: the manager sets its soft limit from it.
	memoryLimit string
	// idleSync is the scale run manager's --sync-period: the idle measurement lasts one.
	idleSync time.Duration
	// floorWorkers issue the floor's writes: the manager's reconcile workers.
	floorWorkers int
	// heapProfile, when set, is where the scale run saves the manager's heap profile, taken
	// with the live heap (after a forced collection, all Ready): go tool pprof reads it.
	heapProfile string
}

func main() {
	o := options{}
	flag.IntVar(&o.n, "n", 1000, "PartnerAccounts and LoginLinks in the scale run")
	flag.IntVar(&o.noise, "noise-secrets", 10000, "unrelated Secrets in the cluster")
	flag.IntVar(&o.noiseBytes, "noise-bytes", 10*1024, "size of each unrelated Secret")
	flag.IntVar(&o.rateN, "rate-n", 1000, "PartnerAccounts in the rate-limit run")
	flag.Float64Var(&o.rateScale, "rate-scale", 10, "time scale of the rate-limit run")
	flag.IntVar(&o.steadyN, "steady-n", 200, "LoginLinks (and as many PartnerAccounts) in the steady-state run")
	flag.Float64Var(&o.steadyScl, "steady-scale", 60, "time scale of the steady-state run (one API hour lasts 3600/scale s)")
	flag.StringVar(&o.gomemlimit, "gomemlimit", "", "GOMEMLIMIT of the manager processes, e.g. 200MiB (default unset); it overrides -memory-limit")
	flag.StringVar(&o.memoryLimit, "memory-limit", "256Mi", "container memory limit the managers are told (MEMORY_LIMIT, as config/manager's downward API); empty: none")
	flag.DurationVar(&o.idleSync, "idle-sync-period", time.Minute, "--sync-period of the scale run's manager; the idle cost is measured over one")
	flag.IntVar(&o.floorWorkers, "floor-workers", 2*managerConcurrency, "concurrent writers of the write floor (default: the manager's two main controllers' workers)")
	flag.StringVar(&o.heapProfile, "heap-profile", "", "file to save the scale run manager's heap profile in, taken when all are Ready (default: not saved)")
	flag.StringVar(&o.out, "out", filepath.Join(testenv.RepoRoot(), "bench", "results.md"), "results file")
	flag.Parse()
	// The bench's own clients and envtest log nothing worth reading; without a logger
	// controller-runtime prints a stack trace instead.
	log.SetLogger(logr.Discard())
	_ = clientgoscheme.AddToScheme(scheme)
	_ = partnersv1.AddToScheme(scheme)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	o          options
	dir        string
	kubeconfig string
	manager    string
	k8s        client.Client
	cfg        *rest.Config
	report     strings.Builder
	worlds     int
	failures   []string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failures = append(b.failures, msg)
	b.logf("FAIL: %s", msg)
}

func run(o options) error {
	b := &bench{o: o}
	var err error
	if b.dir, err = os.MkdirTemp("", "bench"); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(b.dir) }()
	b.logf("building the manager")
	b.manager = filepath.Join(b.dir, "manager")
	if out, err := exec.Command("go", "build", "-o", b.manager, testenv.RepoRoot()).CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	b.logf("starting the control plane")
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	b.kubeconfig = filepath.Join(b.dir, "kubeconfig")
	if err := testenv.WriteAdminKubeconfig(env, b.kubeconfig); err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	b.cfg = cfg
	if b.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := b.noise(); err != nil {
		return err
	}
	started := time.Now()
	if err := b.scaleRun(); err != nil {
		return err
	}
	if err := b.rateRun(); err != nil {
		return err
	}
	if err := b.steadyRun(); err != nil {
		return err
	}
	b.logf("all runs done in %v", time.Since(started).Round(time.Second))
	if err := b.write(time.Since(started)); err != nil {
		return err
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d check(s) failed: %s", len(b.failures), strings.Join(b.failures, "; "))
	}
	return nil
}

// noiseNS holds the unrelated Secrets: the scale run's own namespace, which the manager
// watches, so that only the label-filtered Secret cache keeps them out of its memory.
const noiseNS = "scale"

// noise creates the unrelated Secrets the manager must not cache.
func (b *bench) noise() error {
	b.logf("creating %d unrelated Secrets of %d bytes in the watched namespace %s", b.o.noise, b.o.noiseBytes, noiseNS)
	if err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: noiseNS}}); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("x"), b.o.noiseBytes)
	return parallel(b.o.noise, 32, func(i int) error {
		return b.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("noise-%d", i), Namespace: noiseNS},
			Data: map[string][]byte{"payload": payload}})
	})
}

func parallel(n, workers int, f func(i int) error) error {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// world is one run: a namespace, a simulator, a manager process.
type world struct {
	b       *bench
	ns      string
	simURL  string
	srv     *httptest.Server
	cmd     *exec.Cmd
	logs    *bytes.Buffer
	metrics string
	pprof   string
	done    chan struct{}
	stopped sync.Once
}

// managerConcurrency is the managers' --max-concurrent-reconciles.
const managerConcurrency = 8

func (b *bench) newWorld(ns string, cfg sim.Config, args ...string) (*world, error) {
	if err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	w := &world{b: b, ns: ns, logs: &bytes.Buffer{}, done: make(chan struct{})}
	// Each world's manager reads claims cluster-wide (it watches some namespaces), so it sees
	// the earlier worlds' PartnerAccounts: their simulators' account IDs must not overlap.
	b.worlds++
	cfg.FirstAccountID = int64(b.worlds) * 10_000_000
	w.srv = httptest.NewServer(sim.New(cfg))
	w.simURL = w.srv.URL
	key := filepath.Join(b.dir, ns+"-key")
	if err := os.WriteFile(key, []byte("15th_bench\n"), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	w.metrics = fmt.Sprintf("127.0.0.1:%d", port)
	if port, err = freePort(); err != nil {
		return nil, err
	}
	// The heap is read from pprof's MemStats, which costs the manager nothing per object
	// (its /metrics computes the per-object series at each scrape).
	w.pprof = fmt.Sprintf("127.0.0.1:%d", port)
	// The per-user election Leases live in the run's namespace.
	electionArgs := []string{"--election-namespace", ns, "--account-access-namespaces", ns}
	w.cmd = exec.Command(b.manager, append(append([]string{"--kubeconfig", b.kubeconfig, "--api-url", w.simURL, "--api-key-file", key,
		"--watch-namespaces", ns, "--metrics-bind-address", w.metrics, "--metrics-secure=false", "--health-probe-bind-address", "0",
		"--max-concurrent-reconciles", strconv.Itoa(managerConcurrency), "--pprof-bind-address", w.pprof}, electionArgs...), args...)...)
	w.cmd.Env = os.Environ()
	if b.o.memoryLimit != "" {
		q, err := resource.ParseQuantity(b.o.memoryLimit)
		if err != nil {
			return nil, fmt.Errorf("-memory-limit: %w", err)
		}
		w.cmd.Env = append(w.cmd.Env, fmt.Sprintf("MEMORY_LIMIT=%d", q.Value()))
	}
	if b.o.gomemlimit != "" {
		w.cmd.Env = append(w.cmd.Env, "GOMEMLIMIT="+b.o.gomemlimit)
	}
	w.cmd.Stdout, w.cmd.Stderr = &syncWriter{w: w.logs}, &syncWriter{w: w.logs}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	// Wait for the manager's caches: its metrics answer and a reconcile count appears.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := w.metric("controller_runtime_active_workers"); err == nil {
			return w, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, errors.New("the manager did not start")
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop ends the manager and the simulator; later calls do nothing.
func (w *world) stop() {
	w.stopped.Do(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(time.Minute):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		w.srv.Close()
	})
}

// metric sums a metric's samples from the manager's /metrics.
func (w *world) metric(name string) (float64, error) {
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no %s", name)
	}
	return sum, nil
}

// rss returns the manager's resident memory now and at its peak, in MiB.
func (w *world) rss() (now, peak float64) {
	st := procStatus(w.cmd.Process.Pid)
	return st["VmRSS:"] / mib, st["VmHWM:"] / mib
}

func (w *world) stats() (sim.Stats, error) {
	var s sim.Stats
	resp, err := http.Get(w.simURL + "/_sim/stats")
	if err != nil {
		return s, err
	}
	defer func() { _ = resp.Body.Close() }()
	return s, jsonDecode(resp, &s)
}

func (w *world) accounts() ([]sim.Account, error) {
	var a []sim.Account
	resp, err := http.Get(w.simURL + "/_sim/accounts")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	return a, jsonDecode(resp, &a)
}

func (w *world) preCreate(n int, prefix string) ([]int64, error) {
	api, err := fifteenth.New(fifteenth.Options{BaseURL: w.simURL, Key: fifteenth.StaticKey("15th_bench"),
		AccountCreateRate: fifteenth.Rate{N: 1 << 30, Per: time.Minute}})
	if err != nil {
		return nil, err
	}
	ids := make([]int64, n)
	err = parallel(n, 16, func(i int) error {
		for {
			a, err := api.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: fmt.Sprintf("%s%d@bench.example", prefix, i), FirstName: "B", LastName: "N"})
			if at, limited := fifteenth.RetryAt(err); limited {
				// Setup obeys the simulator's creation limit too: wait for its reset.
				time.Sleep(time.Until(at))
				continue
			}
			if err == nil {
				ids[i] = int64(a.ID)
			}
			return err
		}
	})
	return ids, err
}

func (w *world) apply(nAccounts int, linkIDs []int64, mutate func(*partnersv1.LoginLinkSpec)) error {
	if err := parallel(nAccounts, 16, func(i int) error {
		pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pa-%d", i), Namespace: w.ns},
			Spec: partnersv1.PartnerAccountSpec{Email: fmt.Sprintf("%s-%d@clients.example", w.ns, i), FirstName: "Client", LastName: strconv.Itoa(i)}}
		if i%2 == 0 {
			pa.Spec.Spouse = &partnersv1.SpouseSpec{Email: fmt.Sprintf("%s-%d-spouse@clients.example", w.ns, i), FirstName: "Spouse", LastName: strconv.Itoa(i)}
		}
		return w.b.k8s.Create(ctx, pa)
	}); err != nil {
		return err
	}
	return parallel(len(linkIDs), 16, func(i int) error {
		ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ll-%d", i), Namespace: w.ns},
			Spec: partnersv1.LoginLinkSpec{AccountID: ptr.To(linkIDs[i]), SendNotification: ptr.To(false)}}
		if mutate != nil {
			mutate(&ll.Spec)
		}
		return w.b.k8s.Create(ctx, ll)
	})
}

func ready(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// waitReady polls until every PartnerAccount and LoginLink of the world is Ready, and returns
// each object's time from creation to the first poll that saw it Ready. The timeout grows
// with want beyond 3,500 objects; so does the poll interval (250 ms up to 3,500), so that
// listing every object does not become the control plane's main load.
func (w *world) waitReady(want int, timeout time.Duration) ([]time.Duration, error) {
	const base = 3500
	interval := 250 * time.Millisecond
	if want > base {
		timeout = max(timeout, timeout*time.Duration(want)/base)
		interval = interval * time.Duration(want) / base
	}
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var pas partnersv1.PartnerAccountList
		var lls partnersv1.LoginLinkList
		if err := w.b.k8s.List(ctx, &pas, client.InNamespace(w.ns)); err != nil {
			return nil, err
		}
		if err := w.b.k8s.List(ctx, &lls, client.InNamespace(w.ns)); err != nil {
			return nil, err
		}
		now := time.Now()
		total := 0
		record := func(kind string, m metav1.ObjectMeta, conds []metav1.Condition) {
			total++
			if _, ok := seen[kind+m.Name]; !ok && ready(conds) {
				seen[kind+m.Name] = now.Sub(m.CreationTimestamp.Time)
			}
		}
		for _, p := range pas.Items {
			record("pa/", p.ObjectMeta, p.Status.Conditions)
		}
		for _, l := range lls.Items {
			record("ll/", l.ObjectMeta, l.Status.Conditions)
		}
		if total >= want && len(seen) == total {
			out := make([]time.Duration, 0, len(seen))
			for _, d := range seen {
				out = append(out, d)
			}
			slices.Sort(out)
			return out, nil
		}
		time.Sleep(interval)
	}
	return nil, fmt.Errorf("not every object was Ready within %v", timeout)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)-1) * p)
	return d[i]
}

// checkAPI applies the pass criteria and returns the call counts by route.
// checkAPI checks the run's calls against their minimum: minCreates creations, minLinks
// generations and minReads Retrieve Account calls (one per accountID LoginLink without a
// userEmail, which learns the holder's email before it competes for the user).
func (w *world) checkAPI(run string, minCreates, minLinks, minReads int, preCreated int) (creates, links, gets, tooMany int, err error) {
	st, err := w.stats()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for route, codes := range st.Requests {
		for code, n := range codes {
			if code == "429" {
				tooMany += n
			}
			switch route {
			case "POST /v1beta/accounts":
				creates += n
			case "POST /v1beta/accounts/{id}/login-link":
				links += n
			case "GET /v1beta/accounts/{id}":
				gets += n
			}
		}
	}
	creates -= preCreated
	if tooMany > 0 {
		w.b.fail("%s: %d answers were 429", run, tooMany)
	}
	accounts, err := w.accounts()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	emails := map[string]bool{}
	for _, a := range accounts {
		if emails[strings.ToLower(a.Email)] {
			w.b.fail("%s: duplicate account for %s", run, a.Email)
		}
		emails[strings.ToLower(a.Email)] = true
	}
	if len(accounts) != minCreates+preCreated {
		w.b.fail("%s: %d accounts, want %d", run, len(accounts), minCreates+preCreated)
	}
	minimum := minCreates + minLinks + minReads
	if total := creates + links + gets; float64(total) > 1.01*float64(minimum) {
		w.b.fail("%s: %d calls exceed the minimum %d by more than 1%%", run, total, minimum)
	}
	return creates, links, gets, tooMany, nil
}

func jsonDecode(resp *http.Response, v any) error {
	return jsonNewDecoder(resp).Decode(v)
}

func machine() string {
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf("%.0f GiB", kb/1024/1024)
		}
	}
	return fmt.Sprintf("%d cores (%s), %s memory, %s/%s, %s, host %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version(), host)
}

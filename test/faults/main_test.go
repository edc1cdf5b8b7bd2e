//go:build faults

// Package faults proves the operator's promises under faults: crashes at random moments,
// API failures, competing LoginLinks under both, a leader change, an API server restart,
// suspension during renewal, a key rotation, and two APIs at once (a second one behind a
// ClusterPartnerConfig). Every scenario ends by checking the invariants, in the simulator of
// each object's config: exactly one Fifteenth account per PartnerAccount, every Ready LoginLink's
// Secret holding a valid link ("Ready links valid: N/N" in its log), exactly one valid link
// per user with an active LoginLink, every managed Secret's link valid (or removed from a
// superseded LoginLink's Secret), no token in any log line or Event.
// Run with `make test-faults`.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	env     *envtest.Environment
	apiHost string
	// restarted is the kube-apiserver started again by restartAPIServer, if any.
	restarted  *exec.Cmd
	k8s        client.Client
	kubeconfig string
	managerBin string
	scheme     = runtime.NewScheme()
	ctx        = context.Background()
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = partnersv1.AddToScheme(scheme)
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "faults")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	managerBin = filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", managerBin, testenv.RepoRoot()).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %w: %s", err, out)
	}
	// kube-controller-manager runs as in a cluster: its garbage collector removes what a
	// deleted owner leaves behind, while the faults happen.
	e, cfg, err := testenv.StartWith(testenv.Options{CRDs: true, ControllerManager: true})
	if err != nil {
		return 0, err
	}
	env, apiHost = e, cfg.Host
	defer func() {
		if restarted != nil {
			// envtest no longer knows this process: stop it here.
			_ = restarted.Process.Kill()
			_ = restarted.Wait()
		}
		_ = testenv.Stop(env)
	}()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := testenv.WriteAdminKubeconfig(env, kubeconfig); err != nil {
		return 0, err
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// restartAPIServer SIGKILLs kube-apiserver and runs its command line again, so that it comes
// back with the same certificates and the same etcd.
func restartAPIServer(t *testing.T) {
	t.Helper()
	u, err := url.Parse(apiHost)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	pid, args := 0, []string(nil)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(raw, []byte("kube-apiserver")) || !bytes.Contains(raw, []byte("--secure-port="+port+"\x00")) {
			continue
		}
		pid, args = n, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	}
	if pid == 0 {
		t.Fatalf("no kube-apiserver serving port %s", port)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if restarted != nil {
		_ = restarted.Process.Kill()
		_ = restarted.Wait()
	}
	restarted = cmd
	g := NewWithT(t)
	g.Eventually(func() error {
		return k8s.List(ctx, &corev1.NamespaceList{})
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// proc is one manager process.
type proc struct {
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	done chan struct{}
}

func (p *proc) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// world is one scenario: a namespace, a simulator (and more behind ClusterPartnerConfigs, see
// addClusterConfig), and the managers started for it.
type world struct {
	t       *testing.T
	g       *WithT
	ns      string
	simURL  string
	firstID int64 // the first account ID of the world's simulator
	keyFile string
	args    []string
	procs   []*proc
	// sims are the simulators the world's objects reach: sims[0] the default one (simURL, the
	// manager's flags), then one per addClusterConfig.
	sims []*simAPI
}

// simAPI is one simulator and the config through which the world's objects reach it.
type simAPI struct {
	name string // in the logs
	url  string
	key  string // the key it accepts
	// ref is the partnerConfigRef of the objects that reach it: nil for the default (the
	// manager's flags).
	ref *partnersv1.PartnerConfigReference
	// preCreated counts the accounts preCreateIn created in it. For the default simulator,
	// invariants and killAtRandomMoments take the count as an argument instead.
	preCreated int
}

// configKey is the config an object names: "" for none (the default), else "Kind/name".
func configKey(ref *partnersv1.PartnerConfigReference) string {
	if ref == nil {
		return ""
	}
	return ref.Kind + "/" + ref.Name
}

// simOf is the simulator serving a config (nil: none).
func (w *world) simOf(config string) *simAPI {
	for _, s := range w.sims {
		if configKey(s.ref) == config {
			return s
		}
	}
	return nil
}

// label prefixes a figure with the simulator's name when the world has more than one.
func (w *world) label(s *simAPI) string {
	if len(w.sims) < 2 {
		return ""
	}
	return s.name + " simulator: "
}

type worldOpts struct {
	sim  sim.Config
	args []string // extra manager flags
}

// lastFirstID hands each simulator of the suite its own account IDs (distinctIDs).
var lastFirstID atomic.Int64

// distinctIDs starts a simulator's accounts where no earlier simulator of the suite has been:
// the suite's namespaces outlive their tests, and a manager that watches some namespaces
// reads claims cluster-wide, so an earlier test's PartnerAccount claiming the same ID on the
// default endpoint would make this test's account another namespace's (AccountNotPermitted).
func distinctIDs(c sim.Config) sim.Config {
	if c.FirstAccountID == 0 {
		c.FirstAccountID = lastFirstID.Add(1_000_000)
	}
	return c
}

func newWorld(t *testing.T, name string, o worldOpts) *world {
	w := &world{t: t, g: NewWithT(t), ns: name}
	w.g.SetDefaultEventuallyTimeout(3 * time.Minute)
	w.g.SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	w.g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	o.sim = distinctIDs(o.sim)
	w.firstID = o.sim.FirstAccountID
	srv := httptest.NewServer(sim.New(o.sim))
	t.Cleanup(srv.Close)
	w.simURL = srv.URL
	w.sims = []*simAPI{{name: "default", url: srv.URL, key: "15th_faults_key_one"}}
	w.keyFile = filepath.Join(t.TempDir(), "api-key")
	w.setKey("15th_faults_key_one")
	// The per-user election Leases live in the scenario's namespace.
	electionArgs := []string{"--election-namespace", name, "--account-access-namespaces", name}
	w.args = append(append([]string{"--kubeconfig", kubeconfig, "--api-url", w.simURL, "--api-key-file", w.keyFile,
		"--watch-namespaces", name, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--zap-log-level", "debug", "--api-timeout", "2s"}, electionArgs...), o.args...)
	t.Cleanup(func() {
		for _, p := range w.procs {
			if !p.exited() {
				p.signal(syscall.SIGTERM)
			}
		}
		if t.Failed() && len(w.procs) > 0 {
			l := w.procs[len(w.procs)-1].logs.String()
			t.Logf("last manager log (tail):\n%s", l[max(0, len(l)-4000):])
		}
	})
	return w
}

// setKey replaces the API key file atomically, as kubelet does with a Secret volume.
func (w *world) setKey(key string) {
	tmp := w.keyFile + ".tmp"
	w.g.Expect(os.WriteFile(tmp, []byte(key+"\n"), 0o600)).To(Succeed())
	w.g.Expect(os.Rename(tmp, w.keyFile)).To(Succeed())
}

func (w *world) startManager(extra ...string) *proc {
	p := &proc{logs: &testenv.LogBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(managerBin, append(append([]string{}, w.args...), extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	w.g.Expect(p.cmd.Start()).To(Succeed())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	w.procs = append(w.procs, p)
	return p
}

func (w *world) simDo(method, path, body string, out any) {
	w.simDoAt(w.simURL, method, path, body, out)
}

// simDoAt calls the simulator at base.
func (w *world) simDoAt(base, method, path, body string, out any) {
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	w.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	w.g.Expect(resp.StatusCode).To(BeNumerically("<", 300), "%s %s", method, path)
	if out != nil {
		w.g.Expect(json.NewDecoder(resp.Body).Decode(out)).To(Succeed())
	}
}

func (w *world) stats() sim.Stats { return w.statsAt(w.simURL) }

func (w *world) statsAt(base string) sim.Stats {
	var s sim.Stats
	w.simDoAt(base, "GET", "/_sim/stats", "", &s)
	return s
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// calls counts the API requests by route pattern.
func (w *world) calls() (creates, links, gets int) { return w.callsAt(w.simURL) }

// callsAt counts the API requests of the simulator at base by route pattern.
func (w *world) callsAt(base string) (creates, links, gets int) {
	r := w.statsAt(base).Requests
	return sum(r["POST /v1beta/accounts"]), sum(r["POST /v1beta/accounts/{id}/login-link"]), sum(r["GET /v1beta/accounts/{id}"])
}

// preCreate creates n accounts directly in the simulator (for LoginLinks by accountID).
func (w *world) preCreate(n int, prefix string) []int64 { return w.preCreateIn(w.sims[0], n, prefix) }

// preCreateIn creates n accounts directly in the simulator s, with its key.
func (w *world) preCreateIn(s *simAPI, n int, prefix string) []int64 {
	s.preCreated += n
	api, err := fifteenth.New(fifteenth.Options{BaseURL: s.url, Key: fifteenth.StaticKey(s.key),
		AccountCreateRate: fifteenth.Rate{N: 1 << 30, Per: time.Minute}})
	w.g.Expect(err).NotTo(HaveOccurred())
	ids := make([]int64, n)
	for i := range n {
		a, err := api.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: fmt.Sprintf("%s%d@pre.example", prefix, i), FirstName: "P", LastName: "C"})
		w.g.Expect(err).NotTo(HaveOccurred())
		ids[i] = int64(a.ID)
	}
	return ids
}

func (w *world) applyAccounts(n int, prefix string, mutate ...func(*partnersv1.PartnerAccountSpec)) {
	for i := range n {
		pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: w.ns},
			Spec: partnersv1.PartnerAccountSpec{Email: fmt.Sprintf("%s%d@faults.example", prefix, i), FirstName: "F", LastName: "A"}}
		if i%2 == 0 {
			pa.Spec.Spouse = &partnersv1.SpouseSpec{Email: fmt.Sprintf("%s%d-spouse@faults.example", prefix, i), FirstName: "S", LastName: "A"}
		}
		for _, m := range mutate {
			m(&pa.Spec)
		}
		w.g.Expect(k8s.Create(ctx, pa)).To(Succeed())
	}
}

func (w *world) applyLinks(ids []int64, prefix string, mutate ...func(*partnersv1.LoginLinkSpec)) {
	for i, id := range ids {
		ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: w.ns},
			Spec: partnersv1.LoginLinkSpec{AccountID: ptr.To(id), SendNotification: ptr.To(false)}}
		for _, m := range mutate {
			m(&ll.Spec)
		}
		w.g.Expect(k8s.Create(ctx, ll)).To(Succeed())
	}
}

func readyOf(conds []metav1.Condition) metav1.ConditionStatus {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status
		}
	}
	return metav1.ConditionUnknown
}

// waitAllReady waits until every PartnerAccount of the world is Ready, and every LoginLink is
// Ready or Superseded by a Ready LoginLink of the same user (a LoginLink also reads Superseded
// while a generation of a killed manager is still in flight for its user: that one is not
// settled).
func (w *world) waitAllReady() {
	w.t.Helper()
	w.waitAllReadyWith(w.g)
}

func (w *world) waitAllReadyWith(gm Gomega) bool {
	w.t.Helper()
	return gm.Eventually(func(g Gomega) {
		var pas partnersv1.PartnerAccountList
		var lls partnersv1.LoginLinkList
		g.Expect(k8s.List(ctx, &pas, client.InNamespace(w.ns))).To(Succeed())
		g.Expect(k8s.List(ctx, &lls, client.InNamespace(w.ns))).To(Succeed())
		byName := map[string]*partnersv1.PartnerAccount{}
		for i, pa := range pas.Items {
			g.Expect(readyOf(pa.Status.Conditions)).To(Equal(metav1.ConditionTrue), "PartnerAccount %s: %v", pa.Name, pa.Status.Conditions)
			byName[pa.Name] = &pas.Items[i]
		}
		// user is the config and user a LoginLink holds.
		user := func(ll *partnersv1.LoginLink) string {
			return loginLinkConfig(ll, byName) + " " + testenv.UserKey(ll, nil)
		}
		held := map[string]bool{}
		for i, ll := range lls.Items {
			if testenv.Superseded(ll.Status.Conditions) {
				continue
			}
			g.Expect(readyOf(ll.Status.Conditions)).To(Equal(metav1.ConditionTrue), "LoginLink %s: %v", ll.Name, ll.Status.Conditions)
			held[user(&lls.Items[i])] = true
		}
		for i, ll := range lls.Items {
			if testenv.Superseded(ll.Status.Conditions) {
				g.Expect(held).To(HaveKey(user(&lls.Items[i])), "LoginLink %s is Superseded and no Ready LoginLink holds its user: %v", ll.Name, ll.Status.Conditions)
			}
		}
	}).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// lostCreationLinks counts the links that went with lost creation answers: every
// PartnerAccount that adopted its own account after a 409 lost its holder's link, and its
// spouse's if it has one.
func (w *world) lostCreationLinks() int {
	var pas partnersv1.PartnerAccountList
	w.g.Expect(k8s.List(ctx, &pas, client.InNamespace(w.ns))).To(Succeed())
	n := 0
	for _, pa := range pas.Items {
		if pa.Status.ExistingAccountID != 0 {
			n++
			if pa.Spec.Spouse != nil {
				n++
			}
		}
	}
	return n
}

// invariants checks what every scenario must end with: exactly one account per
// PartnerAccount, in the simulator of its config and in no other; every Ready LoginLink's
// Secret holding a link valid in the simulator of its config, one valid link per user with an
// active LoginLink, and every managed Secret's link valid (or removed, naming its holder); no
// token in any log or Event. preCreated counts the accounts created directly in the default
// simulator (the others count theirs). The readiness and link checks are soft: when objects
// do not become Ready, the links are still compared and every finding reported.
func (w *world) invariants(preCreated int) {
	w.t.Helper()
	soft := NewGomegaWithT(softT{w.t})
	allReady := w.waitAllReadyWith(soft)
	var pas partnersv1.PartnerAccountList
	w.g.Expect(k8s.List(ctx, &pas, client.InNamespace(w.ns))).To(Succeed())
	var lls partnersv1.LoginLinkList
	w.g.Expect(k8s.List(ctx, &lls, client.InNamespace(w.ns))).To(Succeed())
	for _, pa := range pas.Items {
		w.g.Expect(w.simOf(configKey(pa.Spec.PartnerConfigRef))).NotTo(BeNil(), "no simulator serves PartnerAccount %s's config", pa.Name)
	}
	for _, ll := range lls.Items {
		w.g.Expect(w.simOf(configKey(ll.Spec.PartnerConfigRef))).NotTo(BeNil(), "no simulator serves LoginLink %s's config", ll.Name)
	}

	// A link is settled once everything is Ready; when not, there is no point in waiting.
	settle := 30 * time.Second
	if !allReady {
		settle = 0
	}
	for _, s := range w.sims {
		pre := s.preCreated
		if s == w.sims[0] {
			pre = preCreated
		}
		var accounts []sim.Account
		w.simDoAt(s.url, "GET", "/_sim/accounts", "", &accounts)
		byEmail := map[string]int{}
		for _, a := range accounts {
			byEmail[strings.ToLower(a.Email)]++
		}
		mine := 0
		for _, pa := range pas.Items {
			want := 0
			if configKey(pa.Spec.PartnerConfigRef) == configKey(s.ref) {
				want = 1
				mine++
			}
			w.g.Expect(byEmail[strings.ToLower(pa.Spec.Email)]).To(Equal(want), "%saccounts for PartnerAccount %s", w.label(s), pa.Name)
		}
		w.g.Expect(accounts).To(HaveLen(mine+pre), "%sexactly one account per PartnerAccount", w.label(s))

		r := w.requireLinks(s, soft, settle)
		w.g.Expect(r.Secrets).NotTo(BeZero(), "%smanaged Secrets", w.label(s))
		if !w.t.Failed() {
			w.t.Logf("%sinvariants hold: %d PartnerAccounts, %d accounts, %d managed Secrets", w.label(s), mine, len(accounts), r.Secrets)
		}
	}
	for i, p := range w.procs {
		w.g.Expect(p.logs.String()).NotTo(ContainSubstring("tk_"), "manager %d's log holds a token", i)
	}
	var evs eventsv1.EventList
	w.g.Expect(k8s.List(ctx, &evs, client.InNamespace(w.ns))).To(Succeed())
	for _, e := range evs.Items {
		w.g.Expect(e.Note).NotTo(ContainSubstring("tk_"))
	}
}

// softT reports a failure without stopping the test, so that the checks after it still run.
type softT struct{ *testing.T }

func (s softT) Fatalf(format string, args ...any) { s.Helper(); s.Errorf(format, args...) }

type metav1Condition = metav1.Condition

func inNS(ns string) client.InNamespace { return client.InNamespace(ns) }

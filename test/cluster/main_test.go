// Package cluster_test runs the operator's reconcilers against a control plane that behaves as
// a real cluster: kube-apiserver with kube-controller-manager (garbage collector, namespace
// deletion, Deployments). It proves what only those controllers can show: deleting a
// PartnerAccount or a namespace removes the LoginLinks and Secrets without a call to the
// Fifteenth API and without deleting the Fifteenth account, and a LoginLink that goes with its
// owner or its namespace never generates a link.
//
// One control plane serves the package (TestMain); each test has its own namespace,
// simulator and manager.
package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	env     *envtest.Environment
	restCfg *rest.Config
	k8s     client.Client // reads the API server directly, never a cache
	scheme  = runtime.NewScheme()
	ctx     = context.Background()
	// electionNS holds the per-user Leases of every test's manager: a namespace no test deletes.
	electionNS = "election-" + rand.String(6)
)

const (
	poll    = 50 * time.Millisecond
	timeout = 30 * time.Second
	// holdFinalizer keeps an object Terminating until the test removes it.
	holdFinalizer = "test.partners.fifteenth.com/hold"
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
	start := time.Now()
	e, cfg, err := testenv.StartWith(testenv.Options{CRDs: true, ControllerManager: true})
	if err != nil {
		return 0, fmt.Errorf("cannot start the test control plane: %w", err)
	}
	fmt.Fprintf(os.Stderr, "cluster: control plane with kube-controller-manager ready in %s\n", time.Since(start).Round(time.Millisecond))
	env, restCfg = e, cfg
	defer func() { _ = testenv.Stop(env) }()
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: electionNS}}); err != nil {
		return 0, err
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "kube-controller-manager's log (last lines):\n%s\n", lastLines(testenv.ControllerManagerLog(env), 40))
	}
	return code, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// world is one test: a namespace, a simulator and a manager running the reconcilers there.
type world struct {
	t      *testing.T
	g      *WithT
	ns     string
	simURL string
	logs   *testenv.LogBuffer
	api    *fifteenth.Client
	stop   func()
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, g: NewWithT(t), ns: "t-" + rand.String(6), logs: &testenv.LogBuffer{}}
	w.g.SetDefaultEventuallyTimeout(timeout)
	w.g.SetDefaultEventuallyPollingInterval(poll)
	w.g.SetDefaultConsistentlyDuration(2 * time.Second)
	w.g.SetDefaultConsistentlyPollingInterval(poll)
	w.g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}})).To(Succeed())

	srv := httptest.NewServer(sim.New(sim.Config{}))
	t.Cleanup(srv.Close)
	w.simURL = srv.URL
	api, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: fifteenth.StaticKey("15th_test"), Timeout: 5 * time.Second})
	w.g.Expect(err).NotTo(HaveOccurred())
	w.api = api
	w.start()
	t.Cleanup(func() {
		w.stop()
		if strings.Contains(w.logs.String(), "tk_") {
			t.Errorf("a token appears in the manager's logs")
		}
		if t.Failed() {
			t.Logf("manager's log (last lines):\n%s", lastLines(w.logs.String(), 60))
		}
	})
	return w
}

// start starts a manager running the reconcilers in the world's namespace; stop stops it (a
// manager restart is stop, then start).
func (w *world) start() {
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 zap.New(zap.WriteTo(w.logs), zap.UseDevMode(true), zap.Level(zapcore.Level(-1))),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{w.ns: {}, electionNS: {}}},
	})
	w.g.Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(ctx)
	w.g.Expect(controllers.Setup(mctx, mgr, controllers.Config{
		API: w.api, APIEndpoint: w.simURL, APITimeout: 5 * time.Second, ElectionNamespace: electionNS,
		AccountAccessNamespaces: w.ns, SecretTTL: 300 * time.Millisecond,
		Controller: controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4},
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			w.t.Errorf("manager: %v", err)
		}
	}()
	w.stop = func() {
		cancel()
		<-done
		w.stop = func() {}
	}
}

func (w *world) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: w.ns, Name: name}
}

func (w *world) simGet(path string, v any) {
	w.t.Helper()
	resp, err := http.Get(w.simURL + path)
	w.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	w.g.Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}

// apiCalls counts the requests the simulator received on its API (not its /_sim/ surface),
// by route.
func (w *world) apiCalls() map[string]int {
	var st sim.Stats
	w.simGet("/_sim/stats", &st)
	out := map[string]int{}
	for route, codes := range st.Requests {
		if strings.Contains(route, "/v1beta/") {
			for _, n := range codes {
				out[route] += n
			}
		}
	}
	return out
}

// settle waits until the simulator received no API request for a second, and returns the
// counts then.
func (w *world) settle() map[string]int {
	w.t.Helper()
	var last map[string]int
	var since time.Time
	w.g.Eventually(func() bool {
		cur := w.apiCalls()
		if !reflect.DeepEqual(cur, last) {
			last, since = cur, time.Now()
			return false
		}
		return time.Since(since) >= time.Second
	}).Should(BeTrue(), "the API calls settle")
	return last
}

func (w *world) simAccounts() []sim.Account {
	var accounts []sim.Account
	w.simGet("/_sim/accounts", &accounts)
	return accounts
}

func readyReason(conds []metav1.Condition) (metav1.ConditionStatus, string) {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status, c.Reason
		}
	}
	return metav1.ConditionUnknown, ""
}

// account creates a PartnerAccount with a spouse and waits until it and both its LoginLinks
// are Ready with their Secrets. It returns the account's id.
func (w *world) account(name string) int64 {
	w.t.Helper()
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec: partnersv1.PartnerAccountSpec{Email: name + "@example.com", FirstName: "John", LastName: "Doe",
			Spouse: &partnersv1.SpouseSpec{Email: name + "-spouse@example.com", FirstName: "Jane", LastName: "Doe"}}}
	w.g.Expect(k8s.Create(ctx, pa)).To(Succeed())
	w.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, w.key(name), pa)).To(Succeed())
		s, _ := readyReason(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue))
		for _, ll := range []string{name + "-holder", name + "-spouse"} {
			l := &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, w.key(ll), l)).To(Succeed())
			s, r := readyReason(l.Status.Conditions)
			g.Expect(s).To(Equal(metav1.ConditionTrue), "LoginLink %s: %s", ll, r)
			g.Expect(k8s.Get(ctx, w.key(l.Status.SecretName), &corev1.Secret{})).To(Succeed())
		}
	}).Should(Succeed())
	return pa.Status.AccountID
}

// dependents lists the names of the LoginLinks and managed Secrets of the namespace.
func (w *world) dependents(g Gomega) []string {
	var lls partnersv1.LoginLinkList
	g.Expect(k8s.List(ctx, &lls, client.InNamespace(w.ns))).To(Succeed())
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, client.InNamespace(w.ns),
		client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue})).To(Succeed())
	var out []string
	for _, ll := range lls.Items {
		out = append(out, "LoginLink "+ll.Name)
	}
	for _, s := range secrets.Items {
		out = append(out, "Secret "+s.Name)
	}
	return out
}

// expectAccountsKept checks that the simulator still holds the accounts ids.
func (w *world) expectAccountsKept(ids ...int64) {
	w.t.Helper()
	have := map[int64]bool{}
	for _, a := range w.simAccounts() {
		have[a.ID] = true
	}
	for _, id := range ids {
		w.g.Expect(have).To(HaveKey(id), "the Fifteenth account %d must never be deleted", id)
	}
}

// expectNoTokenInEvents checks that no Event of the namespace carries a token.
func (w *world) expectNoTokenInEvents() {
	var evs eventsv1.EventList
	w.g.Expect(k8s.List(ctx, &evs, client.InNamespace(w.ns))).To(Succeed())
	for _, e := range evs.Items {
		w.g.Expect(e.Note).NotTo(ContainSubstring("tk_"), "Event %s", e.Name)
	}
}

// hold adds holdFinalizer to obj; release removes it (and ignores an object already gone).
func hold(g *WithT, obj client.Object) {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	obj.SetFinalizers(append(obj.GetFinalizers(), holdFinalizer))
	g.Expect(k8s.Patch(ctx, obj, patch)).To(Succeed())
}

func release(g *WithT, obj client.Object) {
	g.Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return client.IgnoreNotFound(err)
		}
		var keep []string
		for _, f := range obj.GetFinalizers() {
			if f != holdFinalizer {
				keep = append(keep, f)
			}
		}
		obj.SetFinalizers(keep)
		return k8s.Update(ctx, obj)
	}).Should(Succeed())
}

func isGone(err error) bool { return apierrors.IsNotFound(err) }

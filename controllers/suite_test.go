package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	restCfg *rest.Config
	k8s     client.Client // reads the API server directly, never a cache
	scheme  = runtime.NewScheme()
)

const (
	poll    = 50 * time.Millisecond
	timeout = 20 * time.Second
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = partnersv1.AddToScheme(scheme)
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the test control plane:", err)
		os.Exit(1)
	}
	restCfg = cfg
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// harness is one test's world: a namespace, a simulator and a manager watching the namespace.
type harness struct {
	t      *testing.T
	g      *WithT
	ns     string
	simURL string
	api    *fifteenth.Client
	scale  float64
	logs   *testenv.LogBuffer

	// namespaces are those the manager watches (h.ns first); grants may link unmanaged accounts.
	namespaces []string
	grants     []string

	stopMgr func()
	// readOnly starts the next manager with --read-only (a standby).
	readOnly bool
}

type harnessOpts struct {
	sim sim.Config
	// syncPeriod is the manager's --account-sync-period.
	syncPeriod time.Duration
	// tenants are more namespaces the manager watches (tenants[i] is created as h.ns+"-"+it);
	// h.ns is the only one with a grant to adopt or link unmanaged accounts unless grants says.
	tenants []string
	// grants are the namespaces with that grant, by tenant name ("" is h.ns; default: h.ns).
	grants []string
	// readOnly starts the manager with --read-only (a standby).
	readOnly bool
}

// newHarness starts a simulator and a manager for one test. The client's limits match the
// simulator's time scale, as an operator configured for a time-scaled simulator would be.
func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, g: NewWithT(t), ns: "t-" + rand.String(6), logs: &testenv.LogBuffer{}, scale: o.sim.TimeScale, readOnly: o.readOnly}
	if h.scale == 0 {
		h.scale = 1
	}
	h.g.SetDefaultEventuallyTimeout(timeout)
	h.g.SetDefaultEventuallyPollingInterval(poll)
	h.g.SetDefaultConsistentlyDuration(time.Second)
	h.g.SetDefaultConsistentlyPollingInterval(poll)
	h.g.Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})).To(Succeed())
	h.namespaces = []string{h.ns}
	for _, tn := range o.tenants {
		ns := h.ns + "-" + tn
		h.g.Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		h.namespaces = append(h.namespaces, ns)
	}
	h.grants = []string{h.ns}
	if o.grants != nil {
		h.grants = nil
		for _, g := range o.grants {
			if g == "" {
				h.grants = append(h.grants, h.ns)
			} else {
				h.grants = append(h.grants, h.ns+"-"+g)
			}
		}
	}

	srv := httptest.NewServer(sim.New(o.sim))
	t.Cleanup(srv.Close)
	h.simURL = srv.URL
	accountRate, linkRate := o.sim.AccountRate, o.sim.LinkRate
	if accountRate.N == 0 {
		accountRate = fifteenth.DefaultAccountCreateRate
	}
	if linkRate.N == 0 {
		linkRate = fifteenth.DefaultLoginLinkRate
	}
	scaled := func(r fifteenth.Rate) fifteenth.Rate {
		return fifteenth.Rate{N: r.N, Per: time.Duration(float64(r.Per) / h.scale)}
	}
	api, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: fifteenth.StaticKey("15th_test"),
		Timeout: 5 * time.Second, AccountCreateRate: scaled(accountRate), LoginLinkRate: scaled(linkRate)})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.api = api
	h.startManager(o.syncPeriod)
	t.Cleanup(func() {
		h.stopManager()
		if t.Failed() {
			if dir := os.Getenv("TEST_LOG_DIR"); dir != "" {
				_ = os.WriteFile(dir+"/"+t.Name()+".log", []byte(h.logs.String()), 0o600)
			}
		}
		h.assertNoSecretsLeaked()
	})
	return h
}

func (h *harness) startManager(syncPeriod time.Duration) {
	h.t.Helper()
	watched := map[string]cache.Config{}
	for _, ns := range h.namespaces {
		watched[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 zap.New(zap.WriteTo(h.logs), zap.UseDevMode(true), zap.Level(zapcore.Level(-1))),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{
			DefaultNamespaces: watched,
			// The cache as main.go configures it.
			DefaultTransform: controllers.CacheTransform(),
		},
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	h.g.Expect(controllers.Setup(ctx, mgr, controllers.Config{
		API: h.api, APIEndpoint: h.simURL, APITimeout: 5 * time.Second, ElectionNamespace: h.ns, AccountSyncPeriod: syncPeriod,
		AccountAccessNamespaces: strings.Join(h.grants, ","), SecretTTL: 300 * time.Millisecond, ReadOnly: h.readOnly,
		Controller: controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4},
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}()
	h.stopMgr = func() { cancel(); <-done }
}

func (h *harness) stopManager() {
	if h.stopMgr != nil {
		h.stopMgr()
		h.stopMgr = nil
	}
}

// assertNoSecretsLeaked checks that no token appears in the manager's logs, in any Event, or
// in the status of any object of the namespace.
func (h *harness) assertNoSecretsLeaked() {
	h.t.Helper()
	if strings.Contains(h.logs.String(), "tk_") {
		h.t.Errorf("a token appears in the manager's logs")
	}
	var evs eventsv1.EventList
	if err := k8s.List(context.Background(), &evs, client.InNamespace(h.ns)); err == nil {
		for _, e := range evs.Items {
			if strings.Contains(e.Note, "tk_") {
				h.t.Errorf("a token appears in Event %s", e.Name)
			}
		}
	}
	var lls partnersv1.LoginLinkList
	var pas partnersv1.PartnerAccountList
	_ = k8s.List(context.Background(), &lls, client.InNamespace(h.ns))
	_ = k8s.List(context.Background(), &pas, client.InNamespace(h.ns))
	b, _ := json.Marshal([]any{lls, pas})
	if strings.Contains(string(b), "tk_") {
		h.t.Errorf("a token appears in a PartnerAccount or LoginLink")
	}
}

// createAccount creates an account directly in the simulator.
func (h *harness) createAccount(email string) int64 {
	h.t.Helper()
	a, err := h.api.CreateAccount(context.Background(), fifteenth.CreateAccountRequest{Email: email, FirstName: "Test", LastName: "User"})
	h.g.Expect(err).NotTo(HaveOccurred())
	return int64(a.ID)
}

func (h *harness) simPost(path, body string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.simURL+path, strings.NewReader(body))
	if strings.HasPrefix(path, "/_sim/faults") {
		req.Method = http.MethodPut
	}
	resp, err := http.DefaultClient.Do(req)
	h.g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	h.g.Expect(resp.StatusCode).To(BeNumerically("<", 300), "%s answered %d", path, resp.StatusCode)
}

func (h *harness) simGet(path string, v any) {
	h.t.Helper()
	resp, err := http.Get(h.simURL + path)
	h.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	h.g.Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}

func (h *harness) stats() sim.Stats {
	var s sim.Stats
	h.simGet("/_sim/stats", &s)
	return s
}

// linkCalls counts link generation requests the simulator received, by status code.
func (h *harness) linkCalls() map[string]int {
	return h.stats().Requests["POST /v1beta/accounts/{id}/login-link"]
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (h *harness) apiCalls() int {
	n := 0
	for route, codes := range h.stats().Requests {
		if strings.HasPrefix(route, "POST /v1beta") || strings.HasPrefix(route, "GET /v1beta") {
			n += total(codes)
		}
	}
	return n
}

func (h *harness) linkState(link string) string {
	var st sim.LinkState
	h.simGet("/_sim/links/"+link[strings.LastIndex(link, "/")+1:], &st)
	return st.State
}

func (h *harness) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: h.ns, Name: name}
}

// secretLink returns the link a Secret holds ("" when there is none).
func (h *harness) secretLink(name string) string {
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), h.key(name), s); err != nil {
		return ""
	}
	return string(s.Data[partnersv1.SecretKeyLoginLink])
}

func (h *harness) loginLink(name string) *partnersv1.LoginLink {
	ll := &partnersv1.LoginLink{}
	h.g.Expect(k8s.Get(context.Background(), h.key(name), ll)).To(Succeed())
	return ll
}

func readyOf(conds []metav1.Condition) (metav1.ConditionStatus, string) {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status, c.Reason
		}
	}
	return metav1.ConditionUnknown, ""
}

// expectLinkReady waits until the LoginLink has Ready with the given status and reason.
func (h *harness) expectLinkReason(name string, status metav1.ConditionStatus, reason string) *partnersv1.LoginLink {
	h.t.Helper()
	var ll *partnersv1.LoginLink
	h.g.Eventually(func(g Gomega) {
		ll = &partnersv1.LoginLink{}
		g.Expect(k8s.Get(context.Background(), h.key(name), ll)).To(Succeed())
		s, r := readyOf(ll.Status.Conditions)
		g.Expect(r).To(Equal(reason), "Ready reason of %s", name)
		g.Expect(s).To(Equal(status))
		g.Expect(ll.Status.ObservedGeneration).To(Equal(ll.Generation))
	}).Should(Succeed())
	return ll
}

// events returns the Events about an object, by reason.
func (h *harness) events(name string) map[string]int {
	var evs eventsv1.EventList
	h.g.Expect(k8s.List(context.Background(), &evs, client.InNamespace(h.ns))).To(Succeed())
	out := map[string]int{}
	for _, e := range evs.Items {
		if e.Regarding.Name == name {
			n := int(e.DeprecatedCount)
			if e.Series != nil {
				n = int(e.Series.Count)
			}
			out[e.Reason] += max(n, 1)
		}
	}
	return out
}

// reconciles returns how many reconciles the named controller completed, in all managers.
func reconciles(name string) float64 {
	families, _ := ctrlmetrics.Registry.Gather()
	n := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "controller") == name {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// statusWrites returns how many writes (PATCH, PUT, APPLY) of the status of this group's
// resource kube-apiserver has served, from its apiserver_request_total metric.
func statusWrites(t *testing.T, resource string) int {
	t.Helper()
	hc, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatalf("kube-apiserver client: %v", err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, strings.TrimSuffix(restCfg.Host, "/")+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("kube-apiserver /metrics: %s, %v", resp.Status, err)
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		write := strings.Contains(line, `verb="PATCH"`) || strings.Contains(line, `verb="PUT"`) || strings.Contains(line, `verb="APPLY"`)
		if !write || !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `group="partners.fifteenth.com"`) ||
			!strings.Contains(line, `subresource="status"`) || !strings.Contains(line, `resource="`+resource+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			n += int(v)
		}
	}
	return n
}

// gauge returns a gauge's value for namespace/name labels, and whether it exists.
func gauge(metric, ns, name string) (float64, bool) {
	families, _ := metrics.Gatherer.Gather()
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "namespace") == ns && labelValue(m, "name") == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// create creates obj in h.ns, unless it names another namespace already.
func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if obj.GetNamespace() == "" {
		obj.SetNamespace(h.ns)
	}
	h.g.Expect(k8s.Create(context.Background(), obj)).To(Succeed())
}

func linkFor(name string, id int64, mutate ...func(*partnersv1.LoginLinkSpec)) *partnersv1.LoginLink {
	ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: partnersv1.LoginLinkSpec{AccountID: &id, SendNotification: ptr.To(false)}}
	for _, m := range mutate {
		m(&ll.Spec)
	}
	return ll
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func inNS(ns string) client.InNamespace { return client.InNamespace(ns) }

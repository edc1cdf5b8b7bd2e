// Package standby_test proves the --read-only standby cluster: an active manager and a standby
// manager run on two control planes (this package starts two), fed the same manifests and
// talking to the same simulator. For one API hour the standby calls neither Create Account nor
// Generate Login Link and writes no Secret, every user keeps exactly one valid link, and the
// simulator generated exactly the links the active manager asked for. Then a failover: the
// active stops, the standby restarts without --read-only, adopts the existing accounts (the 409
// of each creation) and gives every user a fresh valid link, without a second account.
package standby_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
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
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	scheme = runtime.NewScheme()
	ctx    = context.Background()
	// clusters are the two control planes: the active one and the standby one.
	clusters [2]*rest.Config
)

const (
	// scale makes one API hour last 10 s: a 1-hour link is renewed after about 6.7 s.
	scale    = 360
	apiHour  = time.Hour / scale
	poll     = 100 * time.Millisecond
	deadline = time.Minute
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = partnersv1.AddToScheme(scheme)
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for i := range clusters {
		env, cfg, err := testenv.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cannot start a test control plane:", err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		clusters[i] = cfg
	}
	return m.Run()
}

// countingAPI counts the calls a manager makes, by method.
type countingAPI struct {
	fifteenth.API
	creates, generations, generated, gets atomic.Int64
}

func (c *countingAPI) CreateAccount(ctx context.Context, req fifteenth.CreateAccountRequest) (*fifteenth.Account, error) {
	c.creates.Add(1)
	return c.API.CreateAccount(ctx, req)
}

func (c *countingAPI) GenerateLoginLink(ctx context.Context, id fifteenth.AccountID, req fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error) {
	c.generations.Add(1)
	l, err := c.API.GenerateLoginLink(ctx, id, req)
	if err == nil {
		c.generated.Add(1)
	}
	return l, err
}

func (c *countingAPI) GetAccount(ctx context.Context, id fifteenth.AccountID) (*fifteenth.Account, error) {
	c.gets.Add(1)
	return c.API.GetAccount(ctx, id)
}

// manager is one manager process's reconcilers, in this process.
type manager struct {
	api  *countingAPI
	logs *testenv.LogBuffer
	stop func()
}

// startManager runs the reconcilers against a cluster, watching ns, with their own API client
// (as a manager in another cluster has), readOnly as --read-only.
func startManager(t *testing.T, g *WithT, cfg *rest.Config, ns, simURL string, readOnly bool) *manager {
	t.Helper()
	api, err := fifteenth.New(fifteenth.Options{BaseURL: simURL, Key: fifteenth.StaticKey("15th_test"), Timeout: 5 * time.Second,
		AccountCreateRate: fifteenth.Rate{N: 100, Per: time.Minute / scale}, LoginLinkRate: fifteenth.Rate{N: 10, Per: apiHour}})
	g.Expect(err).NotTo(HaveOccurred())
	m := &manager{api: &countingAPI{API: api}, logs: &testenv.LogBuffer{}}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 zap.New(zap.WriteTo(m.logs), zap.UseDevMode(true), zap.Level(zapcore.Level(-1))),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(ctx)
	// Both clusters carry the same grant (the same ClusterPartnerConfig or flags from Git): the
	// accounts exist when the standby takes over, and their 409s are adopted.
	g.Expect(controllers.Setup(mctx, mgr, controllers.Config{
		API: m.api, APIEndpoint: simURL, APITimeout: 5 * time.Second, ElectionNamespace: ns,
		AccountSyncPeriod: apiHour / 2, AccountAccessNamespaces: ns, SecretTTL: 300 * time.Millisecond, ReadOnly: readOnly,
		Controller: controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4},
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	stopped := false
	m.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(func() {
		m.stop()
		if strings.Contains(m.logs.String(), "tk_") {
			t.Errorf("a token appears in a manager's log")
		}
	})
	return m
}

func simGet(g Gomega, url string, v any) {
	resp, err := http.Get(url)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}

func ready(conds []metav1.Condition) (metav1.ConditionStatus, string, string) {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status, c.Reason, c.Message
		}
	}
	return metav1.ConditionUnknown, "", ""
}

// manifests are what Git applies to both clusters: two PartnerAccounts (one with a spouse),
// one adopting an existing account by spec.accountID, and two LoginLinks by accountID with
// 1-hour links.
func manifests(ns string, adopt int64, ids []int64) []client.Object {
	oneHour := &partnersv1.AccountLoginLinkSpec{ExpiryHours: ptr.To[int32](1)}
	objs := []client.Object{
		&partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "couple"},
			Spec: partnersv1.PartnerAccountSpec{Email: "holder@standby.example", FirstName: "H", LastName: "S", LoginLink: oneHour,
				Spouse: &partnersv1.SpouseSpec{Email: "spouse@standby.example", FirstName: "S", LastName: "S"}}},
		&partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "single"},
			Spec: partnersv1.PartnerAccountSpec{Email: "single@standby.example", FirstName: "O", LastName: "S", LoginLink: oneHour}},
		&partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "adopted"},
			Spec: partnersv1.PartnerAccountSpec{Email: "adopted@standby.example", FirstName: "A", LastName: "S", LoginLink: oneHour,
				AccountID: ptr.To(adopt)}},
	}
	for i, id := range ids {
		objs = append(objs, &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("by-id-%d", i)},
			Spec: partnersv1.LoginLinkSpec{AccountID: ptr.To(id), ExpiryHours: ptr.To[int32](1), SendNotification: ptr.To(false)}})
	}
	return objs
}

// expectAll waits until every PartnerAccount and LoginLink of ns in c passes check.
func expectAll(g *WithT, c client.Client, ns string, check func(g Gomega, kind, name string, conds []metav1.Condition)) {
	g.Eventually(func(g Gomega) {
		var pas partnersv1.PartnerAccountList
		var lls partnersv1.LoginLinkList
		g.Expect(c.List(ctx, &pas, client.InNamespace(ns))).To(Succeed())
		g.Expect(c.List(ctx, &lls, client.InNamespace(ns))).To(Succeed())
		g.Expect(pas.Items).To(HaveLen(3))
		g.Expect(lls.Items).To(HaveLen(2 + 4)) // by ID, and the holders and the spouse of the PartnerAccounts
		for _, pa := range pas.Items {
			check(g, "PartnerAccount", pa.Name, pa.Status.Conditions)
		}
		for _, ll := range lls.Items {
			check(g, "LoginLink", ll.Name, ll.Status.Conditions)
		}
	}).WithTimeout(deadline).WithPolling(poll).Should(Succeed())
}

// oneValidLinkPerUser checks, in the simulator, that every user of every account has exactly
// one valid link, and in cluster c that every LoginLink's Secret holds it.
func oneValidLinkPerUser(g *WithT, c client.Client, ns, simURL string) testenv.LinkReport {
	var r testenv.LinkReport
	g.Eventually(func(g Gomega) {
		var accounts []sim.Account
		simGet(g, simURL+"/_sim/accounts", &accounts)
		for _, a := range accounts {
			for _, u := range a.Users {
				g.Expect(u.ValidLinks).To(Equal(1), "valid links of %s on account %d", u.Email, a.ID)
			}
		}
		var err error
		r, err = testenv.CheckLinks(ctx, c, ns, simURL, nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.Problems).To(BeEmpty())
		g.Expect(r.UsersOK).To(Equal(6))
		g.Expect(r.ReadyValid).To(Equal(6))
	}).WithTimeout(deadline).WithPolling(poll).Should(Succeed())
	return r
}

func secretLinks(g Gomega, c client.Client, ns string) map[string]string {
	var secrets corev1.SecretList
	g.Expect(c.List(ctx, &secrets, client.InNamespace(ns))).To(Succeed())
	out := map[string]string{}
	for _, s := range secrets.Items {
		out[s.Name] = string(s.Data[partnersv1.SecretKeyLoginLink])
	}
	return out
}

func TestStandbyThenFailover(t *testing.T) {
	g := NewWithT(t)
	ns := "standby-" + rand.String(6)
	srv := httptest.NewServer(sim.New(sim.Config{TimeScale: scale}))
	t.Cleanup(srv.Close)

	var kube [2]client.Client
	for i, cfg := range clusters {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		kube[i] = c
	}
	activeK8s, standbyK8s := kube[0], kube[1]

	// Accounts that exist already: one a PartnerAccount adopts, two that LoginLinks name.
	seed, err := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: fifteenth.StaticKey("15th_test")})
	g.Expect(err).NotTo(HaveOccurred())
	var ids []int64
	for _, email := range []string{"adopted@standby.example", "first@standby.example", "second@standby.example"} {
		a, err := seed.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: email, FirstName: "P", LastName: "S"})
		g.Expect(err).NotTo(HaveOccurred())
		ids = append(ids, int64(a.ID))
	}
	for _, c := range kube {
		for _, o := range manifests(ns, ids[0], ids[1:]) {
			g.Expect(c.Create(ctx, o)).To(Succeed())
		}
	}

	active := startManager(t, g, clusters[0], ns, srv.URL, false)
	standby := startManager(t, g, clusters[1], ns, srv.URL, true)

	expectAll(g, activeK8s, ns, func(g Gomega, kind, name string, conds []metav1.Condition) {
		s, r, _ := ready(conds)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "%s %s: %s", kind, name, r)
	})
	messages := map[string]string{}
	expectAll(g, standbyK8s, ns, func(g Gomega, kind, name string, conds []metav1.Condition) {
		s, r, m := ready(conds)
		g.Expect([]any{s, r}).To(Equal([]any{metav1.ConditionFalse, partnersv1.ReasonStandby}), "%s %s: %s", kind, name, m)
		g.Expect(m).To(HavePrefix("standby (--read-only): "))
		messages[kind+"/"+name] = m
	})
	g.Expect(messages).To(HaveKeyWithValue("PartnerAccount/couple", ContainSubstring("would create the account for holder@standby.example")))
	g.Expect(messages).To(HaveKeyWithValue("LoginLink/couple-spouse", ContainSubstring("would generate a link for spouse@standby.example")))
	g.Expect(messages).To(HaveKeyWithValue("LoginLink/by-id-0", ContainSubstring(fmt.Sprintf("would generate a link for the account's primary holder on account %d", ids[1]))))
	// The standby reads the account it adopts by spec.accountID, and reports it.
	g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(standbyK8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "adopted"}, pa)).To(Succeed())
		g.Expect(pa.Status.AccountID).To(Equal(ids[0]))
		g.Expect(pa.Status.AccountStatus).To(Equal(fifteenth.AccountActive))
		_, _, m := ready(pa.Status.Conditions)
		g.Expect(m).To(ContainSubstring(fmt.Sprintf("account %d is active", ids[0])))
	}).WithTimeout(deadline).WithPolling(poll).Should(Succeed())

	// One API hour: the active renews the 1-hour links; the standby calls and writes nothing
	// but reads the account it reports at the sync period (half an API hour).
	gets := standby.api.gets.Load()
	g.Consistently(func(g Gomega) {
		g.Expect(standby.api.creates.Load()).To(BeZero(), "Create Account calls of the standby")
		g.Expect(standby.api.generations.Load()).To(BeZero(), "Generate Login Link calls of the standby")
		g.Expect(secretLinks(g, standbyK8s, ns)).To(BeEmpty(), "Secrets on the standby cluster")
	}).WithTimeout(apiHour).WithPolling(poll).Should(Succeed())
	g.Expect(standby.api.gets.Load()-gets).To(BeNumerically(">=", 1), "Retrieve Account calls of the standby in an hour")
	r := oneValidLinkPerUser(g, activeK8s, ns, srv.URL)
	t.Logf("after one API hour: %s", r)

	var stats sim.Stats
	simGet(g, srv.URL+"/_sim/stats", &stats)
	g.Expect(stats.LinksGenerated).To(BeEquivalentTo(active.api.generated.Load()),
		"every link generated is one the active manager asked for: as many as one manager alone")
	// The two LoginLinks by ID and the adopted account's holder generated their first link,
	// and renewed it within the hour; the created accounts' links came with the creation.
	g.Expect(active.api.generated.Load()).To(BeNumerically(">=", 3+2))
	g.Expect(stats.AccountsCreated).To(Equal(3 + 2))
	t.Logf("links generated in the first API hour: %d; Retrieve Account calls of the standby: %d", stats.LinksGenerated, standby.api.gets.Load())

	// Failover: the active cluster is lost; the standby restarts without --read-only.
	activeLinks := secretLinks(g, activeK8s, ns)
	active.stop()
	standby.stop()
	promoted := startManager(t, g, clusters[1], ns, srv.URL, false)
	expectAll(g, standbyK8s, ns, func(g Gomega, kind, name string, conds []metav1.Condition) {
		s, r, m := ready(conds)
		g.Expect(s).To(Equal(metav1.ConditionTrue), "%s %s: %s: %s", kind, name, r, m)
	})
	r = oneValidLinkPerUser(g, standbyK8s, ns, srv.URL)
	t.Logf("after the failover: %s", r)
	for name, link := range secretLinks(g, standbyK8s, ns) {
		g.Expect(link).NotTo(Equal(activeLinks[name]), "Secret %s holds a fresh link", name)
	}
	simGet(g, srv.URL+"/_sim/stats", &stats)
	g.Expect(stats.AccountsCreated).To(Equal(3+2), "no account created twice")
	g.Expect(stats.Requests["POST /v1beta/accounts"]).To(HaveKeyWithValue("409", 2), "the promoted cluster met the two accounts")
	g.Expect(promoted.api.creates.Load()).To(BeEquivalentTo(2))
	g.Expect(promoted.api.generated.Load()).To(BeNumerically(">=", 6), "a fresh link per user (and the renewals since)")

	var evs eventsv1.EventList
	for _, c := range kube {
		g.Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		for _, e := range evs.Items {
			g.Expect(e.Note).NotTo(ContainSubstring("tk_"))
		}
	}
}

package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// startShard starts a second manager that watches only namespaces (a shard), with the
// harness's API and election namespace, granting grants account access.
func (h *harness) startShard(cfg controllers.Config, namespaces ...string) {
	h.t.Helper()
	watched := map[string]cache.Config{}
	for _, ns := range namespaces {
		watched[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme, Logger: zap.New(zap.WriteTo(h.logs), zap.UseDevMode(true)),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// As main.go: the per-user election Leases live in one namespace, shared by the shards.
		Cache: cache.Options{DefaultNamespaces: watched, ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{h.ns: {}}},
		}},
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cfg.API, cfg.APIEndpoint, cfg.APITimeout, cfg.ElectionNamespace = h.api, h.simURL, 5*time.Second, h.ns
	cfg.WatchedNamespaces = namespaces // as main.go
	cfg.SecretTTL = 300 * time.Millisecond
	cfg.Controller = controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4}
	h.g.Expect(controllers.Setup(ctx, mgr, cfg)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			h.t.Errorf("shard manager: %v", err)
		}
	}()
	h.t.Cleanup(func() { cancel(); <-done })
}

// Two shards: the harness's manager watches team A (h.ns), a second one only team B, which
// holds a grant to adopt and link unmanaged accounts. Team A's claim lives in the API server,
// not in shard B's cache: team B's LoginLink by accountID and its PartnerAccount adopting the
// account by ID are refused, call nothing, and the victim's link stays valid. (Account IDs
// repeat across the package's simulators and namespaces outlive tests, so that a takeover
// after team A's PartnerAccount is deleted cannot be shown here: other tests' PartnerAccounts
// claim the same IDs.)
func TestShardsSeeEachOthersClaims(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	teamB := h.ns + "-b"
	h.g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamB}})).To(Succeed())
	h.startShard(controllers.Config{AccountAccessNamespaces: teamB, ClusterWideClaims: true}, teamB)
	id, link := h.victim("victim@a.example")
	calls := h.apiCalls()

	steal := linkFor("steal", id)
	steal.Namespace = teamB
	h.create(steal)
	h.refused(steal, partnersv1.ReasonAccountNotPermitted, calls, link)

	adopt := account("adopt", "victim@a.example", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = ptr.To(id) })
	adopt.Namespace = teamB
	h.create(adopt)
	h.refused(adopt, partnersv1.ReasonAccountNotPermitted, calls, link)
	pa := &partnersv1.PartnerAccount{}
	h.g.Expect(k8s.Get(ctx, keyOf(teamB, "adopt"), pa)).To(Succeed())
	h.g.Expect(pa.Status.AccountID).To(BeZero(), "team B's PartnerAccount claims team A's account")

	// No reconcile of shard a's objects in shard b (it cannot read them: a waste and an error
	// in its log at each retry).
	h.g.Expect(h.logs.String()).NotTo(ContainSubstring("unknown namespace for the cache"))
	t.Logf("account %d: team B's LoginLink and PartnerAccount refused across shards", id)
}

// A shard's claims cache leaves out the shard's own namespaces (its cache holds their
// PartnerAccounts whole): their claims still count. A second PartnerAccount of the shard's
// namespace that names the first one's account by ID is refused as AccountClaimed.
func TestShardSeesItsOwnClaims(t *testing.T) {
	// Its own account IDs: other tests' PartnerAccounts, in namespaces that outlive them,
	// claim the simulators' first IDs.
	h := newHarness(t, harnessOpts{sim: sim.Config{FirstAccountID: 7_000_000}})
	h.stopManager()
	h.startShard(controllers.Config{AccountAccessNamespaces: h.ns, ClusterWideClaims: true}, h.ns)
	h.create(account("first", "own@a.example"))
	id := h.expectAccountReason("first", metav1.ConditionTrue, partnersv1.ReasonCreated).Status.AccountID
	h.create(account("second", "own@a.example", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = ptr.To(id) }))
	second := h.expectAccountReason("second", metav1.ConditionFalse, partnersv1.ReasonAccountClaimed)
	h.g.Expect(second.Status.AccountID).To(BeZero(), "the second PartnerAccount claims the first one's account")
}

// A manager started with --cluster-config-status=false (SkipClusterConfigStatus) writes no
// ClusterPartnerConfig status: of several shards, one writes it. The writer then does, and
// once it settled the status is not written again while both run.
func TestShardLeavesClusterConfigStatusToOneWriter(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.stopManager()
	h.startShard(controllers.Config{SkipClusterConfigStatus: true}, h.ns)
	h.g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "cpc-key"},
		StringData: map[string]string{"api-key": "15th_cpc"}})).To(Succeed())
	cpc := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: "shard-" + h.ns},
		Spec: partnersv1.ClusterPartnerConfigSpec{APIURL: "https://api.fifteenth.com", Namespaces: []string{h.ns},
			APIKeySecretRef: partnersv1.NamespacedSecretKeyReference{Namespace: h.ns, Name: "cpc-key", Key: "api-key"}}}
	h.g.Expect(k8s.Create(ctx, cpc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, cpc) })
	get := func() *partnersv1.ClusterPartnerConfig {
		c := &partnersv1.ClusterPartnerConfig{}
		h.g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cpc), c)).To(Succeed())
		return c
	}
	// Over several of the resolver's Secret TTLs (300 ms here).
	h.g.Consistently(func() []metav1.Condition { return get().Status.Conditions }).WithTimeout(2*time.Second).
		Should(BeEmpty(), "the shard without --cluster-config-status wrote the status")

	h.startManager(0)
	h.g.Eventually(func() metav1.ConditionStatus { s, _ := readyOf(get().Status.Conditions); return s }).Should(Equal(metav1.ConditionTrue))
	rv := get().ResourceVersion
	h.g.Consistently(func() string { return get().ResourceVersion }).WithTimeout(2*time.Second).
		Should(Equal(rv), "the status was written again while nothing changed")
}

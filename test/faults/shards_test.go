//go:build faults

package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// Sharding by namespace (docs/operations.md, Large installations): two managers, each with
// its own namespaces (shard a by --watch-namespaces, shard b by --watch-namespace-selector) and
// its own leader election ID, one partner key, one simulator whose creation limit is a fifth of
// the documented 100 per minute (20/min, time scale 10: a window lasts 6 s), so that the shards
// outrun it on a loaded machine. Each manager is given the whole budget (--account-create-limit
// 20/6s, twice what the key allows), and all PartnerAccounts wait before they start: the API
// refuses the excess with 429s, which they absorb by waiting for the reset. Both namespaces may link unclaimed
// accounts, and for each of a few unclaimed accounts a LoginLink in each shard competes for
// the holder. The test shows: every PartnerAccount's account created once; every user with
// exactly one valid link, one generation per user, and no generation once settled (no
// invalidation war); the 429s bounded per window; shard a's claims refused to shard b's
// objects (the claims live in the API server); and one writer of a ClusterPartnerConfig's
// status, whose resourceVersion stays put over several of its checks.
func TestTwoShards(t *testing.T) {
	const scale = 10
	window := time.Duration(float64(time.Minute) / scale)
	const limit = 20
	o := worldOpts{sim: sim.Config{TimeScale: scale, AccountRate: fifteenth.Rate{N: limit, Per: time.Minute},
		LinkRate: fifteenth.Rate{N: 1000, Per: time.Hour}}}
	w := newWorld(t, "shard-a", o)
	nsB, selector := "shard-b", "fifteenth.com/shard=faults-b"
	w.g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsB,
		Labels: map[string]string{"fifteenth.com/shard": "faults-b"}}})).To(Succeed())
	// A ClusterPartnerConfig that no object here uses: both managers resolve it, one writes
	// its status.
	w.g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "shared-key"},
		StringData: map[string]string{"api-key": "15th_faults_shared"}})).To(Succeed())
	cpc := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: "faults-shards"},
		Spec: partnersv1.ClusterPartnerConfigSpec{APIURL: "https://api.fifteenth.com", Namespaces: []string{w.ns, nsB},
			APIKeySecretRef: partnersv1.NamespacedSecretKeyReference{Namespace: w.ns, Name: "shared-key", Key: "api-key"}}}
	w.g.Expect(k8s.Create(ctx, cpc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, cpc) })

	const n, unclaimed = 40, 10
	ids := w.preCreate(unclaimed, "shared")
	shard := func(id string) []string {
		return []string{"--account-create-limit", fmt.Sprintf("%d/6s", limit), "--login-link-limit", "1000/6m",
			"--account-access-namespaces", w.ns + "," + nsB,
			"--leader-elect", "--leader-election-namespace", w.ns, "--leader-election-id", id}
	}
	// The PartnerAccounts wait before the managers start, so that both spend the budget at once.
	wB := *w
	wB.ns = nsB
	w.applyAccounts(n, "a")
	wB.applyAccounts(n, "b")
	start := time.Now()
	a := w.startManager(shard("faults-shard-a")...)
	b := w.startManager(append(shard("faults-shard-b"), "--watch-namespaces=", "--watch-namespace-selector", selector,
		"--cluster-config-status=false")...)

	w.waitAllReady()
	wB.waitAllReady()
	elapsed := time.Since(start)
	// Each shard's invariants; the accounts of the other shard's PartnerAccounts count as made
	// beforehand (they are in the same simulator).
	w.invariants(unclaimed + n)
	wB.invariants(unclaimed + n)
	st := w.stats()
	created := st.Requests["POST /v1beta/accounts"]
	tooMany := created["429"]
	windows := int(elapsed/window) + 1
	t.Logf("two shards: %d PartnerAccounts (%d with a spouse) Ready in %v (%d windows of %v); creations: %d created, %d refused with 429",
		2*n, n, elapsed.Round(time.Millisecond), windows, window, created["201"]-unclaimed, tooMany)
	w.g.Expect(created["201"]-unclaimed).To(Equal(2*n), "one creation per PartnerAccount")
	w.g.Expect(created).NotTo(HaveKey("409"), "no creation was attempted twice")
	// Each manager has at most max-concurrent-reconciles (4) creations in flight when a window
	// is spent: a 429 makes it wait for the reset, so at most 8 per window.
	w.g.Expect(tooMany).To(BeNumerically(">", 0), "the shards together asked for more than the key allows")
	w.g.Expect(tooMany).To(BeNumerically("<=", 2*4*windows), "429s absorbed without a retry storm")

	// Competing across shards: the holders of unclaimed accounts get a LoginLink in shard a,
	// then a newer one in shard b. The per-user Leases in the shared election namespace hand
	// each user to the newest: one generation per LoginLink (shard a's could not know of shard
	// b's before it existed), and none once settled.
	_, linksBefore, _ := w.calls()
	w.applyLinks(ids, "shared-a")
	w.g.Eventually(func(g Gomega) {
		for i := range ids {
			ll := &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: fmt.Sprintf("shared-a-%d", i)}, ll)).To(Succeed())
			g.Expect(readyOf(ll.Status.Conditions)).To(Equal(metav1.ConditionTrue), ll.Name)
		}
	}).Should(Succeed())
	wB.applyLinks(ids, "shared-b")
	w.g.Eventually(func(g Gomega) {
		for i := range ids {
			a, b := &partnersv1.LoginLink{}, &partnersv1.LoginLink{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: fmt.Sprintf("shared-a-%d", i)}, a)).To(Succeed())
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: nsB, Name: fmt.Sprintf("shared-b-%d", i)}, b)).To(Succeed())
			g.Expect(readyOf(b.Status.Conditions)).To(Equal(metav1.ConditionTrue), b.Name)
			g.Expect(reasonOf(a.Status.Conditions)).To(Equal(partnersv1.ReasonSuperseded), a.Name)
		}
	}).Should(Succeed())
	_, linksAfter, _ := w.calls()
	w.g.Expect(linksAfter-linksBefore).To(Equal(2*unclaimed), "one generation per competing LoginLink")
	w.g.Consistently(func() int { _, l, _ := w.calls(); return l }).WithTimeout(3*window/2).WithPolling(time.Second).
		Should(Equal(linksAfter), "no invalidation war once settled")
	w.g.Expect(w.linkCounts(w.sims[0], ids)).To(HaveEach(HaveKeyWithValue(sim.StateValid, 1)), "each user has exactly one valid link")
	wB.requireLinks(w.sims[0], w.g, 10*time.Second)

	// Shard a's claims are refused to shard b's objects: a LoginLink by accountID and a
	// PartnerAccount adopting by accountID (with the holder's email), although shard b's
	// namespace may link and adopt unclaimed accounts.
	var pas partnersv1.PartnerAccountList
	w.g.Expect(k8s.List(ctx, &pas, client.InNamespace(w.ns))).To(Succeed())
	victim := pas.Items[0]
	_, linksBefore, getsBefore := w.calls()
	steal := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "steal", Namespace: nsB},
		Spec: partnersv1.LoginLinkSpec{AccountID: ptr.To(victim.Status.AccountID), SendNotification: ptr.To(false)}}
	adopt := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Name: "adopt", Namespace: nsB},
		Spec: partnersv1.PartnerAccountSpec{Email: victim.Spec.Email, FirstName: "F", LastName: "A", AccountID: ptr.To(victim.Status.AccountID)}}
	w.g.Expect(k8s.Create(ctx, steal)).To(Succeed())
	w.g.Expect(k8s.Create(ctx, adopt)).To(Succeed())
	w.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(steal), steal)).To(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(adopt), adopt)).To(Succeed())
		g.Expect(reasonOf(steal.Status.Conditions)).To(Equal(partnersv1.ReasonAccountNotPermitted))
		g.Expect(reasonOf(adopt.Status.Conditions)).To(Equal(partnersv1.ReasonAccountNotPermitted))
	}).Should(Succeed())
	w.g.Expect(adopt.Status.AccountID).To(BeZero())
	_, linksAfter, getsAfter := w.calls()
	w.g.Expect([]int{linksAfter, getsAfter}).To(Equal([]int{linksBefore, getsBefore}), "a refused object called the API")

	// One writer of the ClusterPartnerConfig's status (shard a); shard b leaves it alone.
	w.g.Eventually(func() metav1.ConditionStatus {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cpc), cpc)
		return readyOf(cpc.Status.Conditions)
	}).Should(Equal(metav1.ConditionTrue))
	rv := cpc.ResourceVersion
	w.g.Consistently(func() string {
		c := &partnersv1.ClusterPartnerConfig{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cpc), c)
		return c.ResourceVersion
	}).WithTimeout(5*time.Second).WithPolling(200*time.Millisecond).Should(Equal(rv), "the ClusterPartnerConfig's status was written again")
	w.g.Expect(a.exited() || b.exited()).To(BeFalse(), "a manager exited")
	w.g.Expect(b.logs.String()).To(ContainSubstring(`"watchNamespaces":["shard-b"]`), "shard b watches the namespace its selector picks")
	for _, p := range []*proc{a, b} {
		w.g.Expect(strings.Contains(p.logs.String(), "tk_")).To(BeFalse())
	}
	t.Logf("claims across shards: account %d of %s refused to a LoginLink and a PartnerAccount of %s", victim.Status.AccountID, w.ns, nsB)
}

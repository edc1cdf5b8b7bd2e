//go:build faults

package faults

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// addClusterConfig starts another simulator (o, accepting only key) and a ClusterPartnerConfig
// named name that reaches it: its key Secret in the world's namespace, usable from the world's
// namespace only, which it grants account access (LoginLinks and adoptions by accountID), with
// the world's rate limits (fastRates). The config is deleted at cleanup.
func (w *world) addClusterConfig(name, key string, o sim.Config) *simAPI {
	o.APIKeys = []string{key}
	// Numbered like the world's own simulator: the configs must tell the two endpoints apart.
	if o.FirstAccountID == 0 {
		o.FirstAccountID = w.firstID
	}
	srv := httptest.NewServer(sim.New(o))
	w.t.Cleanup(srv.Close)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name + "-key"},
		StringData: map[string]string{"api-key": key}}
	w.g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	cpc := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: partnersv1.ClusterPartnerConfigSpec{
			APIURL:              srv.URL,
			APIKeySecretRef:     partnersv1.NamespacedSecretKeyReference{Namespace: w.ns, Name: secret.Name, Key: "api-key"},
			PartnerConfigLimits: partnersv1.PartnerConfigLimits{AccountCreateLimit: "100000/1m", LoginLinkLimit: "1000/1h"},
			Namespaces:          []string{w.ns},
			AccountAccess:       &partnersv1.AccountAccess{Namespaces: []string{w.ns}},
		}}
	w.g.Expect(k8s.Create(ctx, cpc)).To(Succeed())
	w.t.Cleanup(func() { _ = k8s.Delete(ctx, cpc) })
	s := &simAPI{name: name, url: srv.URL, key: key, ref: &partnersv1.PartnerConfigReference{Kind: partnersv1.KindClusterPartnerConfig, Name: name}}
	w.sims = append(w.sims, s)
	return s
}

// linkCounts are the links of the accounts ids of the simulator s, by account and state.
func (w *world) linkCounts(s *simAPI, ids []int64) map[int64]map[string]int {
	var accounts []sim.Account
	w.simDoAt(s.url, "GET", "/_sim/accounts", "", &accounts)
	out := map[int64]map[string]int{}
	for _, a := range accounts {
		if slices.Contains(ids, a.ID) {
			out[a.ID] = a.Links
		}
	}
	w.g.Expect(out).To(HaveLen(len(ids)), "%saccounts %v", w.label(s), ids)
	return out
}

// Two APIs at once: the default one (the manager's flags) and a second simulator, with its own
// key, behind a ClusterPartnerConfig. 40 PartnerAccounts (half naming the ClusterPartnerConfig),
// 10 LoginLinks by accountID per API for accounts created there beforehand, and 5 LoginLinks
// per API competing with a PartnerAccount's holder link (accountRef, so its config), while
// both simulators lose 20% of the answers after the effect and the manager is SIGKILLed six
// times at random moments. The invariants hold in each simulator (every PartnerAccount's
// account exists once in the simulator of its config and in no other; every Ready link is
// valid in the simulator of its config), and no object reached the other API: no account of
// it, no 401, and no link for the accounts that the other API's LoginLinks name by accountID
// (both simulators number their accounts alike, so a call sent to the wrong one would find an
// account there).
func TestTwoPartnerConfigs(t *testing.T) {
	o := fastRates
	o.sim.APIKeys = []string{"15th_faults_key_one"}
	o.sim.Seed = 21
	w := newWorld(t, "two-configs", o)
	so := fastRates.sim
	so.Seed = 22
	second := w.addClusterConfig(fmt.Sprintf("faults-second-%d", time.Now().UnixNano()%1_000_000_000), "15th_faults_key_second", so)
	def := w.sims[0]

	const n, byID, competing = 40, 10, 5
	// Each simulator holds 2*byID accounts made beforehand: the default's LoginLinks name the
	// first byID of the default simulator, the second's the last byID of the second simulator.
	// The others are decoys, with the IDs that the other API's LoginLinks name.
	ids := w.preCreateIn(def, 2*byID, "two-def")
	ids2 := w.preCreateIn(second, 2*byID, "two-sec")
	w.g.Expect(ids2).To(Equal(ids), "both simulators number their accounts alike")
	linked := map[*simAPI][]int64{def: ids[:byID], second: ids2[byID:]}
	decoys := map[*simAPI][]int64{def: ids[byID:], second: ids2[:byID]}
	// The decoys' links now: each holds the link of its creation answer, which a call sent to
	// the wrong API would invalidate (or join).
	decoyLinks := map[*simAPI]map[int64]map[string]int{}
	for _, s := range w.sims {
		decoyLinks[s] = w.linkCounts(s, decoys[s])
		w.simDoAt(s.url, "PUT", "/_sim/faults", `{"fail_after_commit_rate": 0.2}`, nil)
	}

	w.startManager()
	prefixes := map[*simAPI]string{def: "two-def", second: "two-sec"}
	for _, s := range w.sims {
		ref := s.ref
		w.applyAccounts(n/2, prefixes[s], func(p *partnersv1.PartnerAccountSpec) { p.PartnerConfigRef = ref })
		w.applyLinks(linked[s], prefixes[s]+"-link", func(l *partnersv1.LoginLinkSpec) { l.PartnerConfigRef = ref })
		for i := range competing {
			w.g.Expect(k8s.Create(ctx, &partnersv1.LoginLink{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-user", prefixes[s], i), Namespace: w.ns},
				Spec: partnersv1.LoginLinkSpec{AccountRef: &partnersv1.LocalObjectReference{Name: fmt.Sprintf("%s-%d", prefixes[s], i)},
					UserEmail: fmt.Sprintf("%s%d@faults.example", prefixes[s], i), SendNotification: ptr.To(false)},
			})).To(Succeed())
		}
	}
	w.killAtRandomMoments(rand.New(rand.NewPCG(21, 22)), 6, def.preCreated)
	w.invariants(def.preCreated)

	cpc := &partnersv1.ClusterPartnerConfig{}
	w.g.Expect(k8s.Get(ctx, client.ObjectKey{Name: second.ref.Name}, cpc)).To(Succeed())
	w.g.Expect(readyOf(cpc.Status.Conditions)).To(Equal(metav1.ConditionTrue), "ClusterPartnerConfig %s: %v", cpc.Name, cpc.Status.Conditions)
	for _, s := range w.sims {
		var accounts []sim.Account
		w.simDoAt(s.url, "GET", "/_sim/accounts", "", &accounts)
		w.g.Expect(w.linkCounts(s, decoys[s])).To(Equal(decoyLinks[s]),
			"%sthe links of the accounts that only the other API's LoginLinks name (by ID) changed", w.label(s))
		st := w.statsAt(s.url)
		for route, codes := range st.Requests {
			w.g.Expect(codes).NotTo(HaveKey("401"), "%s%s: a call with another key", w.label(s), route)
		}
		creates, links, gets := w.callsAt(s.url)
		t.Logf("%s%d creations, %d link calls, %d reads; %d faults injected; no call for the other API's objects "+
			"(its %d accounts are its own PartnerAccounts' and the %d made beforehand; the links of its %d decoys are unchanged)",
			w.label(s), creates-s.preCreated, links, gets, st.FaultsInjected, len(accounts), s.preCreated, len(decoys[s]))
	}
}

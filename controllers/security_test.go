package controllers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
)

// The security suite: no namespace obtains a link to, or adopts, an account that is not its
// own. Each refused object makes no call, supersedes nobody and writes no Secret; the victim's
// link stays valid. h.ns is team A (the victim's namespace); the tenant namespace is team B.

// victim creates PartnerAccount victim in team A and waits until its link is valid.
func (h *harness) victim(email string) (int64, string) {
	h.t.Helper()
	h.create(account("victim", email))
	pa := h.expectAccountReason("victim", metav1.ConditionTrue, partnersv1.ReasonCreated)
	h.expectLinkReason("victim-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	link := h.secretLink("victim-login-link")
	h.g.Expect(h.linkState(link)).To(Equal("valid"))
	return pa.Status.AccountID, link
}

// refused waits for obj's Ready=False reason and checks what a refusal promises: no call of
// any kind since before, no link in the object's Secrets, a message naming no
// object of team A, and the victim's link still valid.
func (h *harness) refused(obj client.Object, reason string, callsBefore int, victimLink string) {
	h.t.Helper()
	h.g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *partnersv1.LoginLink:
			conds = o.Status.Conditions
		case *partnersv1.PartnerAccount:
			conds = o.Status.Conditions
		}
		s, r := readyOf(conds)
		g.Expect(s).To(Equal(metav1.ConditionFalse))
		g.Expect(r).To(Equal(reason))
		for _, c := range conds {
			g.Expect(c.Message).NotTo(ContainSubstring(h.ns+"/"), "a message names team A's objects")
			g.Expect(c.Message).NotTo(ContainSubstring("victim"), "a message names team A's objects")
		}
	}).Should(Succeed())
	h.g.Consistently(func() int { return h.apiCalls() }).Should(Equal(callsBefore), "the refused object called the API")
	var secrets corev1.SecretList
	h.g.Expect(k8s.List(ctx, &secrets, client.InNamespace(obj.GetNamespace()),
		client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue})).To(Succeed())
	for _, s := range secrets.Items {
		if strings.HasPrefix(s.Name, obj.GetName()) { // the refused object's own Secrets
			h.g.Expect(s.Data).NotTo(HaveKey(partnersv1.SecretKeyLoginLink), "Secret %s holds a link", s.Name)
		}
	}
	if victimLink != "" {
		h.g.Expect(h.linkState(victimLink)).To(Equal("valid"), "the victim's link")
		h.expectLinkReason("victim-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	}
}

// A LoginLink in team B naming team A's account by ID: refused, even when team B may link
// unmanaged accounts, and the victim's holder is not superseded.
func TestSecurityCrossNamespaceAccountIDLink(t *testing.T) {
	for _, granted := range []bool{false, true} {
		t.Run(fmt.Sprintf("team B granted=%v", granted), func(t *testing.T) {
			o := harnessOpts{tenants: []string{"b"}}
			if granted {
				o.grants = []string{"", "b"}
			}
			h := newHarness(t, o)
			teamB := h.namespaces[1]
			id, link := h.victim("victim@a.example")
			calls := h.apiCalls()
			steal := linkFor("steal", id, func(s *partnersv1.LoginLinkSpec) { s.SendNotification = ptr.To(false) })
			steal.Namespace = teamB
			h.create(steal)
			h.refused(steal, partnersv1.ReasonAccountNotPermitted, calls, link)
			// A guessed user email tells team B nothing either (no USER_NOT_FOUND).
			probe := linkFor("probe", id, func(s *partnersv1.LoginLinkSpec) { s.UserEmail = "someone@a.example" })
			probe.Namespace = teamB
			h.create(probe)
			h.refused(probe, partnersv1.ReasonAccountNotPermitted, calls, link)
		})
	}
}

// A guessed ID of an account no PartnerAccount manages: refused without a grant, served with one.
func TestSecurityUnclaimedAccountNeedsAGrant(t *testing.T) {
	h := newHarness(t, harnessOpts{tenants: []string{"b", "c"}, grants: []string{"c"}})
	teamB, teamC := h.namespaces[1], h.namespaces[2]
	id := h.createAccount("unmanaged@example.com")
	calls := h.apiCalls()
	guess := linkFor("guess", id)
	guess.Namespace = teamB
	h.create(guess)
	h.refused(guess, partnersv1.ReasonAccountNotPermitted, calls, "")

	granted := linkFor("granted", id, func(s *partnersv1.LoginLinkSpec) { s.SendNotification = ptr.To(false) })
	granted.Namespace = teamC
	h.create(granted)
	h.g.Eventually(func(g Gomega) {
		ll := &partnersv1.LoginLink{}
		g.Expect(k8s.Get(ctx, keyOf(teamC, "granted"), ll)).To(Succeed())
		s, r := readyOf(ll.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), r)
	}).Should(Succeed())
	s := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, keyOf(teamC, "granted"), s)).To(Succeed())
	h.g.Expect(h.linkState(string(s.Data[partnersv1.SecretKeyLoginLink]))).To(Equal("valid"))
}

// A PartnerAccount in team B with team A's client email meets the 409: it adopts nothing,
// one account exists, the victim is intact. The same with an email registered outside any
// PartnerAccount (AccountExists: only a grant adopts it).
func TestSecurityImpostorPartnerAccount(t *testing.T) {
	h := newHarness(t, harnessOpts{tenants: []string{"b"}})
	teamB := h.namespaces[1]
	_, link := h.victim("client@a.example")
	calls := h.apiCalls()
	impostor := account("impostor", "client@a.example")
	impostor.Namespace = teamB
	h.create(impostor)
	h.g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, keyOf(teamB, "impostor"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionFalse))
		g.Expect(r).To(BeElementOf(partnersv1.ReasonAccountNotPermitted, partnersv1.ReasonAccountExists))
		g.Expect(pa.Status.AccountID).To(BeZero())
	}).Should(Succeed())
	// The one call allowed is the creation that met the 409.
	h.g.Expect(h.createCalls()).To(HaveKeyWithValue("409", 1))
	h.g.Consistently(func() int { return h.apiCalls() }).Should(Equal(calls + 1))
	h.g.Expect(h.simAccounts()).To(HaveLen(1), "exactly one account")
	h.g.Expect(h.linkState(link)).To(Equal("valid"))
	h.expectLinkReason("victim-holder", metav1.ConditionTrue, partnersv1.ReasonLinkValid)
	pa := &partnersv1.PartnerAccount{}
	h.g.Expect(k8s.Get(ctx, keyOf(teamB, "impostor"), pa)).To(Succeed())
	h.g.Expect(readyMessage(pa.Status.Conditions)).NotTo(ContainSubstring("victim"))

	// An email registered by the partner's old scripts, no PartnerAccount: AccountExists.
	h.createAccount("scripted@b.example")
	calls = h.apiCalls()
	scripted := account("scripted", "scripted@b.example")
	scripted.Namespace = teamB
	h.create(scripted)
	h.g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, keyOf(teamB, "scripted"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionFalse))
		g.Expect(r).To(Equal(partnersv1.ReasonAccountExists))
		g.Expect(readyMessage(pa.Status.Conditions)).To(ContainSubstring("accountAccess"), "the message says how to grant adoption")
	}).Should(Succeed())
	h.g.Consistently(func() int { return h.apiCalls() }).Should(Equal(calls+1), "only the creation that met the 409")
}

// A PartnerAccount in team B adopting team A's account by spec.accountID: refused, no call.
func TestSecurityAdoptAnotherNamespacesAccount(t *testing.T) {
	// Even a namespace that may adopt unmanaged accounts.
	h := newHarness(t, harnessOpts{tenants: []string{"b"}, grants: []string{"b"}})
	teamB := h.namespaces[1]
	id, link := h.victim("adoptee@a.example")
	calls := h.apiCalls()
	thief := account("thief", "adoptee@a.example", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = &id })
	thief.Namespace = teamB
	h.create(thief)
	h.refused(thief, partnersv1.ReasonAccountNotPermitted, calls, link)
	h.g.Expect(h.partnerAccount("victim").Status.AccountID).To(Equal(id))
}

func readyMessage(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

// Partner configs: a second API behind a ClusterPartnerConfig that admits team B only. Team C
// may not use it; a PartnerConfig of team A cannot be named from team B; objects reach only
// their own config's API; a key rotation of one config is picked up without a restart while
// the other keeps working.
func TestSecurityPartnerConfigs(t *testing.T) {
	h := newHarness(t, harnessOpts{tenants: []string{"b", "c"}, grants: []string{""}})
	teamB, teamC := h.namespaces[1], h.namespaces[2]
	second := httptest.NewServer(sim.New(sim.Config{APIKeys: []string{"15th_second", "15th_rotated"}}))
	t.Cleanup(second.Close)
	secondStats := func() int {
		var st sim.Stats
		resp, err := http.Get(second.URL + "/_sim/stats")
		h.g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		h.g.Expect(json.NewDecoder(resp.Body).Decode(&st)).To(Succeed())
		n := 0
		for _, codes := range st.Requests {
			n += total(codes)
		}
		return n
	}
	keySecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "second-key"},
		StringData: map[string]string{"api-key": "15th_second"}}
	h.g.Expect(k8s.Create(ctx, keySecret)).To(Succeed())
	cpcName := "second-" + h.ns
	cpc := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: cpcName},
		Spec: partnersv1.ClusterPartnerConfigSpec{APIURL: second.URL, Namespaces: []string{teamB},
			APIKeySecretRef: partnersv1.NamespacedSecretKeyReference{Namespace: h.ns, Name: "second-key", Key: "api-key"}}}
	h.g.Expect(k8s.Create(ctx, cpc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, cpc) })
	ref := &partnersv1.PartnerConfigReference{Kind: partnersv1.KindClusterPartnerConfig, Name: cpcName}

	// Team B creates its client's account through the second API only.
	calls := h.apiCalls()
	b := account("client-b", "client@b.example", func(s *partnersv1.PartnerAccountSpec) { s.PartnerConfigRef = ref })
	b.Namespace = teamB
	h.create(b)
	h.g.Eventually(func(g Gomega) {
		pa := &partnersv1.PartnerAccount{}
		g.Expect(k8s.Get(ctx, keyOf(teamB, "client-b"), pa)).To(Succeed())
		s, r := readyOf(pa.Status.Conditions)
		g.Expect(s).To(Equal(metav1.ConditionTrue), r)
	}).Should(Succeed())
	h.g.Expect(h.apiCalls()).To(Equal(calls), "team B's objects never reach the first API")
	h.g.Expect(secondStats()).To(Equal(1), "one creation at the second API")

	// Team C is not admitted by the ClusterPartnerConfig: no call anywhere.
	before2 := secondStats()
	c := account("client-c", "client@c.example", func(s *partnersv1.PartnerAccountSpec) { s.PartnerConfigRef = ref })
	c.Namespace = teamC
	h.create(c)
	h.refused(c, partnersv1.ReasonPartnerConfigNotPermitted, calls, "")
	h.g.Expect(secondStats()).To(Equal(before2))

	// A PartnerConfig of team A cannot be named from team B.
	pc := &partnersv1.PartnerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "team-a-key"},
		Spec: partnersv1.PartnerConfigSpec{APIURL: h.simURL, APIKeySecretRef: partnersv1.SecretKeyReference{Name: "second-key", Key: "api-key"}}}
	h.g.Expect(k8s.Create(ctx, pc)).To(Succeed())
	borrowed := account("borrowed", "borrowed@b.example", func(s *partnersv1.PartnerAccountSpec) {
		s.PartnerConfigRef = &partnersv1.PartnerConfigReference{Kind: partnersv1.KindPartnerConfig, Name: "team-a-key"}
	})
	borrowed.Namespace = teamB
	h.create(borrowed)
	h.refused(borrowed, partnersv1.ReasonPartnerConfigNotReady, calls, "")
	h.g.Expect(secondStats()).To(Equal(before2))

	// Rotation: a revoked key fails team B's next renewal (Unauthorized) while the default
	// config keeps working; the new key is used without a restart.
	id := h.createAccount("default@a.example")
	h.create(linkFor("default-link", id))
	h.expectLinkReason("default-link", metav1.ConditionTrue, partnersv1.ReasonGenerated)
	setKey := func(key string) {
		s := &corev1.Secret{}
		h.g.Expect(k8s.Get(ctx, keyOf(h.ns, "second-key"), s)).To(Succeed())
		s.Data = map[string][]byte{"api-key": []byte(key)}
		h.g.Expect(k8s.Update(ctx, s)).To(Succeed())
		// The config shows the new key's fingerprint (never the key) once it is in use.
		h.g.Eventually(func() string {
			c := &partnersv1.ClusterPartnerConfig{}
			_ = k8s.Get(ctx, client.ObjectKey{Name: cpcName}, c)
			return c.Status.KeyFingerprint
		}).Should(Equal(partnerconfig.Fingerprint(key)))
	}
	renew := func(ns, name string) {
		ll := &partnersv1.LoginLink{}
		h.g.Expect(k8s.Get(ctx, keyOf(ns, name), ll)).To(Succeed())
		if ll.Annotations == nil {
			ll.Annotations = map[string]string{}
		}
		ll.Annotations[partnersv1.AnnotationRenewRequestedAt] = time.Now().Add(time.Second).UTC().Format(time.RFC3339)
		h.g.Expect(k8s.Update(ctx, ll)).To(Succeed())
	}
	linkReason := func(ns, name string) string {
		ll := &partnersv1.LoginLink{}
		if err := k8s.Get(ctx, keyOf(ns, name), ll); err != nil {
			return err.Error()
		}
		_, r := readyOf(ll.Status.Conditions)
		return r
	}
	setKey("15th_revoked")
	renew(teamB, "client-b-holder")
	h.g.Eventually(func() string { return linkReason(teamB, "client-b-holder") }).Should(Equal(partnersv1.ReasonUnauthorized))
	// The config says so too (its fingerprint names the refused key, never the key).
	h.g.Eventually(func() string {
		c := &partnersv1.ClusterPartnerConfig{}
		_ = k8s.Get(ctx, client.ObjectKey{Name: cpcName}, c)
		_, r := readyOf(c.Status.Conditions)
		return r
	}).Should(Equal(partnersv1.ReasonUnauthorized))
	renew(h.ns, "default-link")
	h.expectLinkReason("default-link", metav1.ConditionTrue, partnersv1.ReasonRenewed)
	setKey("15th_rotated")
	h.g.Eventually(func() string { return linkReason(teamB, "client-b-holder") }).WithTimeout(90 * time.Second).
		Should(BeElementOf(partnersv1.ReasonRenewed, partnersv1.ReasonGenerated))
	s := &corev1.Secret{}
	h.g.Expect(k8s.Get(ctx, keyOf(teamB, "client-b-login-link"), s)).To(Succeed())
	var st sim.LinkState
	resp, err := http.Get(second.URL + "/_sim/links/" + tokenOf(string(s.Data[partnersv1.SecretKeyLoginLink])))
	h.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	h.g.Expect(json.NewDecoder(resp.Body).Decode(&st)).To(Succeed())
	h.g.Expect(st.State).To(Equal("valid"), "team B's link is valid at the second API")
}

func tokenOf(link string) string { return link[strings.LastIndex(link, "/")+1:] }

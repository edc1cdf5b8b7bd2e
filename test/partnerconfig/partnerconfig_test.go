// Package partnerconfig_test applies PartnerConfigs and ClusterPartnerConfigs to a real API
// server: the CRDs' validation, and the status their reconciler writes.
package partnerconfig_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var (
	restCfg *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
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

func newNamespace(g *WithT, l map[string]string) string {
	ns := "t-" + rand.String(6)
	g.Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l}})).To(Succeed())
	return ns
}

// object builds an unstructured config, so that fields the Go types lack can be sent.
func object(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(partnersv1.GroupVersion.String())
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestValidation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g, nil)
	n := 0
	name := func() string { n++; return fmt.Sprintf("c%d", n) }
	pcSpec := func(extra map[string]any) map[string]any {
		s := map[string]any{"apiKeySecretRef": map[string]any{"name": "key", "key": "apiKey"}}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}
	cpcSpec := func(extra map[string]any) map[string]any {
		s := map[string]any{"apiKeySecretRef": map[string]any{"namespace": "ops", "name": "key", "key": "apiKey"}}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}

	// A PartnerConfig's Secret is in its own namespace: the reference has no namespace field.
	withNS := object(partnersv1.KindPartnerConfig, ns, name(), map[string]any{
		"apiKeySecretRef": map[string]any{"namespace": "kube-system", "name": "key", "key": "apiKey"}})
	err := k8s.Create(ctx, withNS, client.FieldValidation("Strict"))
	g.Expect(err).To(MatchError(ContainSubstring(`unknown field "spec.apiKeySecretRef.namespace"`)))
	// Without strict validation (older clients) the field is dropped, never honoured.
	g.Expect(k8s.Create(ctx, withNS)).To(Succeed())
	got := &partnersv1.PartnerConfig{}
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(partnersv1.GroupVersion.WithKind(partnersv1.KindPartnerConfig))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(withNS), raw)).To(Succeed())
	_, found, _ := unstructured.NestedString(raw.Object, "spec", "apiKeySecretRef", "namespace")
	g.Expect(found).To(BeFalse())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(withNS), got)).To(Succeed())
	g.Expect(got.Spec.APIURL).To(Equal("https://api.fifteenth.com"), "apiURL defaults to the public API")

	// A ClusterPartnerConfig must name its Secret's namespace.
	err = k8s.Create(ctx, object(partnersv1.KindClusterPartnerConfig, "", "v-"+rand.String(6),
		map[string]any{"apiKeySecretRef": map[string]any{"name": "key", "key": "apiKey"}}))
	g.Expect(err).To(MatchError(ContainSubstring("spec.apiKeySecretRef.namespace: Required value")))

	for _, limit := range []string{"10", "0/1h", "ten/1h", "10/0s", "10/0h0m", "10/1y", "10/-1h", "10/ 1h", "10/1h/2"} {
		for _, field := range []string{"accountCreateLimit", "loginLinkLimit"} {
			err := k8s.Create(ctx, object(partnersv1.KindPartnerConfig, ns, name(), pcSpec(map[string]any{field: limit})))
			g.Expect(err).To(HaveOccurred(), "%s %q must be refused", field, limit)
			g.Expect(err.Error()).To(ContainSubstring("spec." + field))
		}
	}
	for _, limit := range []string{"100/1m", "10/1h", "10/h", "5/1h30m", "1/0.5s", "007/2m"} {
		g.Expect(k8s.Create(ctx, object(partnersv1.KindPartnerConfig, ns, name(), pcSpec(map[string]any{"loginLinkLimit": limit})))).
			To(Succeed(), "%q is a valid limit", limit)
	}

	for url, ok := range map[string]bool{
		"https://api.fifteenth.com": true, "https://proxy.example/fifteenth/": true, "http://127.0.0.1:9000": true, "http://localhost:9000": true,
		"http://api.fifteenth.com": false, "ftp://x.example": false, "api.fifteenth.com": false, "https://": false,
	} {
		for _, o := range []*unstructured.Unstructured{
			object(partnersv1.KindPartnerConfig, ns, name(), pcSpec(map[string]any{"apiURL": url})),
			object(partnersv1.KindClusterPartnerConfig, "", "v-"+rand.String(6), cpcSpec(map[string]any{"apiURL": url})),
		} {
			err := k8s.Create(ctx, o)
			if ok {
				g.Expect(err).NotTo(HaveOccurred(), "%s %q", o.GetKind(), url)
				if o.GetKind() == partnersv1.KindClusterPartnerConfig {
					g.Expect(k8s.Delete(ctx, o)).To(Succeed())
				}
			} else {
				g.Expect(err).To(MatchError(ContainSubstring("apiURL must be an https URL")), "%s %q", o.GetKind(), url)
			}
		}
	}

	// The ClusterPartnerConfig's own fields are not a PartnerConfig's.
	err = k8s.Create(ctx, object(partnersv1.KindPartnerConfig, ns, name(), pcSpec(map[string]any{"namespaces": []any{"x"}})),
		client.FieldValidation("Strict"))
	g.Expect(err).To(MatchError(ContainSubstring(`unknown field "spec.namespaces"`)))
	g.Expect(k8s.Create(ctx, object(partnersv1.KindClusterPartnerConfig, "", "v-"+rand.String(6), cpcSpec(map[string]any{
		"namespaces": []any{"a"}, "namespaceSelector": map[string]any{"matchLabels": map[string]any{"tier": "gold"}},
		"accountAccess": map[string]any{"namespaces": []any{"a"}}})), client.FieldValidation("Strict"))).To(Succeed())
}

// startManager runs the config reconciler as main.go would: key Secrets read live.
func startManager(t *testing.T, ttl time.Duration) *partnerconfig.Resolver {
	t.Helper()
	managed := labels.SelectorFromSet(labels.Set{partnersv1.LabelManagedBy: partnersv1.ManagedByValue})
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{Scheme: scheme,
		Cache:   cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}}},
		Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := partnerconfig.ParseAllowedAPIURLs("")
	if err != nil {
		t.Fatal(err)
	}
	res := &partnerconfig.Resolver{Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), AllowedAPIURLs: allowed, SecretTTL: ttl}
	rec := &controllers.PartnerConfigReconciler{Client: mgr.GetClient(), Resolver: res}
	if err := rec.SetupWithManager(mgr, controller.Options{SkipNameValidation: ptrTo(true)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	markers <- rec
	return res
}

func ptrTo[T any](v T) *T { return &v }

// markers hands the running reconciler to the test (for MarkUnauthorized).
var markers = make(chan *controllers.PartnerConfigReconciler, 1)

func ready(g Gomega, obj client.Object, conds func() []metav1.Condition) *metav1.Condition {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	c := meta.FindStatusCondition(conds(), partnersv1.ConditionReady)
	g.Expect(c).NotTo(BeNil())
	return c
}

func TestStatus(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(20 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx := context.Background()
	const ttl = time.Second
	// Only this test's configs, so that the Secret reads can be counted.
	var pcs partnersv1.PartnerConfigList
	g.Expect(k8s.List(ctx, &pcs)).To(Succeed())
	for i := range pcs.Items {
		g.Expect(k8s.Delete(ctx, &pcs.Items[i])).To(Succeed())
	}
	g.Expect(k8s.DeleteAllOf(ctx, &partnersv1.ClusterPartnerConfig{})).To(Succeed())
	res := startManager(t, ttl)
	rec := <-markers
	ops, team := newNamespace(g, nil), newNamespace(g, nil)

	// A ClusterPartnerConfig whose Secret does not exist yet.
	cpc := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: "cpc-" + rand.String(6)},
		Spec: partnersv1.ClusterPartnerConfigSpec{APIKeySecretRef: partnersv1.NamespacedSecretKeyReference{Namespace: ops, Name: "partner-key", Key: "apiKey"}}}
	g.Expect(k8s.Create(ctx, cpc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cpc) })
	g.Eventually(func(g Gomega) {
		c := ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions })
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonSecretNotFound))
		g.Expect(cpc.Status.KeyFingerprint).To(BeEmpty())
	}).Should(Succeed())

	// The Secret appears: Ready within the TTL, with the fingerprint and never the key.
	const key1 = "15th_first_key_0123456789"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ops, Name: "partner-key"}, StringData: map[string]string{"apiKey": key1}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions })
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonValid))
		g.Expect(cpc.Status.KeyFingerprint).To(Equal(partnerconfig.Fingerprint(key1)))
		g.Expect(cpc.Status.ObservedGeneration).To(Equal(cpc.Generation))
	}).Should(Succeed())
	g.Expect(fmt.Sprintf("%+v", cpc.Status)).NotTo(ContainSubstring(key1))

	// The API refused the key: Unauthorized until the key changes.
	cfg, err := res.For(ctx, team, &partnersv1.PartnerConfigReference{Kind: partnersv1.KindClusterPartnerConfig, Name: cpc.Name})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.MarkUnauthorized(ctx, cfg)).To(Succeed())
	c := ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions })
	g.Expect(c.Reason).To(Equal(partnersv1.ReasonUnauthorized))
	g.Consistently(func(g Gomega) {
		g.Expect(ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions }).Reason).To(Equal(partnersv1.ReasonUnauthorized))
	}, 3*ttl, 100*time.Millisecond).Should(Succeed(), "the resync keeps Unauthorized while the key is the same")

	// Rotation: a new fingerprint, Ready again; a late refusal of the old key marks nothing.
	const key2 = "15th_second_key_987654321"
	secret.StringData = map[string]string{"apiKey": key2}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions })
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonValid))
		g.Expect(cpc.Status.KeyFingerprint).To(Equal(partnerconfig.Fingerprint(key2)))
	}).Should(Succeed())
	g.Expect(rec.MarkUnauthorized(ctx, cfg)).To(Succeed())
	g.Expect(ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions }).Reason).To(Equal(partnersv1.ReasonValid))

	// A bad key.
	secret.StringData = map[string]string{"apiKey": "sk_live_not_ours"}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := ready(g, cpc, func() []metav1.Condition { return cpc.Status.Conditions })
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonKeyInvalid))
		g.Expect(c.Message).NotTo(ContainSubstring("sk_live"))
		g.Expect(cpc.Status.KeyFingerprint).To(BeEmpty())
	}).Should(Succeed())

	// A tenant's PartnerConfig pointing off the allow-list: refused, its Secret never read.
	pcSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "own-key"}, StringData: map[string]string{"apiKey": "15th_team"}}
	g.Expect(k8s.Create(ctx, pcSecret)).To(Succeed())
	evil := &partnersv1.PartnerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "evil"},
		Spec: partnersv1.PartnerConfigSpec{APIURL: "https://internal.example/admin", APIKeySecretRef: partnersv1.SecretKeyReference{Name: "own-key", Key: "apiKey"}}}
	own := &partnersv1.PartnerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "own"},
		Spec: partnersv1.PartnerConfigSpec{APIKeySecretRef: partnersv1.SecretKeyReference{Name: "own-key", Key: "apiKey"}}}
	g.Expect(k8s.Create(ctx, evil)).To(Succeed())
	g.Expect(k8s.Create(ctx, own)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := ready(g, evil, func() []metav1.Condition { return evil.Status.Conditions })
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonAPIURLNotAllowed))
		c = ready(g, own, func() []metav1.Condition { return own.Status.Conditions })
		g.Expect(c.Reason).To(Equal(partnersv1.ReasonValid))
		g.Expect(own.Status.KeyFingerprint).To(Equal(partnerconfig.Fingerprint("15th_team")))
	}).Should(Succeed())

	// Key Secrets are read live, at most once per TTL each (two Secrets here), not watched.
	start, t0 := res.SecretReads(), time.Now()
	time.Sleep(4 * ttl)
	reads := res.SecretReads() - start
	t.Logf("%d key Secret reads in %s (TTL %s, 2 Secrets)", reads, time.Since(t0).Round(time.Millisecond), ttl)
	g.Expect(reads).To(BeNumerically(">=", 2), "the Secrets are read again at the TTL")
	g.Expect(reads).To(BeNumerically("<=", 2*(int64(time.Since(t0)/ttl)+2)), "no hot loop: at most one read per Secret per TTL")
}

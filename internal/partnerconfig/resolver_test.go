package partnerconfig_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := partnersv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func keySecret(ns, name, key, value string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{key: []byte(value)}}
}

func cpc(name, url string, mod func(*partnersv1.ClusterPartnerConfigSpec)) *partnersv1.ClusterPartnerConfig {
	c := &partnersv1.ClusterPartnerConfig{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: partnersv1.ClusterPartnerConfigSpec{
		APIURL:          url,
		APIKeySecretRef: partnersv1.NamespacedSecretKeyReference{Namespace: "ops", Name: name + "-key", Key: "apiKey"},
	}}
	if mod != nil {
		mod(&c.Spec)
	}
	return c
}

func pc(ns, name, url string) *partnersv1.PartnerConfig {
	return &partnersv1.PartnerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: partnersv1.PartnerConfigSpec{
		APIURL: url, APIKeySecretRef: partnersv1.SecretKeyReference{Name: name + "-key", Key: "apiKey"}}}
}

type world struct {
	c     client.Client
	r     *partnerconfig.Resolver
	clock *clock
	def   *partnerconfig.Config
}

func newWorld(t *testing.T, objs ...client.Object) *world {
	t.Helper()
	clk := &clock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(objs...).Build()
	defAPI, err := fifteenth.New(fifteenth.Options{BaseURL: fifteenth.DefaultBaseURL, Key: fifteenth.StaticKey("15th_flag")})
	if err != nil {
		t.Fatal(err)
	}
	def := partnerconfig.NewDefault(defAPI, fifteenth.DefaultBaseURL, partnerconfig.Fingerprint("15th_flag"), "granted")
	allowed, err := partnerconfig.ParseAllowedAPIURLs("https://api.fifteenth.com,http://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	r := &partnerconfig.Resolver{Client: c, SecretReader: c, Default: def, AllowedAPIURLs: allowed,
		SecretTTL: 30 * time.Second, Now: clk.Now}
	return &world{c: c, r: r, clock: clk, def: def}
}

func ref(kind, name string) *partnersv1.PartnerConfigReference {
	return &partnersv1.PartnerConfigReference{Kind: kind, Name: name}
}

func reason(err error) string {
	r, _ := partnerconfig.ReasonOf(err)
	return r
}

// Which namespaces a ClusterPartnerConfig admits, by name, by selector, or all.
func TestForClusterPartnerConfigPermits(t *testing.T) {
	w := newWorld(t,
		namespace("a", nil), namespace("g", map[string]string{"tier": "gold"}), namespace("s", map[string]string{"tier": "silver"}),
		keySecret("ops", "open-key", "apiKey", "15th_open"), keySecret("ops", "picky-key", "apiKey", "15th_picky"),
		cpc("open", "https://api.fifteenth.com", nil),
		cpc("picky", "https://api.fifteenth.com", func(s *partnersv1.ClusterPartnerConfigSpec) {
			s.Namespaces = []string{"a"}
			s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		}),
	)
	ctx := context.Background()
	for _, tc := range []struct {
		config, ns string
		ok         bool
	}{
		{"open", "a", true}, {"open", "s", true}, {"open", "missing-ns", true},
		{"picky", "a", true}, {"picky", "g", true}, {"picky", "s", false}, {"picky", "missing-ns", false},
	} {
		reads := w.r.SecretReads()
		cfg, err := w.r.For(ctx, tc.ns, ref(partnersv1.KindClusterPartnerConfig, tc.config))
		if tc.ok {
			if err != nil || cfg.API == nil || cfg.Ref.Name != tc.config || cfg.Name != tc.config || cfg.Tenant {
				t.Errorf("%s from %s: %+v, %v", tc.config, tc.ns, cfg, err)
			}
			continue
		}
		if reason(err) != partnersv1.ReasonPartnerConfigNotPermitted {
			t.Errorf("%s from %s: want PartnerConfigNotPermitted, got %v", tc.config, tc.ns, err)
		}
		if strings.Contains(err.Error(), "ops") || strings.Contains(err.Error(), `"a"`) {
			t.Errorf("message names another namespace: %v", err)
		}
		if w.r.SecretReads() != reads {
			t.Errorf("%s from %s: a refused namespace read the key Secret", tc.config, tc.ns)
		}
	}
}

// A PartnerConfig is looked up in the asking namespace only; its URL must be on the allow-list.
func TestForPartnerConfig(t *testing.T) {
	w := newWorld(t,
		keySecret("team-a", "mine-key", "apiKey", "15th_team_a"),
		pc("team-a", "mine", "https://api.fifteenth.com/"),
		pc("team-a", "evil", "https://169.254.169.254/latest"),
		pc("team-a", "sim", "http://127.0.0.1:9"),
	)
	ctx := context.Background()
	cfg, err := w.r.For(ctx, "team-a", ref(partnersv1.KindPartnerConfig, "mine"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Tenant || cfg.Endpoint != "https://api.fifteenth.com" || cfg.Name != "team-a/mine" || cfg.Fingerprint != partnerconfig.Fingerprint("15th_team_a") {
		t.Errorf("config %+v", cfg)
	}
	if !cfg.Grants(namespace("team-a", nil)) || cfg.Grants(namespace("team-b", nil)) {
		t.Error("a PartnerConfig grants its own namespace")
	}

	_, err = w.r.For(ctx, "team-b", ref(partnersv1.KindPartnerConfig, "mine"))
	if reason(err) != partnersv1.ReasonPartnerConfigNotReady || strings.Contains(err.Error(), "team-a") {
		t.Errorf("from team-b: %v", err)
	}

	reads := w.r.SecretReads()
	_, err = w.r.For(ctx, "team-a", ref(partnersv1.KindPartnerConfig, "evil"))
	if reason(err) != partnersv1.ReasonAPIURLNotAllowed {
		t.Errorf("evil: %v", err)
	}
	if w.r.SecretReads() != reads {
		t.Error("a refused URL read the Secret")
	}
	_, err = w.r.For(ctx, "team-a", ref(partnersv1.KindPartnerConfig, "sim"))
	if reason(err) != partnersv1.ReasonSecretNotFound {
		t.Errorf("an allowed loopback URL gets as far as the Secret: %v", err)
	}
}

// Omitted ref: ClusterPartnerConfig/default, else the flag-built default.
func TestForDefault(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	cfg, err := w.r.For(ctx, "any", nil)
	if err != nil || cfg != w.def {
		t.Fatalf("want the flag-built default, got %+v, %v", cfg, err)
	}
	if !cfg.Grants(namespace("granted", nil)) || cfg.Grants(namespace("any", nil)) {
		t.Error("the default grants --account-access-namespaces")
	}
	if _, err := w.r.For(ctx, "any", ref(partnersv1.KindClusterPartnerConfig, "other")); reason(err) != partnersv1.ReasonPartnerConfigNotReady {
		t.Errorf("a missing named ClusterPartnerConfig: %v", err)
	}

	g := NewWithT(t)
	g.Expect(w.c.Create(ctx, keySecret("ops", "default-key", "apiKey", "15th_cluster_default"))).To(Succeed())
	g.Expect(w.c.Create(ctx, cpc("default", "", func(s *partnersv1.ClusterPartnerConfigSpec) {
		s.AccountAccess = &partnersv1.AccountAccess{Namespaces: []string{"other"}}
	}))).To(Succeed())
	cfg, err = w.r.For(ctx, "any", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg).NotTo(BeIdenticalTo(w.def))
	g.Expect(cfg.Ref).To(Equal(partnerconfig.DefaultRef))
	g.Expect(cfg.Endpoint).To(Equal("https://api.fifteenth.com"), "apiURL defaults to the public API")
	g.Expect(cfg.Fingerprint).To(Equal(partnerconfig.Fingerprint("15th_cluster_default")))
	g.Expect(cfg.Grants(namespace("other", nil))).To(BeTrue())
	g.Expect(cfg.Grants(namespace("any", nil))).To(BeFalse(), "accountAccess grants nobody else")

	w.r.Default = nil
	g.Expect(w.c.Delete(ctx, cpc("default", "", nil))).To(Succeed())
	_, err = w.r.For(ctx, "any", nil)
	g.Expect(reason(err)).To(Equal(partnersv1.ReasonPartnerConfigNotReady), "no object, no flag default")
}

// Missing Secret or key, and malformed keys; the messages of a ClusterPartnerConfig name neither
// its Secret's namespace nor the key.
func TestForSecretProblems(t *testing.T) {
	w := newWorld(t,
		cpc("nosecret", "", nil),
		cpc("nokey", "", nil), keySecret("ops", "nokey-key", "other", "15th_x"),
		cpc("empty", "", nil), keySecret("ops", "empty-key", "apiKey", "  \n"),
		cpc("bad", "", nil), keySecret("ops", "bad-key", "apiKey", "sk_live_supersecret"),
		cpc("padded", "", nil), keySecret("ops", "padded-key", "apiKey", " 15th_padded\n"),
	)
	ctx := context.Background()
	for name, want := range map[string]string{
		"nosecret": partnersv1.ReasonSecretNotFound, "nokey": partnersv1.ReasonSecretNotFound,
		"empty": partnersv1.ReasonKeyInvalid, "bad": partnersv1.ReasonKeyInvalid, "padded": "",
	} {
		cfg, err := w.r.For(ctx, "team", ref(partnersv1.KindClusterPartnerConfig, name))
		if reason(err) != want {
			t.Errorf("%s: want %q, got %v", name, want, err)
		}
		if err != nil && (strings.Contains(err.Error(), "ops") || strings.Contains(err.Error(), "supersecret")) {
			t.Errorf("%s: message %q names the Secret's namespace or the key", name, err)
		}
		if want == "" && cfg.Fingerprint != partnerconfig.Fingerprint("15th_padded") {
			t.Errorf("padded: white space around the key is trimmed")
		}
	}
}

// Secrets are read live, once per TTL; a rotated key gives a new client and fingerprint while
// another config keeps its client.
func TestKeyRotation(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t,
		keySecret("ops", "one-key", "apiKey", "15th_one_v1"), keySecret("ops", "two-key", "apiKey", "15th_two"),
		cpc("one", "", nil), cpc("two", "", nil),
	)
	ctx := context.Background()
	get := func(name string) *partnerconfig.Config {
		cfg, err := w.r.For(ctx, "team", ref(partnersv1.KindClusterPartnerConfig, name))
		g.Expect(err).NotTo(HaveOccurred())
		return cfg
	}
	one, two := get("one"), get("two")
	g.Expect(w.r.SecretReads()).To(BeEquivalentTo(2))
	for range 10 {
		g.Expect(get("one").API).To(BeIdenticalTo(one.API), "the client is cached")
	}
	g.Expect(w.r.SecretReads()).To(BeEquivalentTo(2), "within the TTL the Secret is not read again")

	s := keySecret("ops", "one-key", "apiKey", "15th_one_v2")
	g.Expect(w.c.Update(ctx, s)).To(Succeed())
	g.Expect(get("one").Fingerprint).To(Equal(one.Fingerprint), "the rotation is seen after the TTL")
	w.clock.Add(31 * time.Second)
	rotated := get("one")
	g.Expect(rotated.Fingerprint).To(Equal(partnerconfig.Fingerprint("15th_one_v2")))
	g.Expect(rotated.API).NotTo(BeIdenticalTo(one.API))
	still := get("two")
	g.Expect(still.API).To(BeIdenticalTo(two.API), "the other config keeps its client")
	g.Expect(still.Fingerprint).To(Equal(two.Fingerprint))
	g.Expect(w.r.SecretReads()).To(BeEquivalentTo(4))

	// A spec change rebuilds the client too.
	c := &partnersv1.ClusterPartnerConfig{}
	g.Expect(w.c.Get(ctx, client.ObjectKey{Name: "two"}, c)).To(Succeed())
	c.Spec.LoginLinkLimit = "5/1h"
	g.Expect(w.c.Update(ctx, c)).To(Succeed())
	g.Expect(get("two").API).NotTo(BeIdenticalTo(two.API))
}

// Two configs on one endpoint share an account's link budget; two endpoints do not.
func TestSharedLinkBudget(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv1 := httptest.NewServer(sim.New(sim.Config{}))
	t.Cleanup(srv1.Close)
	srv2 := httptest.NewServer(sim.New(sim.Config{}))
	t.Cleanup(srv2.Close)
	limit := func(s *partnersv1.ClusterPartnerConfigSpec) { s.LoginLinkLimit = "2/1h" }
	w := newWorld(t,
		keySecret("ops", "k1-key", "apiKey", "15th_k1"), keySecret("ops", "k2-key", "apiKey", "15th_k2"),
		keySecret("ops", "other-key", "apiKey", "15th_k1"),
		cpc("k1", srv1.URL, limit), cpc("k2", srv1.URL+"/", limit), cpc("other", srv2.URL, limit),
	)
	get := func(name string) *partnerconfig.Config {
		cfg, err := w.r.For(ctx, "team", ref(partnersv1.KindClusterPartnerConfig, name))
		g.Expect(err).NotTo(HaveOccurred())
		return cfg
	}
	k1, k2, other := get("k1"), get("k2"), get("other")
	g.Expect(k1.Endpoint).To(Equal(k2.Endpoint))
	acc, err := k1.API.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "j@example.com", FirstName: "J", LastName: "D"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k1.API.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k2.API.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k2.API.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "k1 and k2 share the account's budget on one endpoint: %v", err)

	acc2, err := other.API.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "j@example.com", FirstName: "J", LastName: "D"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(acc2.ID).To(Equal(acc.ID), "both simulators number from the same start")
	_, err = other.API.GenerateLoginLink(ctx, acc2.ID, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred(), "another endpoint has its own budget for the same account ID")
}

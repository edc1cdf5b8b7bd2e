package partnerconfig_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
)

func namespace(name string, l map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.fifteenth.com":          "https://api.fifteenth.com",
		"https://api.fifteenth.com/":         "https://api.fifteenth.com",
		"HTTPS://API.Fifteenth.com:443//":    "https://api.fifteenth.com",
		"https://proxy.example/fifteenth/":   "https://proxy.example/fifteenth",
		"http://127.0.0.1:8080/":             "http://127.0.0.1:8080",
		"http://localhost:80":                "http://localhost",
		"  https://api.fifteenth.com/  ":     "https://api.fifteenth.com",
		"https://[::1]:9443/":                "https://[::1]:9443",
		"https://api.fifteenth.com:8443/x/y": "https://api.fifteenth.com:8443/x/y",
	} {
		got, err := partnerconfig.NormalizeURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "api.fifteenth.com", "ftp://x", "https://u:p@api.fifteenth.com", "https://api.fifteenth.com/?a=1", "https://api.fifteenth.com/#f", "mailto:x@y"} {
		if got, err := partnerconfig.NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseAllowedAPIURLs(t *testing.T) {
	g := NewWithT(t)
	got, err := partnerconfig.ParseAllowedAPIURLs("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal([]string{"https://api.fifteenth.com"}))
	got, err = partnerconfig.ParseAllowedAPIURLs(" https://api.fifteenth.com/, http://127.0.0.1:9000/ ,")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal([]string{"https://api.fifteenth.com", "http://127.0.0.1:9000"}))
	_, err = partnerconfig.ParseAllowedAPIURLs("https://ok.example,nope")
	g.Expect(err).To(HaveOccurred())
}

func TestValidateKeyAndFingerprint(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"15th_abcdef0123456789", true},
		{"", false},
		{"15th_", false},
		{"sk_live_abcdef", false},
		{"15TH_abc", false},
		{"15th_abc def", false},
		{"15th_abc\x00", false},
		{"15th_abc\n15th_def", false},
	} {
		err := partnerconfig.ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			continue
		}
		if err != nil {
			if r, _ := partnerconfig.ReasonOf(err); r != partnersv1.ReasonKeyInvalid {
				t.Errorf("ValidateKey(%q) reason %q", tc.key, r)
			}
			if tc.key != "" && len(tc.key) > 5 && strings.Contains(err.Error(), tc.key) {
				t.Errorf("ValidateKey quotes the key: %v", err)
			}
		}
	}

	keys := []string{"15th_a", "15th_b", "15th_" + strings.Repeat("x", 64)}
	seen := map[string]bool{}
	for _, k := range keys {
		fp := partnerconfig.Fingerprint(k)
		if len(fp) != 12 || strings.Trim(fp, "0123456789abcdef") != "" {
			t.Errorf("Fingerprint(%q) = %q: want 12 hex digits", k, fp)
		}
		if strings.Contains(fp, k) || strings.Contains(k, fp) || strings.Contains(fp, "15th_") {
			t.Errorf("Fingerprint(%q) = %q contains the key", k, fp)
		}
		if seen[fp] {
			t.Errorf("Fingerprint collision for %q", k)
		}
		seen[fp] = true
		if partnerconfig.Fingerprint(k) != fp {
			t.Error("Fingerprint is not deterministic")
		}
	}
}

func TestAccess(t *testing.T) {
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}})
	if err != nil {
		t.Fatal(err)
	}
	gold := namespace("team-g", map[string]string{"tier": "gold"})
	for _, tc := range []struct {
		name   string
		access partnerconfig.Access
		ns     *corev1.Namespace
		want   bool
	}{
		{"nobody by default", partnerconfig.Access{}, namespace("a", nil), false},
		{"all", partnerconfig.Access{All: true}, namespace("a", nil), true},
		{"by name", partnerconfig.Access{Namespaces: []string{"a", "b"}}, namespace("b", nil), true},
		{"by name, other", partnerconfig.Access{Namespaces: []string{"a"}}, namespace("c", nil), false},
		{"by selector", partnerconfig.Access{Selector: sel}, gold, true},
		{"by selector, no match", partnerconfig.Access{Selector: sel}, namespace("x", map[string]string{"tier": "silver"}), false},
		{"names or selector", partnerconfig.Access{Namespaces: []string{"a"}, Selector: sel}, namespace("a", nil), true},
		{"nil namespace", partnerconfig.Access{Namespaces: []string{"a"}}, nil, false},
		{"empty selector matches all", partnerconfig.Access{Selector: labels.Everything()}, namespace("z", nil), true},
	} {
		if got := tc.access.Includes(tc.ns); got != tc.want {
			t.Errorf("%s: Includes = %v, want %v", tc.name, got, tc.want)
		}
	}

	for list, want := range map[string]partnerconfig.Access{
		"":            {},
		" , ":         {},
		"*":           {All: true},
		"a, b ,":      {Namespaces: []string{"a", "b"}},
		"team-a,*,x ": {All: true, Namespaces: []string{"team-a", "x"}},
	} {
		got := partnerconfig.ParseAccountAccess(list)
		if got.All != want.All || strings.Join(got.Namespaces, ",") != strings.Join(want.Namespaces, ",") {
			t.Errorf("ParseAccountAccess(%q) = %+v, want %+v", list, got, want)
		}
	}

	def := partnerconfig.NewDefault(nil, "https://api.fifteenth.com", "abc", "team-a")
	if !def.Grants(namespace("team-a", nil)) || def.Grants(namespace("team-b", nil)) {
		t.Error("the default grants exactly --account-access-namespaces")
	}
	if partnerconfig.NewDefault(nil, "", "", "").Grants(namespace("team-a", nil)) {
		t.Error("the default grants nobody without the flag")
	}
	tenant := &partnerconfig.Config{Tenant: true, Ref: partnerconfig.Ref{Kind: partnersv1.KindPartnerConfig, Namespace: "team-a", Name: "mine"}}
	if !tenant.Grants(namespace("team-a", nil)) || tenant.Grants(namespace("team-b", nil)) {
		t.Error("a PartnerConfig grants its own namespace only")
	}
}

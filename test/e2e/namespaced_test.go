package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The names config/namespaced gives the operator.
const (
	nsOperatorNS = "fifteenth-operator-namespaced"
	nsSA         = "fifteenth-ns-controller-manager"
	// nsTenant is the namespace config/namespaced watches as shipped.
	nsTenant = "tenant-a"
)

// TestNamespacedInstall installs config/namespaced and runs the manager as its ServiceAccount
// with the overlay's --watch-namespaces: with only the overlay's RoleBindings for Secrets it
// keeps links in the watched namespace, using a ClusterPartnerConfig whose key Secret is in
// the operator's namespace. Without the RoleBinding of the watched namespace it exits at the
// cache-sync timeout, non-zero, with a log line naming the forbidden resource.
func TestNamespacedInstall(t *testing.T) {
	e := newE2E(t, nsTenant)
	dir := filepath.Join(cluster.root, "config", "namespaced")
	e.install(dir, nsOperatorNS)

	// The manager runs with the namespaces the overlay's Deployment names.
	rendered := e.must("kustomize", dir)
	match := regexp.MustCompile(`--watch-namespaces=(\S+)`).FindStringSubmatch(rendered)
	if match == nil || !strings.Contains(match[1], nsTenant) {
		t.Fatalf("config/namespaced does not run the manager with --watch-namespaces including %s: %v", nsTenant, match)
	}
	for _, doc := range strings.Split(rendered, "\n---\n") {
		if strings.Contains(doc, "kind: ClusterRoleBinding") && strings.Contains(doc, "name: fifteenth-ns-manager-secrets-role\n") {
			t.Fatalf("config/namespaced binds the Secret ClusterRole cluster-wide:\n%s", doc)
		}
	}
	watch := match[1]

	// The partner key comes from a ClusterPartnerConfig whose Secret is in the operator's
	// namespace, as docs/operations.md shows for config/default; its accountAccess selects
	// namespaces by label, which the manager reads (the samples adopt an account).
	e.startSim()
	e.must("create", "secret", "generic", "fifteenth-api-credentials", "-n", nsOperatorNS, "--from-literal=api-key=15th_e2e_namespaced")
	t.Cleanup(func() { _, _ = e.k("delete", "clusterpartnerconfig", "default", "--ignore-not-found") })
	e.applyStdin(fmt.Sprintf(`apiVersion: partners.fifteenth.com/v1alpha1
kind: ClusterPartnerConfig
metadata: {name: default}
spec:
  apiURL: %s
  apiKeySecretRef: {namespace: %s, name: fifteenth-api-credentials, key: api-key}
  namespaces: [%s]
  accountAccess: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}}
`, e.simURL, nsOperatorNS, nsTenant, nsTenant))

	kubeconfig := e.tokenKubeconfig(nsOperatorNS, nsSA)
	args := []string{"--kubeconfig", kubeconfig, "--api-url", e.simURL, "--watch-namespaces", watch,
		"--leader-elect", "--leader-election-namespace", nsOperatorNS,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0"}
	m := e.startManager(args...)
	e.eventually("ClusterPartnerConfig Ready", 60*time.Second, func() error {
		_, err := e.k("wait", "--for=condition=Ready", "clusterpartnerconfig/default", "--timeout=5s")
		return err
	})
	e.applySamples()
	m.stop(t)
	e.noForbiddenNorLink(m.logs.String())

	// Without the RoleBinding of the watched namespace, the manager cannot list its Secrets:
	// it exits at the cache-sync timeout and says why.
	e.must("delete", "rolebinding", "fifteenth-ns-manager-secrets-rolebinding", "-n", nsTenant)
	m = e.startManager(append(args, "--cache-sync-timeout", "5s")...)
	if code := m.exited(t, 90*time.Second); code == 0 {
		t.Fatalf("the manager without Secret access exited 0")
	}
	l := m.logs.String()
	if strings.Contains(l, "tk_") {
		t.Fatal("the manager's log holds a link token")
	}
	for _, want := range []string{`secrets is forbidden`, `cannot list resource \"secrets\"`, `in the namespace \"tenant-a\"`, "caches did not sync"} {
		if !strings.Contains(l, want) && !strings.Contains(l, strings.ReplaceAll(want, `\"`, `"`)) {
			t.Fatalf("the manager's log does not say %q:\n%s", want, l)
		}
	}
}

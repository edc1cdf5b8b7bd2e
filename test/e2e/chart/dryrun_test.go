package chart

import (
	"strings"
	"testing"
)

// restrictedNamespace creates a namespace that enforces, warns about and audits the
// restricted pod security standard, so that a violation of the Deployment shows as a warning.
func restrictedNamespace(t *testing.T, name string) {
	t.Helper()
	mustK(t, "create", "namespace", name)
	mustK(t, "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
		"pod-security.kubernetes.io/warn=restricted", "pod-security.kubernetes.io/audit=restricted")
}

// dryRun applies manifest server-side with --dry-run=server and fails on any error or warning.
func dryRun(t *testing.T, what, manifest string) {
	t.Helper()
	out, stderr, err := kWithStderr([]byte(manifest), "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-")
	if err != nil {
		t.Fatalf("%s: server-side dry run: %v\n%s%s", what, err, stderr, out)
	}
	if strings.TrimSpace(stderr) != "" {
		t.Fatalf("%s: the API server warned:\n%s", what, stderr)
	}
	if n, want := strings.Count(out, "(server dry run)"), len(parse(t, manifest)); n != want {
		t.Errorf("%s: %d objects dry-run, want %d:\n%s", what, n, want, out)
	}
	t.Logf("%s: %d objects, no warning", what, len(parse(t, manifest)))
}

// TestServerSideDryRun renders the chart with its defaults and with every toggle on
// (ci/values-all.yaml: ServiceMonitor, PrometheusRule, PodDisruptionBudget, NetworkPolicy,
// watched namespaces, ...) and dry-runs every object on the API server: zero warnings.
func TestServerSideDryRun(t *testing.T) {
	cluster(t)
	restrictedNamespace(t, "dry-run")
	for _, ns := range []string{"team-a", "team-b"} { // values-all.yaml's watchNamespaces
		mustK(t, "create", "namespace", ns)
	}
	for _, c := range []struct {
		name  string
		args  []string
		kinds []string
	}{
		{"defaults", nil, []string{"CustomResourceDefinition", "Deployment", "ClusterRole"}},
		{"every toggle on", []string{"-f", allValues}, []string{"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"}},
	} {
		manifest := render(t, "fifteenth-operator", "dry-run", c.args...)
		kinds := map[string]bool{}
		for _, o := range parse(t, manifest) {
			kinds[str(o, "kind")] = true
		}
		for _, want := range c.kinds {
			if !kinds[want] {
				t.Errorf("%s: no %s rendered", c.name, want)
			}
		}
		dryRun(t, c.name, manifest)
	}
}

// TestWatchNamespacesBindSecretsPerNamespace: with watchNamespaces, the manager runs with
// --watch-namespaces and is bound to the Secret rules (config/rbac's manager-secrets-role) by
// a RoleBinding in each watched namespace instead of a ClusterRoleBinding.
func TestWatchNamespacesBindSecretsPerNamespace(t *testing.T) {
	dir := chartDir
	for _, c := range []struct {
		set  string
		want map[string]string
		arg  string
	}{
		{"watchNamespaces={team-a,team-b}", map[string]string{"RoleBinding team-a": "fifteenth-operator-manager-secrets-rolebinding",
			"RoleBinding team-b": "fifteenth-operator-manager-secrets-rolebinding"}, `"--watch-namespaces=team-a,team-b"`},
		{"watchNamespaces=null", map[string]string{"ClusterRoleBinding ": "fifteenth-operator-manager-secrets-rolebinding"}, ""},
	} {
		out, err := chart("template", "--name", "fifteenth-operator", "--namespace", "ops", "--set", c.set, dir)
		if err != nil {
			t.Fatal(err)
		}
		var podSpec string
		bindings := map[string]string{}
		for _, o := range parse(t, out) {
			switch str(o, "kind") {
			case "Deployment":
				podSpec = jsonString(o["spec"].(map[string]any)["template"])
			case "RoleBinding", "ClusterRoleBinding":
				if str(o, "roleRef", "name") == "fifteenth-operator-manager-secrets-role" {
					bindings[str(o, "kind")+" "+str(o, "metadata", "namespace")] = str(o, "metadata", "name")
				}
			}
		}
		if jsonString(bindings) != jsonString(c.want) {
			t.Errorf("%s: the Secret rules are bound by %v, want %v", c.set, bindings, c.want)
		}
		if got := strings.Contains(podSpec, "--watch-namespaces"); got != (c.arg != "") || !strings.Contains(podSpec, c.arg) {
			t.Errorf("%s: want %s in the manager's args: %s", c.set, c.arg, podSpec)
		}
	}
}

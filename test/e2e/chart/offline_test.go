package chart

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type object = map[string]any

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// parse splits multi-document YAML into objects, skipping empty documents.
func parse(t *testing.T, s string) []object {
	t.Helper()
	var objs []object
	for _, doc := range docSep.Split(s, -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

func str(o object, path ...string) string {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func key(o object) string {
	return str(o, "kind") + " " + str(o, "metadata", "namespace") + "/" + str(o, "metadata", "name")
}

func TestChartLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", allValues}} {
		out, err := chart(append(append([]string{"lint"}, args...), chartDir)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("chart-tool lint %v:\n%s", args, out)
	}
}

func TestSchemaRejectsUnknownKeys(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"unknown=1", "additional properties 'unknown'"},
		{"crds.remove=true", "additional properties 'remove'"},
		{"metrics.serviceMonitor.scrapeTimeout=10s", "additional properties 'scrapeTimeout'"},
		{"api.keySecret.namespace=x", "additional properties 'namespace'"},
		{"argocd.enabled=true", "additional properties 'enabled'"},
		{"networkPolicy.egress=true", "additional properties 'egress'"},
		{"watchNamespaces=team-a", "got string, want array"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		// Values the schema admits but the chart refuses, with a reason.
		{"replicaCount=2,leaderElection.enabled=false", "replicaCount > 1 needs leaderElection.enabled"},
	} {
		_, err := chart("template", "--set", c.set, chartDir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want a schema error with %q", c.set, err, c.want)
		}
	}
	// Every key values.yaml documents is admitted (values-all.yaml sets each of them).
	if _, err := chart("template", "-f", allValues, chartDir); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnly: readOnly runs the manager as a standby (--read-only); by default it is not.
func TestReadOnly(t *testing.T) {
	for _, c := range []struct {
		set  string
		want bool
	}{{"readOnly=true", true}, {"readOnly=false", false}} {
		var args []any
		for _, o := range parse(t, render(t, "fifteenth-operator", "ops", "--set", c.set)) {
			if str(o, "kind") == "Deployment" {
				spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
				args = spec["containers"].([]any)[0].(map[string]any)["args"].([]any)
			}
		}
		if got := slices.Contains(args, any("--read-only")); got != c.want {
			t.Errorf("--set %s: --read-only in the manager's args is %v, want %v: %v", c.set, got, c.want, args)
		}
	}
}

// TestSyncedFiles: the files the chart renders from are byte-identical copies of config/
// (make manifests runs hack/sync-chart.sh).
func TestSyncedFiles(t *testing.T) {
	for _, c := range []struct{ src, dest, glob string }{
		{"config/crd/bases", "files/crds", "*.yaml"},
		{"config/rbac", "files/rbac", "*.yaml"},
		{"config/prometheus", "files/prometheus", "rules.yaml"},
		{"config/argocd", "files/argocd", "argocd-cm.yaml"},
	} {
		want, _ := filepath.Glob(filepath.Join(root, c.src, c.glob))
		got, _ := filepath.Glob(filepath.Join(chartDir, c.dest, "*"))
		var names []string
		for _, f := range want {
			if filepath.Base(f) != "kustomization.yaml" {
				names = append(names, filepath.Base(f))
			}
		}
		var gotNames []string
		for _, f := range got {
			gotNames = append(gotNames, filepath.Base(f))
		}
		sort.Strings(names)
		sort.Strings(gotNames)
		if !reflect.DeepEqual(names, gotNames) {
			t.Errorf("%s holds %v, %s holds %v: run make manifests", c.dest, gotNames, c.src, names)
			continue
		}
		for _, n := range names {
			a, _ := os.ReadFile(filepath.Join(root, c.src, n))
			b, _ := os.ReadFile(filepath.Join(chartDir, c.dest, n))
			if !bytes.Equal(a, b) {
				t.Errorf("%s/%s differs from %s/%s: run make manifests", c.dest, n, c.src, n)
			}
		}
	}
}

// TestCRDs: the rendered CRDs are config/crd/bases' with only the chart's labels and, with
// crds.keep, the keep annotation added.
func TestCRDs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	want := map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o := parse(t, string(b))[0]
		want[str(o, "metadata", "name")] = o
	}
	for _, c := range []struct {
		set  string
		keep bool
		n    int
	}{{"crds.keep=true", true, len(want)}, {"crds.keep=false", false, len(want)}, {"crds.enabled=false", false, 0}} {
		n := 0
		for _, o := range parse(t, render(t, "fifteenth-operator", "fifteenth-operator-system", "--set", c.set)) {
			if str(o, "kind") != "CustomResourceDefinition" {
				continue
			}
			n++
			meta := o["metadata"].(map[string]any)
			ann, _ := meta["annotations"].(map[string]any)
			if got := ann["helm.sh/resource-policy"] == "keep"; got != c.keep {
				t.Errorf("%s: %s keep annotation %v, want %v", c.set, key(o), got, c.keep)
			}
			if meta["labels"].(map[string]any)["app.kubernetes.io/part-of"] != "fifteenth-operator" {
				t.Errorf("%s: %s has no chart labels", c.set, key(o))
			}
			delete(ann, "helm.sh/resource-policy")
			delete(meta, "labels")
			w := want[str(o, "metadata", "name")]
			if !reflect.DeepEqual(o, w) {
				t.Errorf("%s: %s differs from config/crd/bases:\n%s", c.set, key(o), diff(w, o))
			}
		}
		if n != c.n {
			t.Errorf("%s: %d CRDs rendered, want %d", c.set, n, c.n)
		}
	}
}

// diff shows two objects as indented JSON, one after the other, from the first differing line.
func diff(want, got any) string {
	a, _ := json.MarshalIndent(want, "", "  ")
	b, _ := json.MarshalIndent(got, "", "  ")
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	i := 0
	for i < len(al) && i < len(bl) && al[i] == bl[i] {
		i++
	}
	from := max(0, i-5)
	return "want:\n" + strings.Join(al[from:min(len(al), i+15)], "\n") + "\ngot:\n" + strings.Join(bl[from:min(len(bl), i+15)], "\n")
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAggregatedRoles: fifteenth-edit and fifteenth-view aggregate to the built-in roles,
// grant nothing on Secrets, and go with aggregatedRoles.enabled=false.
func TestAggregatedRoles(t *testing.T) {
	want := map[string][]string{
		"fifteenth-edit": {"rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-admin"},
		"fifteenth-view": {"rbac.authorization.k8s.io/aggregate-to-view"},
	}
	found := 0
	for _, o := range parse(t, render(t, "fifteenth-operator", "ops")) {
		labels, ok := want[str(o, "metadata", "name")]
		if str(o, "kind") != "ClusterRole" || !ok {
			continue
		}
		found++
		for _, l := range labels {
			if str(o, "metadata", "labels", l) != "true" {
				t.Errorf("%s has no label %s=true", key(o), l)
			}
		}
		if rules := jsonString(o["rules"]); strings.Contains(rules, "secrets") || !strings.Contains(rules, "partneraccounts") {
			t.Errorf("%s rules: %s", key(o), rules)
		}
	}
	if found != len(want) {
		t.Errorf("%d aggregated ClusterRoles rendered, want %d", found, len(want))
	}
	for _, o := range parse(t, render(t, "fifteenth-operator", "ops", "--set", "aggregatedRoles.enabled=false")) {
		if _, ok := want[str(o, "metadata", "name")]; ok {
			t.Errorf("aggregatedRoles.enabled=false renders %s", key(o))
		}
	}
}

// TestShardValues: a shard's values (docs/operations.md, Large installations) become its
// flags: the namespace selector, its own leader election ID, and no ClusterPartnerConfig
// status; by default none of them is passed. A selector with watchNamespaces is refused.
func TestShardValues(t *testing.T) {
	argsOf := func(sets ...string) []any {
		var flags []string
		for _, s := range sets {
			flags = append(flags, "--set", s)
		}
		for _, o := range parse(t, render(t, "fifteenth-operator", "ops", flags...)) {
			if str(o, "kind") == "Deployment" {
				spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
				return spec["containers"].([]any)[0].(map[string]any)["args"].([]any)
			}
		}
		t.Fatal("no Deployment")
		return nil
	}
	shard := argsOf("watchNamespaceSelector=fifteenth.com/shard=b", "leaderElection.id=fifteenth-operator-shard-b", "clusterConfigStatus=false")
	for _, want := range []string{"--watch-namespace-selector=fifteenth.com/shard=b", "--leader-election-id=fifteenth-operator-shard-b", "--cluster-config-status=false"} {
		if !slices.Contains(shard, any(want)) {
			t.Errorf("shard b's args lack %s: %v", want, shard)
		}
	}
	for _, a := range argsOf() {
		if s := a.(string); strings.HasPrefix(s, "--watch-namespace-selector") || strings.HasPrefix(s, "--leader-election-id") || strings.HasPrefix(s, "--cluster-config-status") {
			t.Errorf("the defaults pass %s", s)
		}
	}
	_, err := chart("template", "--set", "watchNamespaces={team-a},watchNamespaceSelector=fifteenth.com/shard=b", chartDir)
	if err == nil || !strings.Contains(err.Error(), "watchNamespaces and watchNamespaceSelector") {
		t.Errorf("watchNamespaces with watchNamespaceSelector: %v, want a refusal", err)
	}
}

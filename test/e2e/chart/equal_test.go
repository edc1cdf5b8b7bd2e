package chart

import (
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// chartOnlyLabels are the labels the chart adds that config/default has not: Helm's, and the
// release's instance label (in selectors too, so that two releases select their own pods).
var chartOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
	"app.kubernetes.io/version", "app.kubernetes.io/part-of"}

// compared are the kinds config/default and the chart must agree on.
var compared = map[string]bool{"Deployment": true, "Service": true, "ServiceAccount": true,
	"Role": true, "ClusterRole": true, "RoleBinding": true, "ClusterRoleBinding": true}

// normalize rewrites a rendered object as kustomize names it: the release's fullname prefix
// becomes namePrefix fifteenth-operator-, its namespace fifteenth-operator-system. The objects'
// own labels go (each install labels as it likes), and so do the chart's labels in selectors
// and pod templates (app.kubernetes.io/instance selects one release's pods).
func normalize(o object, fullname, namespace string) object {
	delete(o["metadata"].(map[string]any), "labels")
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
			for _, lk := range []string{"labels", "matchLabels", "selector"} {
				if m, ok := x[lk].(map[string]any); ok {
					for _, l := range chartOnlyLabels {
						delete(m, l)
					}
					if len(m) == 0 {
						delete(x, lk)
					}
				}
			}
			return x
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
			return x
		case string:
			if x == namespace {
				return "fifteenth-operator-system"
			}
			if strings.HasPrefix(x, fullname+"-") {
				return "fifteenth-operator-" + strings.TrimPrefix(x, fullname+"-")
			}
			return x
		}
		return v
	}
	return walk(o).(object)
}

// TestDeploymentAndRBACEqualConfigDefault: after normalising names, namespace and labels, the
// chart's default Deployment, Service, ServiceAccount and RBAC are config/default's (kubectl
// kustomize), object for object. The aggregated roles are the chart's own.
func TestDeploymentAndRBACEqualConfigDefault(t *testing.T) {
	kustomized := parse(t, mustK(t, "kustomize", filepath.Join(root, "config", "default")))
	want := map[string]object{}
	for _, o := range kustomized {
		if !compared[str(o, "kind")] {
			continue
		}
		o = normalize(o, "fifteenth-operator", "fifteenth-operator-system")
		want[key(o)] = o
	}
	got := map[string]object{}
	for _, o := range parse(t, render(t, "acme", "ops")) {
		if !compared[str(o, "kind")] || str(o, "metadata", "name") == "fifteenth-edit" || str(o, "metadata", "name") == "fifteenth-view" {
			continue
		}
		o = normalize(o, "acme-fifteenth-operator", "ops")
		got[key(o)] = o
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the chart renders %s, config/default does not", k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			t.Errorf("config/default has %s, the chart does not render it", k)
			continue
		}
		if !reflect.DeepEqual(want[k], g) {
			t.Errorf("%s differs from config/default's:\n%s", k, diff(want[k], g))
		}
	}
	t.Logf("compared %d objects: %s", len(keys), strings.Join(keys, ", "))
}

// Command chart-tool renders and lints a Helm chart with the Helm Go SDK, the way `helm
// template` and `helm lint --strict` do, so that the tests need no helm binary.
//
//	chart-tool template [--name N] [--namespace NS] [--kube-version V] [-f values.yaml]... [--set k=v]... CHART
//	chart-tool lint [--namespace NS] [--kube-version V] [-f values.yaml]... [--set k=v]... CHART
//
// template prints every rendered object as multi-document YAML, in Helm's install order,
// each preceded by a "# Source:" comment; values are checked against values.schema.json.
// lint prints every finding and fails on any warning or error (helm lint --strict).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	name, namespace, kubeVersion string
	files, sets                  list
	chart                        string
}

func parse(cmd string, args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "fifteenth-operator", "release name")
	fs.StringVar(&o.namespace, "namespace", "fifteenth-operator-system", "release namespace")
	fs.StringVar(&o.kubeVersion, "kube-version", "v1.34.4", "Kubernetes version of .Capabilities")
	fs.Var(&o.files, "f", "values file (repeatable)")
	fs.Var(&o.sets, "set", "key=value (repeatable, as helm --set)")
	// Flags may follow the chart, as with helm.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		return o, fmt.Errorf("%s: want exactly one chart directory, got %q", cmd, rest)
	}
	o.chart = rest[0]
	return o, nil
}

// values merges the values files and --set flags, later ones winning, as helm does.
func (o options) values() (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range o.files {
		b, err := os.ReadFile(f) // #nosec G304 -- the file the user names
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vals = chartutil.MergeTables(m, vals)
	}
	for _, s := range o.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

func render(o options, w io.Writer) error {
	ch, err := loader.Load(o.chart)
	if err != nil {
		return err
	}
	vals, err := o.values()
	if err != nil {
		return err
	}
	kv, err := chartutil.ParseKubeVersion(o.kubeVersion)
	if err != nil {
		return err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: o.name, Namespace: o.namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return err
	}
	files, err := engine.Render(ch, top)
	if err != nil {
		return err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasPrefix(path.Base(name), "_") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return err
	}
	if len(hooks) > 0 {
		return errors.New("the chart has hooks, which chart-tool does not render")
	}
	for _, m := range manifests {
		if _, err := fmt.Fprintf(w, "---\n# Source: %s\n%s\n", m.Name, strings.TrimSpace(m.Content)); err != nil {
			return err
		}
	}
	return nil
}

func lintChart(o options, w io.Writer) error {
	vals, err := o.values()
	if err != nil {
		return err
	}
	kv, err := chartutil.ParseKubeVersion(o.kubeVersion)
	if err != nil {
		return err
	}
	l := lint.AllWithKubeVersion(o.chart, vals, o.namespace, kv)
	failed := 0
	for _, m := range l.Messages {
		_, _ = fmt.Fprintln(w, m.Error())
		if m.Severity >= support.WarningSev {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d warnings or errors", o.chart, failed)
	}
	_, _ = fmt.Fprintf(w, "%s: linted, no warnings (%d findings of lower severity)\n", o.chart, len(l.Messages))
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chart-tool template|lint [flags] CHART")
		os.Exit(2)
	}
	o, err := parse(os.Args[1], os.Args[2:])
	if err == nil {
		switch os.Args[1] {
		case "template":
			err = render(o, os.Stdout)
		case "lint":
			err = lintChart(o, os.Stdout)
		default:
			err = fmt.Errorf("unknown command %q: want template or lint", os.Args[1])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart-tool:", err)
		os.Exit(1)
	}
}

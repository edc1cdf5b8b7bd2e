// Package chart tests charts/fifteenth-operator: it renders and lints the chart with
// bin/chart-tool (the Helm Go SDK, module hack/tools/helm), dry-runs every rendered object on
// the test control plane in a namespace enforcing the restricted pod security standard,
// compares the chart with config/ (CRDs byte for byte, the Deployment and RBAC with
// config/default's), installs it for real, runs the built manager as the chart's
// ServiceAccount, and installs a second release beside the first.
//
// One control plane serves the package, started by the first test that needs it and stopped
// by TestMain.
package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// promOperator is the pinned Prometheus Operator module whose example/prometheus-operator-crd
// holds the ServiceMonitor and PrometheusRule CRDs installed in the test cluster; promSum is
// its go.sum hash, checked after download.
const (
	promOperator = "github.com/prometheus-operator/prometheus-operator@v0.92.1"
	promSum      = "h1:rHWuFo6SVya4FBSCNg2DCzyc4xAv54zk3eDTzp5mQZc="
)

var (
	root      = testenv.RepoRoot()
	chartDir  = filepath.Join(root, "charts", "fifteenth-operator")
	allValues = filepath.Join(chartDir, "ci", "values-all.yaml")
	chartTool string
	kubectl   string
	admin     string // the admin kubeconfig
	env       *envtest.Environment
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if tmp, err = os.MkdirTemp("", "chart-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if chartTool, err = buildChartTool(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(testenv.AssetsDir(), "kubectl")
	code := m.Run()
	if env != nil {
		if err := testenv.Stop(env); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}

var (
	tmp        string
	startOnce  sync.Once
	startError error
)

// cluster starts the package's control plane on first use (the tests that render only need
// none), with an admin kubeconfig and the Prometheus Operator's CRDs.
func cluster(t *testing.T) {
	t.Helper()
	startOnce.Do(func() {
		// As strict clusters run: owner references checked, the garbage collector and the
		// ClusterRole aggregation controller at work.
		if env, _, startError = testenv.StartWith(testenv.Options{
			ControllerManager: true, AdmissionPlugins: []string{"OwnerReferencesPermissionEnforcement"},
		}); startError != nil {
			return
		}
		admin = filepath.Join(tmp, "admin.kubeconfig")
		if startError = testenv.WriteAdminKubeconfig(env, admin); startError != nil {
			return
		}
		startError = installPrometheusCRDs()
	})
	if startError != nil {
		t.Fatal(startError)
	}
}

// buildChartTool returns $CHART_TOOL (make test builds bin/chart-tool), else builds it.
func buildChartTool(dir string) (string, error) {
	if p := os.Getenv("CHART_TOOL"); p != "" {
		if !filepath.IsAbs(p) { // relative to the repository, not to this package
			p = filepath.Join(root, p)
		}
		return p, nil
	}
	out := filepath.Join(dir, "chart-tool")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join(root, "hack", "tools", "helm")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building chart-tool: %w: %s", err, b)
	}
	return out, nil
}

// installPrometheusCRDs installs the ServiceMonitor and PrometheusRule CRDs of the pinned
// Prometheus Operator module (fetched from the module proxy into the module cache).
func installPrometheusCRDs() error {
	cmd := exec.Command("go", "mod", "download", "-json", promOperator)
	cmd.Dir = os.TempDir() // outside any module: the main go.mod is not touched
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", promOperator, err)
	}
	var mod struct{ Dir, Sum string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return err
	}
	if mod.Sum != promSum {
		return fmt.Errorf("%s: sum %s, want %s", promOperator, mod.Sum, promSum)
	}
	crds := filepath.Join(mod.Dir, "example", "prometheus-operator-crd")
	if _, err := k("apply", "--server-side",
		"-f", filepath.Join(crds, "monitoring.coreos.com_servicemonitors.yaml"),
		"-f", filepath.Join(crds, "monitoring.coreos.com_prometheusrules.yaml")); err != nil {
		return err
	}
	_, err = k("wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	return err
}

// k runs kubectl as the cluster admin; the error holds stderr.
func k(args ...string) (string, error) {
	out, stderr, err := kWithStderr(nil, args...)
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}

// kWithStderr runs kubectl as the cluster admin with stdin, returning stdout and stderr
// (where kubectl prints the API server's warnings).
func kWithStderr(stdin []byte, args ...string) (string, string, error) {
	if admin != "" {
		args = append([]string{"--kubeconfig", admin}, args...)
	}
	cmd := exec.Command(kubectl, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// chart runs chart-tool with args; the error holds stderr.
func chart(args ...string) (string, error) {
	cmd := exec.Command(chartTool, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("chart-tool %s: %w: %s%s", strings.Join(args, " "), err, errb.String(), out.String())
	}
	return out.String(), nil
}

// render renders the chart as release name in namespace with args (-f, --set).
func render(t *testing.T, name, namespace string, args ...string) string {
	t.Helper()
	out, err := chart(append([]string{"template", "--name", name, "--namespace", namespace}, append(args, chartDir)...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Package e2e installs the operator as its users do (kubectl apply -k config/default, or
// config/namespaced) on the local control plane, runs the built manager with its
// ServiceAccount's token, so that a missing RBAC rule fails the suite, and drives the user
// stories through kubectl only.
//
// One control plane serves the whole package (TestMain); each test has its own namespace.
// kube-apiserver runs with OwnerReferencesPermissionEnforcement, as OpenShift and hardened
// clusters do: setting blockOwnerDeletion needs update on the owner's finalizers.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// cluster is the control plane shared by the package's tests.
var cluster struct {
	kubectl string // kubectl binary
	admin   string // cluster-admin kubeconfig
	root    string // repository root
	manager string // the built manager
	dir     string // scratch directory
}

// controlPlane is how the package's control plane is started.
var controlPlane = testenv.Options{
	AdmissionPlugins:  []string{"OwnerReferencesPermissionEnforcement"},
	ControllerManager: true,
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env, _, err := testenv.StartWith(controlPlane)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = testenv.Stop(env) }()
	dir, err := os.MkdirTemp("", "fifteenth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cluster.dir, cluster.root = dir, testenv.RepoRoot()
	cluster.kubectl = filepath.Join(testenv.AssetsDir(), "kubectl")
	cluster.admin = filepath.Join(dir, "admin.kubeconfig")
	if err := testenv.WriteAdminKubeconfig(env, cluster.admin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cluster.manager = filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", cluster.manager, cluster.root).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v: %s\n", err, out)
		return 1
	}
	return m.Run()
}

// e2e is one test's view of the cluster: its namespace, its simulator, its manager's log.
type e2e struct {
	t      *testing.T
	ns     string
	simURL string
	logs   *testenv.LogBuffer
}

// newE2E creates the test's namespace.
func newE2E(t *testing.T, ns string) *e2e {
	e := &e2e{t: t, ns: ns}
	e.must("create", "namespace", ns)
	return e
}

// k runs kubectl as the cluster admin (the user applying manifests).
func (e *e2e) k(args ...string) (string, error) {
	cmd := exec.Command(cluster.kubectl, append([]string{"--kubeconfig", cluster.admin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// applyStdin applies a manifest given inline.
func (e *e2e) applyStdin(manifest string) {
	e.t.Helper()
	cmd := exec.Command(cluster.kubectl, "--kubeconfig", cluster.admin, "apply", "--server-side", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("kubectl apply: %v: %s", err, out)
	}
}

func (e *e2e) must(args ...string) string {
	e.t.Helper()
	out, err := e.k(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// install applies a kustomization as a user would, into operatorNS. The server-side dry run
// needs the namespace to exist.
func (e *e2e) install(dir, operatorNS string) {
	e.t.Helper()
	if _, err := e.k("get", "namespace", operatorNS); err != nil {
		e.must("create", "namespace", operatorNS)
	}
	e.must("apply", "--dry-run=server", "--server-side", "-k", dir)
	e.must("apply", "--server-side", "-k", dir)
	e.must("wait", "--for=condition=Established", "crd/partneraccounts.partners.fifteenth.com", "crd/loginlinks.partners.fifteenth.com", "--timeout=60s")
}

// token returns a token of a ServiceAccount.
func (e *e2e) token(namespace, sa string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must("create", "token", sa, "-n", namespace, "--duration=2h"))
}

// tokenKubeconfig writes a kubeconfig authenticating as a ServiceAccount: the manager runs
// out of cluster with it, and RBAC applies to it.
func (e *e2e) tokenKubeconfig(namespace, sa string) string {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "sa.kubeconfig")
	if err := testenv.WriteTokenKubeconfig(cluster.admin, path, e.token(namespace, sa)); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// startSim starts the simulator with the accounts the samples expect: 12345 (Alex Morgan,
// with the user accountant@example.com) and 12346.
func (e *e2e) startSim() {
	e.t.Helper()
	srv := httptest.NewServer(sim.New(sim.Config{}))
	e.t.Cleanup(srv.Close)
	e.simURL = srv.URL
	api, _ := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: fifteenth.StaticKey("15th_e2e")})
	for _, email := range []string{"alex.morgan@example.com", "sam.lee@example.com"} { // 12345, 12346
		if _, err := api.CreateAccount(context.Background(), fifteenth.CreateAccountRequest{Email: email, FirstName: "A", LastName: "B"}); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := http.Post(srv.URL+"/_sim/accounts/12345/users", "application/json", strings.NewReader(`{"email":"accountant@example.com"}`))
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
}

// manager is a running manager process.
type manager struct {
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	done chan struct{}
	err  error // the exit status, once done is closed
}

// startManager runs the built manager with args (and a key file), logging into a buffer
// that the test prints when it fails. It is stopped at the end of the test.
func (e *e2e) startManager(args ...string) *manager {
	e.t.Helper()
	keyFile := filepath.Join(e.t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte("15th_e2e_key\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	m := &manager{logs: &testenv.LogBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(cluster.manager, append([]string{"--api-key-file", keyFile, "--zap-log-level", "debug"}, args...)...)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	e.logs = m.logs
	e.t.Cleanup(func() {
		m.stop(e.t)
		if e.t.Failed() {
			e.t.Logf("manager log:\n%s", m.logs.String())
		}
	})
	return m
}

// stop sends SIGTERM and waits for the exit.
func (m *manager) stop(t *testing.T) {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(time.Minute):
		_ = m.cmd.Process.Kill()
		<-m.done
		t.Errorf("the manager did not stop within a minute of SIGTERM")
	}
}

// exited waits up to timeout for the process to end by itself and returns its exit code.
func (m *manager) exited(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(timeout):
		t.Fatalf("the manager still runs %s after its start", timeout)
	}
	var exit *exec.ExitError
	if errors.As(m.err, &exit) {
		return exit.ExitCode()
	}
	if m.err != nil {
		t.Fatal(m.err)
	}
	return 0
}

// eventually retries f every 100 ms until it succeeds or the timeout passes. It stops at
// once when the manager was refused by RBAC: a missing rule fails fast and says which.
func (e *e2e) eventually(what string, timeout time.Duration, f func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		if e.logs != nil {
			if l := e.logs.String(); strings.Contains(l, "forbidden") {
				i := strings.Index(l, "forbidden")
				e.t.Fatalf("%s: the manager was refused by RBAC: ...%s...", what, l[max(0, i-300):min(len(l), i+200)])
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("%s: %v", what, err)
}

// noForbiddenNorLink fails when the manager's log shows an RBAC refusal or a link token.
func (e *e2e) noForbiddenNorLink(l string) {
	e.t.Helper()
	for _, bad := range []string{"forbidden", "Forbidden", "tk_"} {
		if strings.Contains(l, bad) {
			i := strings.Index(l, bad)
			e.t.Fatalf("manager log contains %q: ...%s...", bad, l[max(0, i-300):min(len(l), i+200)])
		}
	}
}

func (e *e2e) secretField(name, key string) (string, error) {
	out, err := e.k("get", "secret", name, "-n", e.ns, "-o", "jsonpath={.data."+key+"}")
	if err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(out)
	return string(b), err
}

func (e *e2e) linkState(link string) string {
	resp, err := http.Get(e.simURL + "/_sim/links/" + link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		return err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	var st sim.LinkState
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st.State
}

// applySamples applies config/samples in the test's namespace, waits until all are Ready,
// and checks that every Secret holds a valid link.
func (e *e2e) applySamples() {
	e.t.Helper()
	e.must("apply", "-n", e.ns, "-k", filepath.Join(cluster.root, "config", "samples"))
	e.eventually("samples Ready", 90*time.Second, func() error {
		_, err := e.k("wait", "-n", e.ns, "--for=condition=Ready", "partneraccounts,loginlinks", "--all", "--timeout=5s")
		return err
	})
	for _, secret := range []string{"john-doe-login-link", "john-doe-spouse-login-link", "alex-morgan-login-link", "alex-morgan-accountant", "support-ticket-4711"} {
		link, err := e.secretField(secret, "login_link")
		if err != nil || e.linkState(link) != "valid" {
			e.t.Fatalf("Secret %s: link state %q (%v)", secret, e.linkState(link), err)
		}
	}
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Package e2e installs the operator as its users do (kubectl apply -k config/default) on the
// local control plane, runs the built manager with its ServiceAccount's token, so that a
// missing RBAC rule fails the suite, and drives the user stories through kubectl only.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

const (
	operatorNS = "fifteenth-operator-system"
	sa         = "fifteenth-operator-controller-manager"
	ns         = "e2e"
)

type e2e struct {
	t       *testing.T
	kubectl string
	admin   string
	root    string
	simURL  string
	logs    *testenv.LogBuffer
}

// k runs kubectl as the cluster admin (the user applying manifests).
func (e *e2e) k(args ...string) (string, error) {
	cmd := exec.Command(e.kubectl, append([]string{"--kubeconfig", e.admin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (e *e2e) must(args ...string) string {
	e.t.Helper()
	out, err := e.k(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
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

func (e *e2e) secretField(name, key string) (string, error) {
	out, err := e.k("get", "secret", name, "-n", ns, "-o", "jsonpath={.data."+key+"}")
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

func TestOperatorAsItsUsersRunIt(t *testing.T) {
	env, _, err := testenv.StartWith(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	e := &e2e{t: t, kubectl: filepath.Join(testenv.AssetsDir(), "kubectl"), admin: filepath.Join(dir, "admin.kubeconfig"), root: testenv.RepoRoot()}
	if err := testenv.WriteAdminKubeconfig(env, e.admin); err != nil {
		t.Fatal(err)
	}
	defaultDir := filepath.Join(e.root, "config", "default")

	// Install as a user would. The server-side dry run needs the namespace to exist.
	e.must("create", "namespace", operatorNS)
	e.must("apply", "--dry-run=server", "--server-side", "-k", defaultDir)
	e.must("apply", "--server-side", "-k", defaultDir)
	e.must("wait", "--for=condition=Established", "crd/partneraccounts.partners.fifteenth.com", "crd/loginlinks.partners.fifteenth.com", "--timeout=60s")
	e.must("create", "namespace", ns)

	// The manager runs out of cluster with the ServiceAccount's token: RBAC applies to it.
	token := strings.TrimSpace(e.must("create", "token", sa, "-n", operatorNS, "--duration=2h"))
	saKubeconfig := filepath.Join(dir, "sa.kubeconfig")
	writeTokenKubeconfig(t, e.admin, saKubeconfig, token)

	s := sim.New(sim.Config{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	e.simURL = srv.URL
	api, _ := fifteenth.New(fifteenth.Options{BaseURL: srv.URL, Key: fifteenth.StaticKey("15th_e2e")})
	for _, email := range []string{"alex.morgan@example.com", "sam.lee@example.com"} { // 12345, 12346
		if _, err := api.CreateAccount(context.Background(), fifteenth.CreateAccountRequest{Email: email, FirstName: "A", LastName: "B"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(srv.URL+"/_sim/accounts/12345/users", "application/json", strings.NewReader(`{"email":"accountant@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	manager := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", manager, e.root).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	keyFile := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyFile, []byte("15th_e2e_key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	e.logs = logs
	cmd := exec.Command(manager, "--kubeconfig", saKubeconfig, "--api-url", srv.URL, "--api-key-file", keyFile,
		"--leader-elect", "--leader-election-namespace", operatorNS, "--account-access-namespaces", ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0", "--zap-log-level", "debug")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("the manager did not stop within a minute of SIGTERM")
			}
		}
	}
	defer stop()
	defer func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	// User story: apply the samples, wait for Ready.
	e.must("apply", "-n", ns, "-k", filepath.Join(e.root, "config", "samples"))
	e.eventually("samples Ready", 90*time.Second, func() error {
		_, err := e.k("wait", "-n", ns, "--for=condition=Ready", "partneraccounts,loginlinks", "--all", "--timeout=5s")
		return err
	})
	for _, secret := range []string{"john-doe-login-link", "john-doe-spouse-login-link", "alex-morgan-login-link", "alex-morgan-accountant", "support-ticket-4711"} {
		link, err := e.secretField(secret, "login_link")
		if err != nil || e.linkState(link) != "valid" {
			t.Fatalf("Secret %s: link state %q (%v)", secret, e.linkState(link), err)
		}
	}
	out := e.must("get", "partneraccounts", "-n", ns)
	if !strings.Contains(out, "john.doe@example.com") || !strings.Contains(out, "active") {
		t.Fatalf("kubectl get partneraccounts:\n%s", out)
	}

	// Argo CD applies with server-side apply: applying the same manifest again shows no diff,
	// because the operator never writes to spec or to tracked metadata.
	sample := filepath.Join(e.root, "config", "samples", "partners_v1alpha1_partneraccount_spouse.yaml")
	e.must("apply", "-n", ns, "--server-side", "--field-manager=argocd-controller", "--force-conflicts", "-f", sample)
	e.must("apply", "-n", ns, "--server-side", "--field-manager=argocd-controller", "-f", sample)
	if out, err := e.k("diff", "-n", ns, "--server-side", "--field-manager=argocd-controller", "-f", sample); err != nil {
		t.Fatalf("kubectl diff after a second server-side apply: %v\n%s", err, out)
	}

	// User story: the Secret is deleted by mistake: it is put back with a fresh link.
	old, _ := e.secretField("john-doe-login-link", "login_link")
	e.must("delete", "secret", "john-doe-login-link", "-n", ns)
	e.eventually("Secret put back", 30*time.Second, func() error {
		link, err := e.secretField("john-doe-login-link", "login_link")
		if err != nil || link == "" || link == old {
			return fmt.Errorf("link not replaced yet (%w)", err)
		}
		if st := e.linkState(link); st != "valid" {
			return fmt.Errorf("new link is %s", st)
		}
		return nil
	})

	// User story: labels for the consumer change, then the Secret is renamed.
	e.must("patch", "loginlink", "alex-morgan-accountant", "-n", ns, "--type=merge", "-p",
		`{"spec":{"secretTemplate":{"labels":{"app.kubernetes.io/part-of":"client-portal","tier":"gold"}}}}`)
	e.eventually("template label applied", 30*time.Second, func() error {
		out, err := e.k("get", "secret", "alex-morgan-accountant", "-n", ns, "-o", "jsonpath={.metadata.labels.tier}")
		if err != nil || out != "gold" {
			return fmt.Errorf("label tier=%q (%w)", out, err)
		}
		return nil
	})
	e.must("patch", "loginlink", "alex-morgan-accountant", "-n", ns, "--type=merge", "-p", `{"spec":{"secretName":"accountant-portal"}}`)
	e.eventually("Secret renamed", 30*time.Second, func() error {
		if _, err := e.secretField("accountant-portal", "login_link"); err != nil {
			return err
		}
		if _, err := e.k("get", "secret", "alex-morgan-accountant", "-n", ns); err == nil {
			return fmt.Errorf("the old Secret is still there")
		}
		return nil
	})

	// User story: a manual renewal.
	before, _ := e.secretField("alex-morgan-login-link", "login_link")
	e.must("annotate", "loginlink", "alex-morgan-holder", "-n", ns, "--overwrite",
		"partners.fifteenth.com/renew-requested-at="+time.Now().Add(time.Second).UTC().Format(time.RFC3339))
	e.eventually("manual renewal", 30*time.Second, func() error {
		after, err := e.secretField("alex-morgan-login-link", "login_link")
		if err != nil || after == before {
			return fmt.Errorf("not renewed yet (%w)", err)
		}
		return nil
	})

	// The operator recorded Events and holds the leader Lease.
	e.eventually("Events recorded", 30*time.Second, func() error {
		out, err := e.k("get", "events.events.k8s.io", "-n", ns, "-o", "jsonpath={.items[*].reason}")
		if err != nil || !strings.Contains(out, "Created") || !strings.Contains(out, "Generated") || !strings.Contains(out, "Renewed") {
			return fmt.Errorf("event reasons %q (%w)", out, err)
		}
		return nil
	})
	if out := e.must("get", "leases", "-n", operatorNS, "-o", "name"); !strings.Contains(out, "fifteenth-operator") {
		t.Fatalf("no leader election Lease: %q", out)
	}

	// User story: deleting a PartnerAccount leaves the client's Fifteenth account.
	e.must("delete", "partneraccount", "john-doe", "-n", ns)
	var accounts []sim.Account
	r2, err := http.Get(srv.URL + "/_sim/accounts")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r2.Body).Decode(&accounts)
	_ = r2.Body.Close()
	if len(accounts) != 3 {
		t.Fatalf("%d accounts in the simulator after deleting a PartnerAccount, want 3", len(accounts))
	}

	stop()
	l := logs.String()
	for _, bad := range []string{"forbidden", "Forbidden", "tk_"} {
		if strings.Contains(l, bad) {
			i := strings.Index(l, bad)
			t.Fatalf("manager log contains %q: ...%s...", bad, l[max(0, i-300):min(len(l), i+200)])
		}
	}
}

// writeTokenKubeconfig writes a kubeconfig for the admin's cluster that authenticates with token.
func writeTokenKubeconfig(t *testing.T, admin, path, token string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	out := clientcmdapi.NewConfig()
	out.Clusters["c"] = cfg.Clusters[ctx.Cluster]
	out.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	out.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	out.CurrentContext = "sa"
	if err := clientcmd.WriteToFile(*out, path); err != nil {
		t.Fatal(err)
	}
}

package chart

import (
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

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

const (
	releaseNS = "fifteenth-operator-system"
	appNS     = "chart-e2e"
)

// eventually retries f every 100 ms until it succeeds or the timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// resourceVersions returns kind/namespace/name -> resourceVersion of the rendered objects.
func resourceVersions(t *testing.T, manifest string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range parse(t, manifest) {
		args := []string{"get", str(o, "kind") + "." + strings.Split(str(o, "apiVersion")+"/", "/")[0], str(o, "metadata", "name"), "-o", "jsonpath={.metadata.resourceVersion}"}
		if !strings.Contains(str(o, "apiVersion"), "/") {
			args[1] = str(o, "kind")
		}
		if ns := str(o, "metadata", "namespace"); ns != "" {
			args = append(args, "-n", ns)
		}
		out[key(o)] = mustK(t, args...)
	}
	return out
}

// TestInstallRunAndSecondRelease installs the chart for real (as helm install would, in
// install order), runs the built manager out of cluster as the chart's ServiceAccount against
// the simulator until a PartnerAccount is Ready and its LoginLink Secret holds a valid link,
// then installs a second release in another namespace, watching another namespace, beside it:
// no object of the first release changes and every name differs.
func TestInstallRunAndSecondRelease(t *testing.T) {
	cluster(t)
	dir := t.TempDir()
	restrictedNamespace(t, releaseNS)
	mustK(t, "create", "namespace", appNS)
	first := render(t, "fifteenth-operator", releaseNS, "--set", "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true")
	out, stderr, err := kWithStderr([]byte(first), "apply", "--server-side", "--field-manager=helm", "-f", "-")
	if err != nil || strings.TrimSpace(stderr) != "" {
		t.Fatalf("installing the chart: %v\n%s%s", err, stderr, out)
	}
	mustK(t, "wait", "--for=condition=Established", "--timeout=60s", "crd/partneraccounts.partners.fifteenth.com", "crd/loginlinks.partners.fifteenth.com")

	// The manager runs out of cluster with the chart's ServiceAccount's token: the chart's
	// RBAC applies to it.
	token := strings.TrimSpace(mustK(t, "create", "token", "fifteenth-operator-controller-manager", "-n", releaseNS, "--duration=1h"))
	saKubeconfig := filepath.Join(dir, "sa.kubeconfig")
	if err := testenv.WriteTokenKubeconfig(admin, saKubeconfig, token); err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Config{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	manager := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", manager, root).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	keyFile := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyFile, []byte("15th_chart_key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	// The manager runs with the args of the rendered Deployment, where only what differs out
	// of cluster is replaced: the API's URL (the simulator), the key file, loopback addresses.
	args := []string{"--kubeconfig", saKubeconfig, "--leader-election-namespace", releaseNS}
	for _, a := range deploymentArgs(t, first) {
		switch name := strings.SplitN(a, "=", 2)[0]; name {
		case "--api-url":
			a = name + "=" + srv.URL
		case "--api-key-file":
			a = name + "=" + keyFile
		case "--metrics-bind-address", "--health-probe-bind-address":
			a = name + "=127.0.0.1:0"
		}
		args = append(args, a)
	}
	cmd := exec.Command(manager, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+releaseNS) // the Deployment's downward API
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	mustK(t, "apply", "-n", appNS, "-f", filepath.Join(root, "config", "samples", "partners_v1alpha1_partneraccount_spouse.yaml"))
	eventually(t, "PartnerAccount Ready", 90*time.Second, func() error {
		if strings.Contains(logs.String(), "forbidden") {
			t.Fatalf("the manager was refused by RBAC:\n%s", logs.String())
		}
		_, err := k("wait", "-n", appNS, "--for=condition=Ready", "partneraccount/john-doe", "--timeout=2s")
		return err
	})
	eventually(t, "a valid link in the Secret", 30*time.Second, func() error {
		b64, err := k("get", "secret", "john-doe-login-link", "-n", appNS, "-o", "jsonpath={.data.login_link}")
		if err != nil {
			return err
		}
		link, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(link) == 0 {
			return fmt.Errorf("no login_link (%w)", err)
		}
		return linkValid(srv.URL, string(link))
	})

	// The aggregated roles extend the built-in ones: whoever may edit a namespace may edit
	// its PartnerAccounts and LoginLinks, and a viewer may read them (never their Secrets).
	mustK(t, "create", "rolebinding", "editor", "--clusterrole=edit", "--user=editor", "-n", appNS)
	mustK(t, "create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer", "-n", appNS)
	eventually(t, "fifteenth-edit and fifteenth-view aggregated into edit and view", 30*time.Second, func() error {
		for _, c := range []struct{ user, verb, resource, want string }{
			{"editor", "create", "partneraccounts.partners.fifteenth.com", "yes"},
			{"editor", "delete", "loginlinks.partners.fifteenth.com", "yes"},
			{"viewer", "list", "loginlinks.partners.fifteenth.com", "yes"},
			{"viewer", "create", "partneraccounts.partners.fifteenth.com", "no"},
		} {
			out, _ := k("auth", "can-i", c.verb, c.resource, "-n", appNS, "--as", c.user)
			if strings.TrimSpace(out) != c.want {
				return fmt.Errorf("%s may %s %s: %q, want %q", c.user, c.verb, c.resource, strings.TrimSpace(out), c.want)
			}
		}
		return nil
	})

	// A second release in another namespace, watching another namespace, with the
	// cluster-wide shared objects (CRDs, aggregated roles) left to the first.
	before := resourceVersions(t, first)
	secondNS := "team-b-operator"
	restrictedNamespace(t, secondNS)
	mustK(t, "create", "namespace", "team-b-apps")
	second := render(t, "team-b", secondNS, "--set", "crds.enabled=false,aggregatedRoles.enabled=false,watchNamespaces={team-b-apps}")
	out, stderr, err = kWithStderr([]byte(second), "apply", "--server-side", "--field-manager=helm", "-f", "-")
	if err != nil || strings.TrimSpace(stderr) != "" {
		t.Fatalf("installing a second release: %v\n%s%s", err, stderr, out)
	}
	firstKeys := map[string]bool{}
	for _, o := range parse(t, first) {
		firstKeys[key(o)] = true
	}
	for _, o := range parse(t, second) {
		if firstKeys[key(o)] {
			t.Errorf("both releases render %s", key(o))
		}
	}
	// The second release's manager may touch Secrets only in the namespace it watches, and
	// get (not list) them in its own namespace, where ClusterPartnerConfigs' keys live.
	sa := "system:serviceaccount:" + secondNS + ":team-b-fifteenth-operator-controller-manager"
	for _, c := range []struct{ verb, ns, want string }{
		{"create", "team-b-apps", "yes"},
		{"list", "team-b-apps", "yes"},
		{"get", secondNS, "yes"},
		{"list", secondNS, "no"},
		{"get", appNS, "no"},
		{"get", releaseNS, "no"},
	} {
		out, _ := k("auth", "can-i", c.verb, "secrets", "-n", c.ns, "--as", sa)
		if strings.TrimSpace(out) != c.want {
			t.Errorf("the second release's manager may %s Secrets in %s: %q, want %q", c.verb, c.ns, strings.TrimSpace(out), c.want)
		}
	}
	if after := resourceVersions(t, first); jsonString(after) != jsonString(before) {
		t.Errorf("the second release changed objects of the first:\nbefore %v\nafter  %v", before, after)
	}
}

// linkValid asks the simulator whether link is a valid, unused login link.
func linkValid(simURL, link string) error {
	resp, err := http.Get(simURL + "/_sim/links/" + link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var st sim.LinkState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	if st.State != "valid" {
		return fmt.Errorf("link is %q", st.State)
	}
	return nil
}

// deploymentArgs returns the manager container's args of the Deployment in manifest.
func deploymentArgs(t *testing.T, manifest string) []string {
	t.Helper()
	for _, o := range parse(t, manifest) {
		if str(o, "kind") != "Deployment" {
			continue
		}
		var d struct {
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name string   `json:"name"`
							Args []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(jsonString(o)), &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				return c.Args
			}
		}
	}
	t.Fatal("no manager container in the rendered Deployment")
	return nil
}

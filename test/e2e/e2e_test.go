package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// The names config/default gives the operator.
const (
	operatorNS = "fifteenth-operator-system"
	sa         = "fifteenth-operator-controller-manager"
)

func TestOperatorAsItsUsersRunIt(t *testing.T) {
	e := newE2E(t, "e2e")
	ns := e.ns
	e.install(filepath.Join(cluster.root, "config", "default"), operatorNS)
	e.startSim()
	metricsAddr := freeAddr(t)
	m := e.startManager("--kubeconfig", e.tokenKubeconfig(operatorNS, sa), "--api-url", e.simURL,
		"--leader-elect", "--leader-election-namespace", operatorNS, "--account-access-namespaces", ns,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "127.0.0.1:0")

	// User story: apply the samples, wait for Ready.
	e.applySamples()
	out := e.must("get", "partneraccounts", "-n", ns)
	if !strings.Contains(out, "john.doe@example.com") || !strings.Contains(out, "active") {
		t.Fatalf("kubectl get partneraccounts:\n%s", out)
	}

	// The metrics endpoint serves HTTPS (the default, --metrics-secure) to a token whose
	// ServiceAccount is bound to the metrics-reader ClusterRole, and to nobody else.
	e.scrapeMetrics("https://" + metricsAddr + "/metrics")

	// Argo CD applies with server-side apply: applying the same manifest again shows no diff,
	// because the operator never writes to spec or to tracked metadata.
	sample := filepath.Join(cluster.root, "config", "samples", "partners_v1alpha1_partneraccount_spouse.yaml")
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

	// User story: a Deployment reads the holder's link and is restarted after each new link
	// (with the ServiceAccount's RBAC: get and patch on Deployments). Created after the current
	// link, it is not restarted for it; the manual renewal below restarts it. The targets are
	// the PartnerAccount's (it owns its LoginLinks' spec), and adding them makes no new link.
	e.must("create", "deployment", "portal", "-n", ns, "--image=example.com/portal:1")
	current, _ := e.secretField("alex-morgan-login-link", "login_link")
	e.must("patch", "partneraccount", "alex-morgan", "-n", ns, "--type=merge", "-p",
		`{"spec":{"loginLink":{"rolloutRestartTargets":[{"kind":"Deployment","name":"portal"}]}}}`)
	restartedAt := func() (string, error) {
		return e.k("get", "deployment", "portal", "-n", ns, "-o", `jsonpath={.spec.template.metadata.annotations.partners\.fifteenth\.com/restartedAt}`)
	}
	e.eventually("RolloutRestarted=True before the renewal", 30*time.Second, func() error {
		out, err := e.k("get", "loginlink", "alex-morgan-holder", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="RolloutRestarted")].reason}`)
		if err != nil || out != "Restarted" {
			return fmt.Errorf("RolloutRestarted reason %q (%w)", out, err)
		}
		if at, err := restartedAt(); err != nil || at != "" {
			return fmt.Errorf("a Deployment created after the link was restarted: %q (%w)", at, err)
		}
		return nil
	})
	if link, _ := e.secretField("alex-morgan-login-link", "login_link"); link != current {
		t.Fatalf("adding rolloutRestartTargets made a new link")
	}

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
	e.eventually("the Deployment restarted for the renewed link", 30*time.Second, func() error {
		at, err := restartedAt()
		if err != nil || at == "" {
			return fmt.Errorf("restartedAt %q (%w)", at, err)
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
	// kube-controller-manager's garbage collector removes its LoginLinks and their Secrets.
	e.eventually("LoginLinks and Secrets garbage-collected", 60*time.Second, func() error {
		for _, obj := range []string{"loginlink/john-doe-holder", "loginlink/john-doe-spouse", "secret/john-doe-login-link", "secret/john-doe-spouse-login-link"} {
			if out, err := e.k("get", obj, "-n", ns, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s still there (%w)", obj, err)
			}
		}
		return nil
	})

	// ... and the Fifteenth account stays, once the garbage collector has done its work.
	var accounts []sim.Account
	r2, err := http.Get(e.simURL + "/_sim/accounts")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r2.Body).Decode(&accounts)
	_ = r2.Body.Close()
	if len(accounts) != 3 {
		t.Fatalf("%d accounts in the simulator after deleting a PartnerAccount, want 3", len(accounts))
	}

	m.stop(t)
	e.noForbiddenNorLink(m.logs.String())
}

// scrapeMetrics checks that url answers 200 with the controller-runtime metrics to a token
// bound to fifteenth-operator-metrics-reader, 401 without a token, and 403 to a token without
// that role.
func (e *e2e) scrapeMetrics(url string) {
	e.t.Helper()
	e.must("create", "serviceaccount", "metrics-scraper", "-n", e.ns)
	e.must("create", "serviceaccount", "metrics-nobody", "-n", e.ns)
	e.must("create", "clusterrolebinding", "e2e-metrics-scraper", "--clusterrole=fifteenth-operator-metrics-reader", "--serviceaccount="+e.ns+":metrics-scraper")
	e.t.Cleanup(func() { _, _ = e.k("delete", "clusterrolebinding", "e2e-metrics-scraper", "--ignore-not-found") })
	reader, nobody := e.token(e.ns, "metrics-scraper"), e.token(e.ns, "metrics-nobody")
	// The manager's certificate is self-signed.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	e.eventually("metrics scraped with a metrics-reader token", 30*time.Second, func() error {
		code, body, err := get(reader)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "controller_runtime_reconcile_total") {
			return fmt.Errorf("GET %s: %d (%w)", url, code, err)
		}
		// The per-object series come with the registry's, in a text Prometheus parses: the
		// samples' PartnerAccounts are Ready.
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			return fmt.Errorf("GET %s: not the text format: %w", url, err)
		}
		ready := 0
		for _, m := range families["fifteenth_partner_account_ready"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == e.ns && m.GetGauge().GetValue() == 1 {
					ready++
				}
			}
		}
		if ready == 0 || families["fifteenth_login_link_ready"] == nil {
			return fmt.Errorf("GET %s: no per-object series of namespace %s yet", url, e.ns)
		}
		return nil
	})
	for _, c := range []struct {
		what, token string
		want        int
	}{{"without a token", "", http.StatusUnauthorized}, {"with a token without metrics-reader", nobody, http.StatusForbidden}} {
		if code, body, err := get(c.token); err != nil || code != c.want || strings.Contains(body, "fifteenth_") {
			e.t.Fatalf("GET %s %s: %d (%v), want %d and no series", url, c.what, code, err, c.want)
		}
	}
}

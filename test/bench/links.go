package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// linkProblems are the problems of r as the bench words them: briefer than their String,
// and for a user with more than one active LoginLink only that one.
func linkProblems(r testenv.LinkReport) []string {
	var out []string
	for _, p := range r.Problems {
		switch p.Kind {
		case testenv.ReadyNoLink:
			out = append(out, fmt.Sprintf("Ready LoginLink %s: its Secret %s holds no link", p.LoginLink, p.Secret))
		case testenv.ReadyInvalidLink:
			out = append(out, fmt.Sprintf("Ready LoginLink %s: its Secret %s holds a link the simulator reports %s", p.LoginLink, p.Secret, p.State))
		case testenv.UserActiveLoginLinks:
			out = append(out, fmt.Sprintf("user %s: %d active LoginLinks %v, want 1", p.User, len(p.LoginLinks), p.LoginLinks))
		case testenv.UserValidLinks:
			if len(p.LoginLinks) == 1 {
				out = append(out, fmt.Sprintf("user %s (LoginLink %s): %d valid links, want 1", p.User, p.LoginLinks[0], p.ValidLinks))
			}
		case testenv.SecretInvalidLink:
			out = append(out, fmt.Sprintf("Secret %s: its link is %s", p.Secret, p.State))
		default:
			out = append(out, p.String())
		}
	}
	return out
}

// links runs testenv.CheckLinks until it finds no problem, for 10 s at most (a renewal in
// flight may briefly show a Secret behind the simulator), and records the last run's problems
// as failures.
func (w *world) links(run string) (testenv.LinkReport, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := testenv.CheckLinks(ctx, w.b.k8s, w.ns, w.simURL, nil)
		if err != nil {
			return r, err
		}
		problems := linkProblems(r)
		if len(problems) == 0 || time.Now().After(deadline) {
			w.b.logf("%s run: Ready links valid: %d/%d; users with one valid link: %d/%d", run, r.ReadyValid, r.Ready, r.UsersOK, r.Users)
			for i, p := range problems {
				if i == 10 {
					w.b.fail("%s: %d more link problems", run, len(problems)-10)
					break
				}
				w.b.fail("%s: %s", run, p)
			}
			return r, nil
		}
		time.Sleep(time.Second)
	}
}

// statusWrites counts the writes (PATCH, PUT) to the status of PartnerAccounts and LoginLinks
// that kube-apiserver has served, from its apiserver_request_total metric. Only the manager
// writes them.
func (b *bench) statusWrites() (loginLinks, partnerAccounts int, err error) {
	hc, err := rest.HTTPClientFor(b.cfg)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Get(strings.TrimSuffix(b.cfg.Host, "/") + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("kube-apiserver /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `group="partners.fifteenth.com"`) ||
			!strings.Contains(line, `subresource="status"`) {
			continue
		}
		if !strings.Contains(line, `verb="PATCH"`) && !strings.Contains(line, `verb="PUT"`) && !strings.Contains(line, `verb="APPLY"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `resource="loginlinks"`):
			loginLinks += int(v)
		case strings.Contains(line, `resource="partneraccounts"`):
			partnerAccounts += int(v)
		}
	}
	return loginLinks, partnerAccounts, sc.Err()
}

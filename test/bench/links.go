package main

import (
	"bufio"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// linkReport compares a world's LoginLinks and Secrets with its simulator's links (the same
// check as the fault suite's).
type linkReport struct {
	// ready counts the Ready LoginLinks; readyValid those whose Secret holds a link the
	// simulator reports valid.
	ready, readyValid int
	// users counts the users (account, lower-cased email) with an active LoginLink, one not
	// superseded; usersOK those with exactly one active LoginLink and exactly one valid link.
	users, usersOK int
	problems       []string
}

func superseded(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status == metav1.ConditionFalse && c.Reason == partnersv1.ReasonSuperseded
		}
	}
	return false
}

func userKey(ll *partnersv1.LoginLink, secret *corev1.Secret) string {
	id, email := ll.Status.AccountID, ll.Status.UserEmail
	if ll.Spec.AccountID != nil {
		id = *ll.Spec.AccountID
	}
	if email == "" {
		email = ll.Spec.UserEmail
	}
	if secret != nil {
		if email == "" {
			email = string(secret.Data[partnersv1.SecretKeyUserEmail])
		}
		if id == 0 {
			id, _ = strconv.ParseInt(string(secret.Data[partnersv1.SecretKeyAccountID]), 10, 64)
		}
	}
	return fmt.Sprintf("%d/%s", id, strings.ToLower(email))
}

func secretNameOf(ll *partnersv1.LoginLink) string {
	switch {
	case ll.Status.SecretName != "":
		return ll.Status.SecretName
	case ll.Spec.SecretName != "":
		return ll.Spec.SecretName
	}
	return ll.Name
}

// linkState asks the simulator for the state of the link a Secret holds ("" when it holds none).
func (w *world) linkState(s *corev1.Secret) (string, error) {
	link := string(s.Data[partnersv1.SecretKeyLoginLink])
	if link == "" {
		return "", nil
	}
	resp, err := http.Get(w.simURL + "/_sim/links/" + link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return "unknown to the simulator", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /_sim/links/...: %s", resp.Status)
	}
	var st sim.LinkState
	return st.State, jsonDecode(resp, &st)
}

// checkLinks checks that every Ready LoginLink's Secret holds a valid link, that every user
// with an active LoginLink has exactly one active LoginLink and one valid link, and that every
// managed Secret holds a valid link or none with the held-by annotation (a superseded
// LoginLink's Secret).
func (w *world) checkLinks() (linkReport, error) {
	var r linkReport
	var lls partnersv1.LoginLinkList
	if err := w.b.k8s.List(ctx, &lls, client.InNamespace(w.ns)); err != nil {
		return r, err
	}
	var secrets corev1.SecretList
	if err := w.b.k8s.List(ctx, &secrets, client.InNamespace(w.ns),
		client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}); err != nil {
		return r, err
	}
	accounts, err := w.accounts()
	if err != nil {
		return r, err
	}
	validLinks := map[string]int{}
	for _, a := range accounts {
		for _, u := range a.Users {
			validLinks[fmt.Sprintf("%d/%s", a.ID, strings.ToLower(u.Email))] = u.ValidLinks
		}
	}
	byName := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		byName[secrets.Items[i].Name] = &secrets.Items[i]
	}
	active := map[string][]string{}
	for i := range lls.Items {
		ll := &lls.Items[i]
		secret := byName[secretNameOf(ll)]
		user := userKey(ll, secret)
		if superseded(ll.Status.Conditions) {
			continue
		}
		active[user] = append(active[user], ll.Name)
		if !ready(ll.Status.Conditions) {
			continue
		}
		r.ready++
		if secret == nil {
			r.problems = append(r.problems, fmt.Sprintf("Ready LoginLink %s: no managed Secret %s", ll.Name, secretNameOf(ll)))
			continue
		}
		st, err := w.linkState(secret)
		switch {
		case err != nil:
			return r, err
		case st == sim.StateValid:
			r.readyValid++
		case st == "":
			r.problems = append(r.problems, fmt.Sprintf("Ready LoginLink %s: its Secret %s holds no link", ll.Name, secret.Name))
		default:
			r.problems = append(r.problems, fmt.Sprintf("Ready LoginLink %s: its Secret %s holds a link the simulator reports %s", ll.Name, secret.Name, st))
		}
	}
	users := make([]string, 0, len(active))
	for u := range active {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		r.users++
		if names := active[u]; len(names) != 1 {
			r.problems = append(r.problems, fmt.Sprintf("user %s: %d active LoginLinks %v, want 1", u, len(names), names))
		} else if n := validLinks[u]; n != 1 {
			r.problems = append(r.problems, fmt.Sprintf("user %s (LoginLink %s): %d valid links, want 1", u, names[0], n))
		} else {
			r.usersOK++
		}
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if _, hasLink := s.Data[partnersv1.SecretKeyLoginLink]; !hasLink {
			if s.Annotations[partnersv1.AnnotationHeldBy] == "" {
				r.problems = append(r.problems, fmt.Sprintf("Secret %s holds no link and no %s annotation", s.Name, partnersv1.AnnotationHeldBy))
			}
			continue
		}
		st, err := w.linkState(s)
		if err != nil {
			return r, err
		}
		if st != sim.StateValid {
			r.problems = append(r.problems, fmt.Sprintf("Secret %s: its link is %s", s.Name, st))
		}
	}
	return r, nil
}

// links runs checkLinks until it finds no problem, for 10 s at most (a renewal in flight may
// briefly show a Secret behind the simulator), and records the last run's problems as failures.
func (w *world) links(run string) (linkReport, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := w.checkLinks()
		if err != nil {
			return r, err
		}
		if len(r.problems) == 0 || time.Now().After(deadline) {
			w.b.logf("%s run: Ready links valid: %d/%d; users with one valid link: %d/%d", run, r.readyValid, r.ready, r.usersOK, r.users)
			for i, p := range r.problems {
				if i == 10 {
					w.b.fail("%s: %d more link problems", run, len(r.problems)-10)
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

//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// linkReport compares the LoginLinks and their Secrets with the simulator's links.
type linkReport struct {
	// ready counts the Ready LoginLinks; readyValid those whose Secret holds a link the
	// simulator reports valid.
	ready, readyValid int
	// users counts the users (account, lower-cased email) with an active LoginLink, one not
	// superseded; usersOK those with exactly one active LoginLink and exactly one valid link.
	users, usersOK int
	// secrets counts the managed Secrets; held those without a link that name their holder
	// (partners.fifteenth.com/held-by).
	secrets, held int
	problems      []string
}

func (r linkReport) String() string {
	return fmt.Sprintf("Ready links valid: %d/%d; users with one valid link: %d/%d; managed Secrets: %d (%d held by another LoginLink)",
		r.readyValid, r.ready, r.usersOK, r.users, r.secrets, r.held)
}

func superseded(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status == metav1.ConditionFalse && c.Reason == partnersv1.ReasonSuperseded
		}
	}
	return false
}

// userKey is the user a LoginLink holds: "<account id>/<lower-cased email>".
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
func (w *world) linkState(s *corev1.Secret) (sim.LinkState, error) {
	link := string(s.Data[partnersv1.SecretKeyLoginLink])
	var st sim.LinkState
	if link == "" {
		return st, nil
	}
	resp, err := http.Get(w.simURL + "/_sim/links/" + link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		st.State = "unknown to the simulator"
		return st, nil
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /_sim/links/...: %s", resp.Status)
	}
	return st, decodeJSON(resp, &st)
}

// checkLinks compares what the cluster says with what the simulator knows:
//   - every Ready LoginLink's Secret holds a link the simulator reports valid;
//   - every user with an active (not superseded) LoginLink has exactly one active LoginLink
//     and exactly one valid link;
//   - every managed Secret holds a valid link, or none when it names the LoginLink that holds
//     its user now (the held-by annotation of a superseded LoginLink's Secret).
func (w *world) checkLinks() (linkReport, error) {
	var r linkReport
	var lls partnersv1.LoginLinkList
	if err := k8s.List(ctx, &lls, client.InNamespace(w.ns)); err != nil {
		return r, err
	}
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace(w.ns), client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}); err != nil {
		return r, err
	}
	var accounts []sim.Account
	resp, err := http.Get(w.simURL + "/_sim/accounts")
	if err != nil {
		return r, err
	}
	err = decodeJSON(resp, &accounts)
	_ = resp.Body.Close()
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

	active := map[string][]string{} // user -> active LoginLinks
	for i := range lls.Items {
		ll := &lls.Items[i]
		secret := byName[secretNameOf(ll)]
		user := userKey(ll, secret)
		if superseded(ll.Status.Conditions) {
			continue
		}
		active[user] = append(active[user], ll.Name)
		if readyOf(ll.Status.Conditions) != metav1.ConditionTrue {
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
		case st.State == sim.StateValid:
			r.readyValid++
		case st.State == "":
			r.problems = append(r.problems, fmt.Sprintf("Ready LoginLink %s (user %s): its Secret %s holds no link", ll.Name, user, secret.Name))
		default:
			r.problems = append(r.problems, fmt.Sprintf("Ready LoginLink %s (user %s): its Secret %s holds a link the simulator reports %s (created %s)",
				ll.Name, user, secret.Name, st.State, time.Time(st.CreatedAt).Format(time.RFC3339Nano)))
		}
	}
	users := make([]string, 0, len(active))
	for u := range active {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		r.users++
		names := active[u]
		ok := true
		if len(names) != 1 {
			ok = false
			r.problems = append(r.problems, fmt.Sprintf("user %s: %d active LoginLinks %v, want 1 (the others Superseded)", u, len(names), names))
		}
		if n := validLinks[u]; n != 1 {
			ok = false
			r.problems = append(r.problems, fmt.Sprintf("user %s (LoginLinks %v): %d valid links in the simulator, want 1", u, names, n))
		}
		if ok {
			r.usersOK++
		}
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		r.secrets++
		if _, hasLink := s.Data[partnersv1.SecretKeyLoginLink]; !hasLink {
			if s.Annotations[partnersv1.AnnotationHeldBy] != "" {
				r.held++
			} else {
				r.problems = append(r.problems, fmt.Sprintf("Secret %s holds no link and no %s annotation", s.Name, partnersv1.AnnotationHeldBy))
			}
			continue
		}
		st, err := w.linkState(s)
		if err != nil {
			return r, err
		}
		if st.State != sim.StateValid {
			r.problems = append(r.problems, fmt.Sprintf("Secret %s (of %s): its link is %s", s.Name, ownerName(s), st.State))
		}
	}
	return r, nil
}

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func ownerName(o metav1.Object) string {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.Kind + " " + ref.Name
		}
	}
	return "no owner"
}

// requireLinks runs checkLinks until it finds no problem or for settle at most (a renewal in
// flight may briefly show a Secret behind the simulator), logs the figures, and fails the
// test on the problems of the last run.
func (w *world) requireLinks(g Gomega, settle time.Duration) linkReport {
	w.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		r, err := w.checkLinks()
		g.Expect(err).NotTo(HaveOccurred())
		if len(r.problems) == 0 || time.Now().After(deadline) {
			w.t.Logf("%s", r)
			for _, p := range r.problems {
				w.t.Logf("  %s", p)
			}
			g.Expect(len(r.problems)).To(BeZero(), "problems with the links (listed above)")
			return r
		}
		time.Sleep(time.Second)
	}
}

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

// linkState asks the simulator at base for the state of the link a Secret holds ("" when it
// holds none).
func linkState(base string, s *corev1.Secret) (sim.LinkState, error) {
	link := string(s.Data[partnersv1.SecretKeyLoginLink])
	var st sim.LinkState
	if link == "" {
		return st, nil
	}
	resp, err := http.Get(base + "/_sim/links/" + link[strings.LastIndex(link, "/")+1:])
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

// loginLinkConfig is the configKey of the config a LoginLink uses: its PartnerAccount's with
// spec.accountRef, else its own.
func loginLinkConfig(ll *partnersv1.LoginLink, pas map[string]*partnersv1.PartnerAccount) string {
	if ll.Spec.AccountRef != nil {
		if pa := pas[ll.Spec.AccountRef.Name]; pa != nil {
			return configKey(pa.Spec.PartnerConfigRef)
		}
	}
	return configKey(ll.Spec.PartnerConfigRef)
}

// checkLinks compares what the cluster says of the objects of sm's config (the LoginLinks that
// use it, the Secrets of those LoginLinks) with what the simulator sm knows:
//   - every Ready LoginLink's Secret holds a link the simulator reports valid;
//   - every user with an active (not superseded) LoginLink has exactly one active LoginLink
//     and exactly one valid link;
//   - every managed Secret holds a valid link, or none when it names the LoginLink that holds
//     its user now (the held-by annotation of a superseded LoginLink's Secret).
func (w *world) checkLinks(sm *simAPI) (linkReport, error) {
	var r linkReport
	var lls partnersv1.LoginLinkList
	if err := k8s.List(ctx, &lls, client.InNamespace(w.ns)); err != nil {
		return r, err
	}
	var paList partnersv1.PartnerAccountList
	if err := k8s.List(ctx, &paList, client.InNamespace(w.ns)); err != nil {
		return r, err
	}
	pas := map[string]*partnersv1.PartnerAccount{}
	for i := range paList.Items {
		pas[paList.Items[i].Name] = &paList.Items[i]
	}
	configOf := map[string]string{} // LoginLink -> configKey
	for i := range lls.Items {
		configOf[lls.Items[i].Name] = loginLinkConfig(&lls.Items[i], pas)
	}
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace(w.ns), client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}); err != nil {
		return r, err
	}
	var accounts []sim.Account
	resp, err := http.Get(sm.url + "/_sim/accounts")
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
		if configOf[ll.Name] != configKey(sm.ref) {
			continue
		}
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
		st, err := linkState(sm.url, secret)
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
		// A Secret is its LoginLink's config's; one of no (known) LoginLink the default's.
		if configOf[ownerLoginLink(s)] != configKey(sm.ref) {
			continue
		}
		r.secrets++
		if _, hasLink := s.Data[partnersv1.SecretKeyLoginLink]; !hasLink {
			if s.Annotations[partnersv1.AnnotationHeldBy] != "" {
				r.held++
			} else {
				r.problems = append(r.problems, fmt.Sprintf("Secret %s holds no link and no %s annotation", s.Name, partnersv1.AnnotationHeldBy))
			}
			continue
		}
		st, err := linkState(sm.url, s)
		if err != nil {
			return r, err
		}
		if st.State != sim.StateValid {
			r.problems = append(r.problems, fmt.Sprintf("Secret %s (of %s): its link is %s", s.Name, ownerName(s), st.State))
		}
	}
	return r, nil
}

// ownerLoginLink is the LoginLink controlling a Secret ("" when none).
func ownerLoginLink(o metav1.Object) string {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.Kind == "LoginLink" {
			return ref.Name
		}
	}
	return ""
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

// requireLinks runs checkLinks(s) until it finds no problem or for settle at most (a renewal
// in flight may briefly show a Secret behind the simulator), logs the figures, and fails the
// test on the problems of the last run.
func (w *world) requireLinks(s *simAPI, g Gomega, settle time.Duration) linkReport {
	w.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		r, err := w.checkLinks(s)
		g.Expect(err).NotTo(HaveOccurred())
		if len(r.problems) == 0 || time.Now().After(deadline) {
			w.t.Logf("%s%s", w.label(s), r)
			for _, p := range r.problems {
				w.t.Logf("  %s", p)
			}
			g.Expect(len(r.problems)).To(BeZero(), "problems with the links (listed above)")
			return r
		}
		time.Sleep(time.Second)
	}
}

package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// LinkReport is what CheckLinks found: the LoginLinks and managed Secrets of a namespace
// compared with the links of a simulator.
type LinkReport struct {
	// Ready counts the Ready LoginLinks; ReadyValid those whose Secret holds a link the
	// simulator reports valid.
	Ready, ReadyValid int
	// Users counts the users (account, lower-cased email) with an active LoginLink, one not
	// superseded; UsersOK those with exactly one active LoginLink and exactly one valid link.
	Users, UsersOK int
	// Secrets counts the managed Secrets checked; Held those without a link that name their
	// holder (partners.fifteenth.com/held-by).
	Secrets, Held int
	// Problems lists the findings, in the order CheckLinks made them.
	Problems []LinkProblem
}

// String is the report's figures on one line.
func (r LinkReport) String() string {
	return fmt.Sprintf("Ready links valid: %d/%d; users with one valid link: %d/%d; managed Secrets: %d (%d held by another LoginLink)",
		r.ReadyValid, r.Ready, r.UsersOK, r.Users, r.Secrets, r.Held)
}

// LinkProblemKind is the kind of a LinkProblem.
type LinkProblemKind int

// The kinds of LinkProblem, and the fields each sets.
const (
	// ReadyNoSecret: the Ready LoginLink has no managed Secret (LoginLink, User, Secret: the
	// name it should have).
	ReadyNoSecret LinkProblemKind = iota + 1
	// ReadyNoLink: the Ready LoginLink's Secret holds no link (LoginLink, User, Secret).
	ReadyNoLink
	// ReadyInvalidLink: the Ready LoginLink's Secret holds a link the simulator does not
	// report valid (LoginLink, User, Secret, State, CreatedAt).
	ReadyInvalidLink
	// UserActiveLoginLinks: the user has more than one active LoginLink (User, LoginLinks).
	UserActiveLoginLinks
	// UserValidLinks: the user does not have exactly one valid link in the simulator (User,
	// LoginLinks, ValidLinks). It is reported whatever the number of active LoginLinks.
	UserValidLinks
	// SecretUnheld: the managed Secret holds no link and names no holder (Secret).
	SecretUnheld
	// SecretInvalidLink: the managed Secret holds a link the simulator does not report valid
	// (Secret, SecretOwner, State).
	SecretInvalidLink
)

// LinkProblem is one finding of CheckLinks.
type LinkProblem struct {
	Kind LinkProblemKind
	// LoginLink is the Ready LoginLink concerned.
	LoginLink string
	// User is the user concerned: "<account id>/<lower-cased email>" (see UserKey).
	User string
	// Secret is the managed Secret concerned.
	Secret string
	// SecretOwner is the Secret's controller, "<Kind> <name>", or "no owner".
	SecretOwner string
	// State is the state the simulator reports of the link ("unknown to the simulator" when it
	// does not know it); CreatedAt when the simulator created it.
	State     string
	CreatedAt time.Time
	// LoginLinks are the user's active LoginLinks, by name; ValidLinks the number of valid
	// links the simulator holds for the user.
	LoginLinks []string
	ValidLinks int
}

// String describes the problem in full.
func (p LinkProblem) String() string {
	switch p.Kind {
	case ReadyNoSecret:
		return fmt.Sprintf("Ready LoginLink %s: no managed Secret %s", p.LoginLink, p.Secret)
	case ReadyNoLink:
		return fmt.Sprintf("Ready LoginLink %s (user %s): its Secret %s holds no link", p.LoginLink, p.User, p.Secret)
	case ReadyInvalidLink:
		return fmt.Sprintf("Ready LoginLink %s (user %s): its Secret %s holds a link the simulator reports %s (created %s)",
			p.LoginLink, p.User, p.Secret, p.State, p.CreatedAt.Format(time.RFC3339Nano))
	case UserActiveLoginLinks:
		return fmt.Sprintf("user %s: %d active LoginLinks %v, want 1 (the others Superseded)", p.User, len(p.LoginLinks), p.LoginLinks)
	case UserValidLinks:
		return fmt.Sprintf("user %s (LoginLinks %v): %d valid links in the simulator, want 1", p.User, p.LoginLinks, p.ValidLinks)
	case SecretUnheld:
		return fmt.Sprintf("Secret %s holds no link and no %s annotation", p.Secret, partnersv1.AnnotationHeldBy)
	case SecretInvalidLink:
		return fmt.Sprintf("Secret %s (of %s): its link is %s", p.Secret, p.SecretOwner, p.State)
	}
	return fmt.Sprintf("link problem of kind %d", p.Kind)
}

// Superseded reports whether conds say Ready=False for reason Superseded: another LoginLink
// holds the user now.
func Superseded(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status == metav1.ConditionFalse && c.Reason == partnersv1.ReasonSuperseded
		}
	}
	return false
}

func isReady(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == partnersv1.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// UserKey is the user a LoginLink holds: "<account id>/<lower-cased email>", from its status,
// its spec, else its Secret (which may be nil).
func UserKey(ll *partnersv1.LoginLink, secret *corev1.Secret) string {
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

// SecretNameOf is the name of a LoginLink's Secret: its status's, its spec's, else its own.
func SecretNameOf(ll *partnersv1.LoginLink) string {
	switch {
	case ll.Status.SecretName != "":
		return ll.Status.SecretName
	case ll.Spec.SecretName != "":
		return ll.Spec.SecretName
	}
	return ll.Name
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

func ownerName(o metav1.Object) string {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.Kind + " " + ref.Name
		}
	}
	return "no owner"
}

func simGet(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// linkState asks the simulator at simURL for the state of the link a Secret holds (State ""
// when it holds none).
func linkState(ctx context.Context, simURL string, s *corev1.Secret) (sim.LinkState, error) {
	link := string(s.Data[partnersv1.SecretKeyLoginLink])
	var st sim.LinkState
	if link == "" {
		return st, nil
	}
	resp, err := simGet(ctx, simURL+"/_sim/links/"+link[strings.LastIndex(link, "/")+1:])
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
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// validLinks asks the simulator at simURL for the number of valid links of each user, by
// "<account id>/<lower-cased email>".
func validLinks(ctx context.Context, simURL string) (map[string]int, error) {
	resp, err := simGet(ctx, simURL+"/_sim/accounts")
	if err != nil {
		return nil, err
	}
	var accounts []sim.Account
	err = json.NewDecoder(resp.Body).Decode(&accounts)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, a := range accounts {
		for _, u := range a.Users {
			n[fmt.Sprintf("%d/%s", a.ID, strings.ToLower(u.Email))] = u.ValidLinks
		}
	}
	return n, nil
}

// CheckLinks compares the LoginLinks and managed Secrets of namespace with the links of the
// simulator at simURL:
//   - every Ready LoginLink's Secret holds a link the simulator reports valid;
//   - every user with an active (not superseded) LoginLink has exactly one active LoginLink
//     and exactly one valid link;
//   - every managed Secret holds a valid link, or none when it names the LoginLink that holds
//     its user now (the held-by annotation of a superseded LoginLink's Secret).
//
// include, when not nil, selects the LoginLinks to check (those of the simulator's config,
// say), and with them the Secrets they control; include(nil) tells whether to check the
// Secrets that no listed LoginLink controls. A nil include checks everything.
//
// The findings are in the report's Problems; the error is about reaching the API server or
// the simulator.
func CheckLinks(ctx context.Context, c client.Client, namespace, simURL string, include func(*partnersv1.LoginLink) bool) (LinkReport, error) {
	var r LinkReport
	if include == nil {
		include = func(*partnersv1.LoginLink) bool { return true }
	}
	var lls partnersv1.LoginLinkList
	if err := c.List(ctx, &lls, client.InNamespace(namespace)); err != nil {
		return r, err
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(namespace),
		client.MatchingLabels{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}); err != nil {
		return r, err
	}
	valid, err := validLinks(ctx, simURL)
	if err != nil {
		return r, err
	}
	byName := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		byName[secrets.Items[i].Name] = &secrets.Items[i]
	}
	included := map[string]bool{} // LoginLink -> checked
	for i := range lls.Items {
		included[lls.Items[i].Name] = include(&lls.Items[i])
	}

	active := map[string][]string{} // user -> active LoginLinks
	for i := range lls.Items {
		ll := &lls.Items[i]
		if !included[ll.Name] {
			continue
		}
		secret := byName[SecretNameOf(ll)]
		user := UserKey(ll, secret)
		if Superseded(ll.Status.Conditions) {
			continue
		}
		active[user] = append(active[user], ll.Name)
		if !isReady(ll.Status.Conditions) {
			continue
		}
		r.Ready++
		if secret == nil {
			r.Problems = append(r.Problems, LinkProblem{Kind: ReadyNoSecret, LoginLink: ll.Name, User: user, Secret: SecretNameOf(ll)})
			continue
		}
		st, err := linkState(ctx, simURL, secret)
		switch {
		case err != nil:
			return r, err
		case st.State == sim.StateValid:
			r.ReadyValid++
		case st.State == "":
			r.Problems = append(r.Problems, LinkProblem{Kind: ReadyNoLink, LoginLink: ll.Name, User: user, Secret: secret.Name})
		default:
			r.Problems = append(r.Problems, LinkProblem{Kind: ReadyInvalidLink, LoginLink: ll.Name, User: user, Secret: secret.Name,
				State: st.State, CreatedAt: time.Time(st.CreatedAt)})
		}
	}
	users := make([]string, 0, len(active))
	for u := range active {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		r.Users++
		names := active[u]
		ok := true
		if len(names) != 1 {
			ok = false
			r.Problems = append(r.Problems, LinkProblem{Kind: UserActiveLoginLinks, User: u, LoginLinks: names, ValidLinks: valid[u]})
		}
		if n := valid[u]; n != 1 {
			ok = false
			r.Problems = append(r.Problems, LinkProblem{Kind: UserValidLinks, User: u, LoginLinks: names, ValidLinks: n})
		}
		if ok {
			r.UsersOK++
		}
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if owner, listed := included[ownerLoginLink(s)]; listed && !owner || !listed && !include(nil) {
			continue
		}
		r.Secrets++
		if _, hasLink := s.Data[partnersv1.SecretKeyLoginLink]; !hasLink {
			if s.Annotations[partnersv1.AnnotationHeldBy] != "" {
				r.Held++
			} else {
				r.Problems = append(r.Problems, LinkProblem{Kind: SecretUnheld, Secret: s.Name, SecretOwner: ownerName(s)})
			}
			continue
		}
		st, err := linkState(ctx, simURL, s)
		if err != nil {
			return r, err
		}
		if st.State != sim.StateValid {
			r.Problems = append(r.Problems, LinkProblem{Kind: SecretInvalidLink, Secret: s.Name, SecretOwner: ownerName(s), State: st.State})
		}
	}
	return r, nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// maxEvents is how many of an object's latest Events status shows.
const maxEvents = 10

func newStatusCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status (partneraccount|pa|loginlink|ll) NAME",
		Short: "Show a PartnerAccount or LoginLink: account, users, who holds each, Secrets, expiry, renewal, Events, hints",
		Example: `  kubectl fifteenth status pa jane -n clients
  kubectl fifteenth status loginlink/jane-holder -n clients`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, ok, err := splitRef(args[0])
			switch {
			case err != nil:
				return err
			case ok && len(args) != 1:
				return fmt.Errorf("give either KIND/NAME or KIND NAME")
			case !ok && len(args) != 2:
				return fmt.Errorf("give the kind and the name: partneraccount (pa) or loginlink (ll), then NAME")
			case !ok:
				if kind, err = parseKind(args[0]); err != nil {
					return err
				}
				name = args[1]
			}
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			s := &status{c: c, ns: ns, now: e.now().UTC()}
			if kind == kindPartnerAccount {
				return s.partnerAccount(cmd.Context(), e.out, name)
			}
			return s.loginLink(cmd.Context(), e.out, name)
		},
	}
}

// status reads what `status` shows, in one namespace, at one time.
type status struct {
	c   client.Client
	ns  string
	now time.Time
}

// notFound names the missing object the way kubectl would, plus the namespace.
func (s *status) notFound(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found in namespace %s", strings.ToLower(kind), name, s.ns)
	}
	return fmt.Errorf("cannot read %s %s/%s: %w", strings.ToLower(kind), s.ns, name, err)
}

// secretMeta is a Secret's metadata, read as PartialObjectMetadata: the data never leaves the
// API server. It is nil when the Secret does not exist; err says when it could not be read.
func (s *status) secretMeta(ctx context.Context, name string) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return m, nil
}

// events returns the latest Events about the object with uid, oldest first. The operator
// records them with the events.k8s.io/v1 API.
func (s *status) events(ctx context.Context, uid string) ([]eventsv1.Event, error) {
	var list eventsv1.EventList
	sel := fields.OneTermEqualSelector("regarding.uid", uid)
	if err := s.c.List(ctx, &list, client.InNamespace(s.ns), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	evs := list.Items
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(&evs[i]).Before(eventTime(&evs[j])) })
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	return evs, nil
}

// eventTime is when an Event was last seen.
func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// printEvents writes the Events section.
func (s *status) printEvents(ctx context.Context, w io.Writer, uid string) {
	evs, err := s.events(ctx, uid)
	switch {
	case err != nil:
		fmt.Fprintf(w, "Events:\t(cannot list them: %v)\n", err)
		return
	case len(evs) == 0:
		fmt.Fprintf(w, "Events:\t<none>\n")
		return
	}
	fmt.Fprintln(w, "Events:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  AGE\tTYPE\tREASON\tMESSAGE")
	for i := range evs {
		e := &evs[i]
		n := ""
		if e.Series != nil && e.Series.Count > 1 {
			n = fmt.Sprintf(" (x%d)", e.Series.Count)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", duration.HumanDuration(s.now.Sub(eventTime(e))), e.Type, e.Reason, oneLine(e.Note), n)
	}
	_ = tw.Flush()
}

// oneLine keeps a message on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// readyLine is a Ready condition in one line.
func readyLine(c *metav1.Condition) string {
	if c == nil {
		return "unknown (no Ready condition yet: the operator has not looked at it)"
	}
	return fmt.Sprintf("%s, %s: %s", c.Status, c.Reason, oneLine(c.Message))
}

// secretName is the Secret a LoginLink writes: its status's, its spec's, else its own name.
func secretName(ll *partnersv1.LoginLink) string {
	switch {
	case ll.Status.SecretName != "":
		return ll.Status.SecretName
	case ll.Spec.SecretName != "":
		return ll.Spec.SecretName
	}
	return ll.Name
}

// userOf is the user a LoginLink is for.
func userOf(ll *partnersv1.LoginLink) string {
	switch {
	case ll.Status.UserEmail != "":
		return ll.Status.UserEmail
	case ll.Spec.UserEmail != "":
		return ll.Spec.UserEmail
	}
	return "the primary holder"
}

// secretState describes a LoginLink's Secret from its metadata: present, absent, or present
// with its link removed because another LoginLink holds the user.
func secretState(ll *partnersv1.LoginLink, m *metav1.PartialObjectMetadata, err error) string {
	name := secretName(ll)
	switch {
	case err != nil:
		return name + " (cannot read its metadata: " + reasonOf(err) + ")"
	case m == nil:
		return name + " (absent)"
	case !metav1.IsControlledBy(m, ll):
		return name + " (present, not owned by this LoginLink)"
	}
	if _, ok := m.Annotations[partnersv1.AnnotationHeldBy]; ok {
		return name + " (link removed)"
	}
	return name + " (present)"
}

// reasonOf is an API error's reason, short.
func reasonOf(err error) string {
	if r := apierrors.ReasonForError(err); r != metav1.StatusReasonUnknown {
		return strings.ToLower(string(r))
	}
	return err.Error()
}

// election says whether a LoginLink holds its user: a short form for tables and a sentence.
// pa is its PartnerAccount (nil for spec.accountID), whose status.users names each user's
// holder; a superseded LoginLink's Secret names it too (annotation held-by).
func election(ll *partnersv1.LoginLink, pa *partnersv1.PartnerAccount, secret *metav1.PartialObjectMetadata) (string, string) {
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	user := userOf(ll)
	holder, known := "", false
	if pa != nil {
		for _, u := range pa.Status.Users {
			if strings.EqualFold(u.Email, user) {
				holder, known = u.HeldBy, true
			}
		}
	}
	switch {
	case c != nil && c.Reason == partnersv1.ReasonSuperseded:
		if (holder == "" || holder == ll.Name) && secret != nil {
			holder = secret.Annotations[partnersv1.AnnotationHeldBy]
		}
		if holder == "" || holder == ll.Name {
			return "superseded", fmt.Sprintf("superseded: another LoginLink holds %s (see Ready); this one calls nothing", user)
		}
		return "superseded by " + holder, fmt.Sprintf("superseded: LoginLink %s holds %s; this one calls nothing", holder, user)
	case known && holder == ll.Name:
		return "holds", "holds " + user
	case known && holder != "":
		return "held by " + holder, fmt.Sprintf("LoginLink %s holds %s", holder, user)
	case c == nil:
		return "-", "not decided yet (no status)"
	case c.Status == metav1.ConditionFalse && cannotHold[c.Reason] && !renewPending(ll):
		return "cannot hold", fmt.Sprintf("holds nobody: a LoginLink that cannot keep a link (%s) never holds %s", c.Reason, user)
	}
	return "holds", "holds " + user
}

// renewPending reports whether the renew-requested-at annotation asks for a generation that
// neither happened nor failed yet.
func renewPending(ll *partnersv1.LoginLink) bool {
	v := ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
	if v == "" || v == ll.Status.RenewRequestHandled {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && (ll.Status.GeneratedAt == nil || at.After(ll.Status.GeneratedAt.Time))
}

// renewal says when a LoginLink renews its link.
func (s *status) renewal(ll *partnersv1.LoginLink, pa *partnersv1.PartnerAccount) string {
	r := ll.Spec.Renewal
	if r == nil && pa != nil && pa.Spec.LoginLink != nil && metav1.IsControlledBy(ll, pa) {
		r = pa.Spec.LoginLink.Renewal
	}
	if r != nil && r.Policy == partnersv1.RenewalPolicyDisabled {
		return "disabled: the link expires"
	}
	if superseded(ll) {
		return "none while superseded"
	}
	out := when(s.now, ll.Status.RenewalTime)
	if ll.Status.RenewalTime != nil && ll.Status.ExpiresAt != nil && ll.Status.ExpiresAt.After(ll.Status.RenewalTime.Time) {
		out += ", " + duration.HumanDuration(ll.Status.ExpiresAt.Sub(ll.Status.RenewalTime.Time)) + " before expiry"
	}
	return out
}

// loginLink prints the status of one LoginLink.
func (s *status) loginLink(ctx context.Context, out io.Writer, name string) error {
	ll := &partnersv1.LoginLink{}
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, ll); err != nil {
		return s.notFound(kindLoginLink, name, err)
	}
	var pa *partnersv1.PartnerAccount
	account := "-"
	if ll.Status.AccountID != 0 {
		account = fmt.Sprint(ll.Status.AccountID)
	}
	switch {
	case ll.Spec.AccountRef != nil:
		p := &partnersv1.PartnerAccount{}
		err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: ll.Spec.AccountRef.Name}, p)
		switch {
		case err == nil:
			pa = p
			account += " (PartnerAccount " + p.Name + ")"
		case apierrors.IsNotFound(err):
			account += " (PartnerAccount " + ll.Spec.AccountRef.Name + ", absent)"
		default:
			account += " (PartnerAccount " + ll.Spec.AccountRef.Name + ": " + reasonOf(err) + ")"
		}
	case ll.Spec.AccountID != nil:
		account = fmt.Sprintf("%d (spec.accountID)", *ll.Spec.AccountID)
	}
	secret, serr := s.secretMeta(ctx, secretName(ll))
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	_, elected := election(ll, pa, secret)

	w := tabwriter.NewWriter(out, 0, 8, 1, ' ', 0)
	fmt.Fprintf(w, "LoginLink:\t%s/%s\n", ll.Namespace, ll.Name)
	fmt.Fprintf(w, "Account:\t%s\n", account)
	fmt.Fprintf(w, "User:\t%s\n", userOf(ll))
	fmt.Fprintf(w, "Ready:\t%s\n", readyLine(c))
	if h := hint(c); h != "" {
		fmt.Fprintf(w, "Hint:\t%s\n", h)
	}
	if rc := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionRolloutRestarted); rc != nil {
		fmt.Fprintf(w, "Restarts:\t%s\n", readyLine(rc))
		if h := hint(rc); h != "" {
			fmt.Fprintf(w, "Hint:\t%s\n", h)
		}
	}
	fmt.Fprintf(w, "Secret:\t%s\n", secretState(ll, secret, serr))
	fmt.Fprintf(w, "Generated:\t%s\n", when(s.now, ll.Status.GeneratedAt))
	expires := when(s.now, ll.Status.ExpiresAt)
	if secret != nil && secret.Annotations[partnersv1.AnnotationHeldBy] != "" && ll.Status.ExpiresAt != nil {
		expires += ", invalidated by the holder's generation"
	}
	fmt.Fprintf(w, "Expires:\t%s\n", expires)
	fmt.Fprintf(w, "Next renewal:\t%s\n", s.renewal(ll, pa))
	if ll.Status.LastFailureTime != nil {
		fmt.Fprintf(w, "Last failure:\t%s\n", when(s.now, ll.Status.LastFailureTime))
	}
	if v := ll.Annotations[partnersv1.AnnotationRenewRequestedAt]; v != "" {
		state := "done"
		switch {
		case renewPending(ll) && superseded(ll):
			state = "not acted on while superseded"
		case renewPending(ll):
			state = "pending"
		}
		fmt.Fprintf(w, "Renew request:\t%s (%s)\n", v, state)
	}
	fmt.Fprintf(w, "Election:\t%s\n", elected)
	if err := w.Flush(); err != nil {
		return err
	}
	s.printEvents(ctx, out, string(ll.UID))
	return nil
}

// linksOf returns the LoginLinks of a PartnerAccount's account in the namespace: by
// spec.accountRef, or by the account ID their status shows; by name.
func (s *status) linksOf(ctx context.Context, pa *partnersv1.PartnerAccount) ([]partnersv1.LoginLink, error) {
	var list partnersv1.LoginLinkList
	if err := s.c.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	var links []partnersv1.LoginLink
	for _, ll := range list.Items {
		if (ll.Spec.AccountRef != nil && ll.Spec.AccountRef.Name == pa.Name) ||
			(pa.Status.AccountID != 0 && ll.Status.AccountID == pa.Status.AccountID) {
			links = append(links, ll)
		}
	}
	slices.SortFunc(links, func(a, b partnersv1.LoginLink) int { return strings.Compare(a.Name, b.Name) })
	return links, nil
}

// partnerAccount prints the status of one PartnerAccount and of its account's LoginLinks.
func (s *status) partnerAccount(ctx context.Context, out io.Writer, name string) error {
	pa := &partnersv1.PartnerAccount{}
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, pa); err != nil {
		return s.notFound(kindPartnerAccount, name, err)
	}
	links, err := s.linksOf(ctx, pa)
	if err != nil {
		return fmt.Errorf("cannot list the LoginLinks of namespace %s: %w", s.ns, err)
	}
	c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady)

	w := tabwriter.NewWriter(out, 0, 8, 1, ' ', 0)
	fmt.Fprintf(w, "PartnerAccount:\t%s/%s\n", pa.Namespace, pa.Name)
	account := "none yet"
	if pa.Status.AccountID != 0 {
		account = fmt.Sprintf("%d (%s), created %s", pa.Status.AccountID, orDash(pa.Status.AccountStatus), when(s.now, pa.Status.CreatedAt))
	}
	fmt.Fprintf(w, "Account:\t%s\n", account)
	fmt.Fprintf(w, "Last read:\t%s\n", when(s.now, pa.Status.LastSyncTime))
	fmt.Fprintf(w, "Holder:\t%s\n", pa.Spec.Email)
	if pa.Spec.Spouse != nil {
		st := "-"
		if pa.Status.Spouse != nil {
			st = orDash(pa.Status.Spouse.Status)
		}
		fmt.Fprintf(w, "Spouse:\t%s (%s)\n", pa.Spec.Spouse.Email, st)
	}
	fmt.Fprintf(w, "Ready:\t%s\n", readyLine(c))
	if h := hint(c); h != "" {
		fmt.Fprintf(w, "Hint:\t%s\n", h)
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "Users:")
	w = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  EMAIL\tROLE\tHELD BY")
	for _, u := range pa.Status.Users {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", u.Email, u.Role, orNone(u.HeldBy))
	}
	if len(pa.Status.Users) == 0 {
		fmt.Fprintln(w, "  <none yet>\t\t")
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "LoginLinks:")
	if len(links) == 0 {
		fmt.Fprintln(out, "  <none>")
	}
	w = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	if len(links) > 0 {
		fmt.Fprintln(w, "  NAME\tUSER\tELECTION\tREADY\tSECRET\tGENERATED\tEXPIRES\tNEXT RENEWAL")
	}
	var hintLines []string
	for i := range links {
		ll := &links[i]
		secret, serr := s.secretMeta(ctx, secretName(ll))
		elected, _ := election(ll, pa, secret)
		lc := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
		ready := "-"
		if lc != nil {
			ready = string(lc.Status) + " " + lc.Reason
		}
		renews := short(s.now, ll.Status.RenewalTime)
		switch r := s.renewal(ll, pa); {
		case strings.HasPrefix(r, "disabled"):
			renews = "disabled"
		case superseded(ll):
			renews = "-"
		}
		expires := short(s.now, ll.Status.ExpiresAt)
		if secret != nil && secret.Annotations[partnersv1.AnnotationHeldBy] != "" {
			expires = "invalidated"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ll.Name, userOf(ll), elected, ready, secretState(ll, secret, serr),
			short(s.now, ll.Status.GeneratedAt), expires, renews)
		if h := hint(lc); h != "" && lc.Reason != partnersv1.ReasonSuperseded {
			hintLines = append(hintLines, fmt.Sprintf("  %s (%s): %s", ll.Name, lc.Reason, h))
		}
		if rc := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionRolloutRestarted); rc != nil {
			if h := hint(rc); h != "" {
				hintLines = append(hintLines, fmt.Sprintf("  %s (%s %s): %s", ll.Name, partnersv1.ConditionRolloutRestarted, rc.Reason, h))
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(hintLines) > 0 {
		fmt.Fprintln(out, "Hints:")
		fmt.Fprintln(out, strings.Join(hintLines, "\n"))
	}
	s.printEvents(ctx, out, string(pa.UID))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// HourlyLinkBudget is the API's limit of generated links per account per hour.
const HourlyLinkBudget = 10

// renewFlags are renew's selection flags.
type renewFlags struct {
	all, allNamespaces bool
	selector           string
}

// errSelection says how renew selects LoginLinks.
var errSelection = errors.New("give LoginLink names (or pa/NAME for a PartnerAccount's LoginLinks), or --all, or -l SELECTOR; -A goes with --all or -l")

func newRenewCommand(e *env) *cobra.Command {
	f := &renewFlags{}
	cmd := &cobra.Command{
		Use:   "renew (NAME... | pa/NAME... | --all | -l SELECTOR) [-n NAMESPACE | -A]",
		Short: "Ask the operator to generate a new link now (annotation " + partnersv1.AnnotationRenewRequestedAt + ")",
		Long: `renew sets the annotation ` + partnersv1.AnnotationRenewRequestedAt + ` to the current time on
LoginLinks; the operator then generates one new link for each (which invalidates the user's
previous link), or retries once a LoginLink whose last attempt failed. pa/NAME stands for the
LoginLinks that hold the PartnerAccount's users (status.users[].heldBy) and its own LoginLinks
(<name>-holder, <name>-spouse) that are not superseded. A superseded LoginLink calls nothing
while another LoginLink holds its user.

The API allows 10 links per account per hour: renew warns when the links generated in the last
hour (as status.generatedAt shows them) plus the ones requested would exceed that.`,
		Example: `  kubectl fifteenth renew jane-holder -n clients
  kubectl fifteenth renew pa/jane -n clients
  kubectl fifteenth renew -l team=tax -A`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(args); err != nil {
				return err
			}
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			r := &renew{c: c, ns: ns, now: e.now().UTC(), out: e.out, errOut: e.errOut}
			return r.run(cmd.Context(), f, args)
		},
	}
	cmd.Flags().BoolVar(&f.all, "all", false, "Renew every LoginLink of the namespace (of every namespace with -A)")
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "Renew the LoginLinks matching this label selector, e.g. team=tax")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "With --all or -l: in every namespace")
	return cmd
}

// validate refuses a renew that mixes names and selections, or selects nothing.
func (f *renewFlags) validate(args []string) error {
	selects := f.all || f.selector != ""
	switch {
	case len(args) > 0 && (selects || f.allNamespaces),
		len(args) == 0 && !selects,
		f.all && f.selector != "",
		f.allNamespaces && !selects:
		return errSelection
	}
	return nil
}

// renew is one renewal request.
type renew struct {
	c           client.Client
	ns          string
	now         time.Time
	out, errOut io.Writer
}

func (r *renew) run(ctx context.Context, f *renewFlags, args []string) error {
	var scope []client.ListOption
	if !f.allNamespaces {
		scope = append(scope, client.InNamespace(r.ns))
	}
	// Every LoginLink of the scope: the targets are among them, and all of them count
	// against the accounts' hourly budget.
	var list partnersv1.LoginLinkList
	if err := r.c.List(ctx, &list, scope...); err != nil {
		return fmt.Errorf("cannot list LoginLinks: %w", err)
	}
	targets, err := r.targets(ctx, f, args, list.Items)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintln(r.errOut, "No LoginLink matched: nothing was asked.")
		return nil
	}
	value := requestValue(r.now)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		partnersv1.AnnotationRenewRequestedAt: value}}})
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "Asked for a new link (%s=%s):\n", partnersv1.AnnotationRenewRequestedAt, value)
	w := tabwriter.NewWriter(r.out, 0, 8, 2, ' ', 0)
	for i := range targets {
		ll := &targets[i]
		if err := r.c.Patch(ctx, ll, client.RawPatch(types.MergePatchType, patch)); err != nil {
			_ = w.Flush()
			return fmt.Errorf("cannot annotate LoginLink %s/%s: %w", ll.Namespace, ll.Name, err)
		}
		note := ""
		switch reason := readyReason(ll); {
		case superseded(ll):
			note = "superseded: it calls nothing while another LoginLink holds the user"
		case reason == partnersv1.ReasonPaused:
			note = "paused: nothing is generated until the paused annotation is removed"
		case reason == partnersv1.ReasonStandby:
			note = "standby (--read-only manager): nothing is generated here"
		}
		account := "account -"
		if ll.Status.AccountID != 0 {
			account = fmt.Sprintf("account %d", ll.Status.AccountID)
		}
		fmt.Fprintf(w, "  %s/%s\t%s\t%s", ll.Namespace, ll.Name, account, userOf(ll))
		if note != "" {
			fmt.Fprintf(w, "\t%s", note)
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, b := range estimate(list.Items, targets, r.now) {
		if b.over() {
			fmt.Fprintf(r.errOut, "Warning: account %d: %d links generated in the last hour + %d requested = %d, over the API's %d per account per hour; "+
				"the operator holds the excess back until the hour frees a slot (an estimate from status.generatedAt, which shows only each LoginLink's latest generation)\n",
				b.account, b.recent, b.requested, b.recent+b.requested, HourlyLinkBudget)
		}
	}
	return nil
}

// targets resolves renew's arguments to LoginLinks of all (the scope's LoginLinks). A name
// that does not exist fails the whole request before anything is annotated.
func (r *renew) targets(ctx context.Context, f *renewFlags, args []string, all []partnersv1.LoginLink) ([]partnersv1.LoginLink, error) {
	if len(args) == 0 {
		sel := labels.Everything()
		if f.selector != "" {
			var err error
			if sel, err = labels.Parse(f.selector); err != nil {
				return nil, fmt.Errorf("selector %q: %w", f.selector, err)
			}
		}
		var out []partnersv1.LoginLink
		for _, ll := range all {
			if sel.Matches(labels.Set(ll.Labels)) {
				out = append(out, ll)
			}
		}
		return out, nil
	}
	var out []partnersv1.LoginLink
	add := func(ll partnersv1.LoginLink) {
		if !slices.ContainsFunc(out, func(o partnersv1.LoginLink) bool { return o.UID == ll.UID }) {
			out = append(out, ll)
		}
	}
	for _, arg := range args {
		kind, name, ok, err := splitRef(arg)
		if err != nil {
			return nil, err
		}
		if !ok {
			kind, name = kindLoginLink, arg
		}
		if kind == kindLoginLink {
			i := slices.IndexFunc(all, func(ll partnersv1.LoginLink) bool { return ll.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("loginlink %q not found in namespace %s: nothing was asked", name, r.ns)
			}
			add(all[i])
			continue
		}
		pa := &partnersv1.PartnerAccount{}
		if err := r.c.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: name}, pa); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("partneraccount %q not found in namespace %s: nothing was asked", name, r.ns)
			}
			return nil, fmt.Errorf("cannot read partneraccount %s/%s: %w", r.ns, name, err)
		}
		// The LoginLinks that hold the account's users, and the PartnerAccount's own ones
		// that are not superseded (a user nobody holds yet).
		before := len(out)
		for _, ll := range all {
			if ll.Namespace == pa.Namespace && (holds(pa, ll.Name) || (metav1.IsControlledBy(&ll, pa) && !superseded(&ll))) {
				add(ll)
			}
		}
		if len(out) == before {
			return nil, fmt.Errorf("partneraccount %q has no LoginLink to renew yet: nothing was asked", name)
		}
	}
	return out, nil
}

// holds reports whether the PartnerAccount's status names LoginLink name as a user's holder.
func holds(pa *partnersv1.PartnerAccount, name string) bool {
	return slices.ContainsFunc(pa.Status.Users, func(u partnersv1.AccountUserStatus) bool { return u.HeldBy == name })
}

// superseded reports whether a LoginLink is Ready=False Superseded.
func superseded(ll *partnersv1.LoginLink) bool {
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	return c != nil && c.Reason == partnersv1.ReasonSuperseded
}

// readyReason is the reason of a LoginLink's Ready condition, "" without one.
func readyReason(ll *partnersv1.LoginLink) string {
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// budget is an estimate of one account's links in the current hour.
type budget struct {
	account int64
	// recent is the LoginLinks whose status.generatedAt is within the last hour.
	recent int
	// requested is the LoginLinks asked to renew that would generate (not superseded).
	requested int
}

func (b budget) over() bool { return b.recent+b.requested > HourlyLinkBudget }

// estimate counts, per account, the links of all generated within the hour before now and
// the ones targets would generate; by account ID. LoginLinks whose account is not known yet
// are left out. status.generatedAt shows each LoginLink's latest generation only, and other
// clients of the API are not seen: the estimate is a lower bound.
func estimate(all, targets []partnersv1.LoginLink, now time.Time) []budget {
	by := map[int64]*budget{}
	get := func(id int64) *budget {
		if by[id] == nil {
			by[id] = &budget{account: id}
		}
		return by[id]
	}
	for _, ll := range all {
		g := ll.Status.GeneratedAt
		if ll.Status.AccountID != 0 && g != nil && !g.After(now) && now.Sub(g.Time) < time.Hour {
			get(ll.Status.AccountID).recent++
		}
	}
	for _, ll := range targets {
		if ll.Status.AccountID != 0 && !superseded(&ll) {
			get(ll.Status.AccountID).requested++
		}
	}
	out := make([]budget, 0, len(by))
	for _, b := range by {
		if b.requested > 0 {
			out = append(out, *b)
		}
	}
	slices.SortFunc(out, func(a, b budget) int { return cmp.Compare(a.account, b.account) })
	return out
}

// requestValue is the annotation value renew writes.
func requestValue(now time.Time) string { return now.UTC().Format(time.RFC3339) }

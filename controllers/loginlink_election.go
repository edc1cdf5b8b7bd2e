package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// reconcileElection ends the pass of a LoginLink that does not hold its user: the newest
// eligible LoginLink for the user does (package election). The cache decides here; a
// generation confirms against the user's Lease.
func (r *LoginLinkReconciler) reconcileElection(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	cands, err := r.candidates(ctx, s.ll, s.cfg.Endpoint, s.target, s.record)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	holder, _ := election.Holder(cands)
	if holder.UID == s.me.UID {
		return ctrl.Result{}, false, nil
	}
	res := ctrl.Result{}
	if holder.Pinned {
		// A paused holder keeps the user while its link is valid, not after.
		if at := r.pinnedUntil(ctx, holder); !at.IsZero() {
			res.RequeueAfter = renewal.RequeueAfter(r.now(), at, minRequeue)
		}
	}
	return res, true, r.superseded(ctx, s, holder)
}

// superseded reports that holder keeps the user, and removes this LoginLink's link from its
// Secret once a later generation made it invalid.
func (r *LoginLinkReconciler) superseded(ctx context.Context, s *linkScope, holder election.Candidate) error {
	ll := s.ll
	name, sameNS := localName(ll.Namespace, holder.ID)
	who := "a LoginLink in another namespace"
	if sameNS {
		who = "LoginLink " + name
	}
	msg := fmt.Sprintf("%s holds %s on account %d (the newest LoginLink for the user that can keep a link); this one calls nothing until that changes",
		who, strings.ToLower(s.target.user), s.target.accountID)
	if sameNS {
		s.heldBy = name
	}
	if r.setReady(ll, false, partnersv1.ReasonSuperseded, msg) {
		var related *partnersv1.LoginLink
		if sameNS {
			related = &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: ll.Namespace, Name: name, UID: holder.UID}}
			related.SetGroupVersionKind(partnersv1.GroupVersion.WithKind("LoginLink"))
		}
		if related != nil {
			r.Recorder.Eventf(ll, related, corev1.EventTypeNormal, EventSuperseded, "Supersede", "%s", msg)
		} else {
			r.Recorder.Eventf(ll, nil, corev1.EventTypeNormal, EventSuperseded, "Supersede", "%s", msg)
		}
	}
	return r.retireStaleLink(ctx, s)
}

// retireStaleLink removes the link from the LoginLink's Secret when the user's Lease says a
// later generation invalidated it, and names the LoginLink that holds the user now in the
// annotation partners.fifteenth.com/held-by. A link nobody replaced yet stays: a newcomer
// that fails must not cost a working link. The removal is also the durable record that the
// LoginLink must generate when it holds the user again.
func (r *LoginLinkReconciler) retireStaleLink(ctx context.Context, s *linkScope) error {
	if s.secret == nil || !metav1.IsControlledBy(s.secret, s.ll) || len(s.secret.Data[partnersv1.SecretKeyLoginLink]) == 0 {
		return nil
	}
	link, _ := readSecret(s.secret)
	if s.record.Current(s.ll.UID, stamp(link.GeneratedAt)) {
		return nil
	}
	// The cache may be behind our own last generation: confirm with a live read. While
	// another generation is in flight its outcome is not known yet: a newcomer that fails
	// must not cost a working link (its Finish wakes this LoginLink).
	live, err := r.Elector.Live(ctx, s.key)
	if err != nil || live.Current(s.ll.UID, stamp(link.GeneratedAt)) || !live.InFlightUntil(r.now()).IsZero() {
		return err
	}
	// The LoginLink that holds the user now: the election's, else the Lease's holder when its
	// generation is the one that invalidated this link.
	holder := s.heldBy
	if holder == "" && live != nil && live.Holder.UID == live.GeneratedBy {
		if name, ok := localName(s.ll.Namespace, live.Holder.ID); ok {
			holder = name
		}
	}
	patched := s.secret.DeepCopy()
	delete(patched.Data, partnersv1.SecretKeyLoginLink)
	delete(patched.Data, partnersv1.SecretKeyExpiresAt)
	if patched.Annotations == nil {
		patched.Annotations = map[string]string{}
	}
	patched.Annotations[partnersv1.AnnotationHeldBy] = holder
	delete(patched.Annotations, annChecksum)
	if err := r.Patch(ctx, patched, client.MergeFrom(s.secret)); err != nil {
		return fmt.Errorf("cannot remove the invalidated link from Secret %s: %w", s.secretName, err)
	}
	s.secret = patched
	logf.FromContext(ctx).Info("Removed an invalidated link from the Secret", "secret", s.secretName, "heldBy", holder)
	return nil
}

// localName returns the name in a "<namespace>/<name>" ID and whether it is in namespace ns.
func localName(ns, id string) (string, bool) {
	n, name, ok := strings.Cut(id, "/")
	return name, ok && n == ns
}

// candidateOf describes a LoginLink in the election.
func candidateOf(ll *partnersv1.LoginLink, eligible bool) election.Candidate {
	return election.Candidate{ID: ll.Namespace + "/" + ll.Name, UID: ll.UID, Created: ll.CreationTimestamp.Time, Eligible: eligible,
		Generation: ll.Generation}
}

// eligible reports whether a LoginLink, as its status shows it, can keep a link: not being
// deleted, no terminal failure of its current spec, no Secret it may not write, no expired
// link it may not renew. Transient states (rate limits, an unavailable API, a suspended
// account, being superseded) keep it eligible.
func eligible(ll *partnersv1.LoginLink) bool {
	if !ll.DeletionTimestamp.IsZero() {
		return false
	}
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.ObservedGeneration != ll.Generation {
		return true
	}
	switch {
	case terminalReasons[c.Reason]:
		return newRenewRequest(ll)
	case c.Reason == partnersv1.ReasonExpired:
		// An expired link with renewal disabled holds nobody, until a renewal is requested.
		return renewRequestedAfter(ll, ll.Status.GeneratedAt)
	case c.Reason == partnersv1.ReasonSecretConflict, c.Reason == partnersv1.ReasonAccountNotPermitted:
		return false
	}
	return true
}

// claimantsIn returns the PartnerAccounts that claim an account at endpoint, oldest first
// (endpoint "": at any endpoint), in every namespace: from the manager's cache, or from the
// cluster-wide claims cache when the manager watches only some namespaces (Config.ClusterWideClaims),
// together with the manager's cache when the claims cache leaves its namespaces out. It runs in
// every pass of both controllers: the caches' objects are not copied, and the PartnerAccounts
// returned (their maps, slices and pointers shared with the cache) are only read.
func (d *deps) claimantsIn(ctx context.Context, endpoint string, id int64) ([]partnersv1.PartnerAccount, error) {
	var list partnersv1.PartnerAccountList
	if err := d.claims.List(ctx, &list, client.MatchingFields{indexClaimedAccount: idString(id)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("cannot list the PartnerAccounts of account %d: %w", id, err)
	}
	if d.ownClaims != nil {
		// A shard whose claims cache leaves out its own namespaces: their claims are in its cache.
		var own partnersv1.PartnerAccountList
		if err := d.ownClaims.List(ctx, &own, client.MatchingFields{indexClaimedAccount: idString(id)}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("cannot list the PartnerAccounts of account %d: %w", id, err)
		}
		list.Items = append(list.Items, own.Items...)
	}
	out := list.Items[:0]
	for _, pa := range list.Items {
		if pa.DeletionTimestamp.IsZero() && (endpoint == "" || d.endpointOf(ctx, pa.Namespace, pa.Spec.PartnerConfigRef) == endpoint) {
			out = append(out, pa)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && olderThan(&out[j], &out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// endpointOf is the API endpoint an object's config points at ("" when it cannot serve it).
func (d *deps) endpointOf(ctx context.Context, namespace string, ref *partnersv1.PartnerConfigReference) string {
	cfg, err := d.Configs.For(ctx, namespace, ref)
	if err != nil {
		return ""
	}
	return cfg.Endpoint
}

// home returns the namespace of the PartnerAccount that manages an account at endpoint ("" when none).
func (r *LoginLinkReconciler) home(ctx context.Context, endpoint string, id int64) (string, error) {
	pas, err := r.claimantsIn(ctx, endpoint, id)
	if err != nil || len(pas) == 0 {
		return "", err
	}
	return pas[0].Namespace, nil
}

// accountLinks returns the LoginLinks that act on an account, by spec.accountID or through a
// PartnerAccount that claims it, with the user each acts for ("" while unknown). claimant, if
// not nil, is a PartnerAccount that claims the account although the cache may not show it yet.
// Every caller reads c through noCopyReader: the LoginLinks returned share their maps, slices
// and pointers with the cache and must only be read.
func accountLinks(ctx context.Context, c client.Reader, d *deps, endpoint string, id int64, claimant *partnersv1.PartnerAccount) ([]partnersv1.LoginLink, []string, error) {
	pas, err := d.claimantsIn(ctx, endpoint, id)
	if err != nil {
		return nil, nil, err
	}
	if claimant != nil && !slices.ContainsFunc(pas, func(pa partnersv1.PartnerAccount) bool { return pa.UID == claimant.UID }) {
		pas = append(pas, *claimant)
	}
	// Only the account's home namespace acts on a claimed account; on an unclaimed one, the
	// namespaces with a grant.
	holderEmail, home := "", ""
	if len(pas) > 0 {
		holderEmail, home = pas[0].Spec.Email, pas[0].Namespace
	}
	// A LoginLink by accountID counts when its config points at the same API, and the
	// account is its namespace's or unclaimed with a grant of its config.
	permitted := func(ll *partnersv1.LoginLink) bool {
		cfg, err := d.Configs.For(ctx, ll.Namespace, ll.Spec.PartnerConfigRef)
		if err != nil || (endpoint != "" && cfg.Endpoint != endpoint) {
			return false
		}
		if home != "" {
			return ll.Namespace == home
		}
		granted, err := d.granted(ctx, cfg, ll.Namespace)
		return err == nil && granted
	}
	var byID partnersv1.LoginLinkList
	if err := c.List(ctx, &byID, client.MatchingFields{indexAccountID: idString(id)}); err != nil {
		return nil, nil, fmt.Errorf("cannot list the LoginLinks of account %d: %w", id, err)
	}
	var links []partnersv1.LoginLink
	var users []string
	for i := range byID.Items {
		ll := &byID.Items[i]
		if !permitted(ll) {
			continue
		}
		u := ll.Spec.UserEmail
		if u == "" && ll.Status.AccountID == id {
			u = ll.Status.UserEmail
		}
		if u == "" {
			u = holderEmail
		}
		links, users = append(links, *ll), append(users, strings.ToLower(u))
	}
	for _, pa := range pas {
		if pa.Namespace != home {
			continue
		}
		var byRef partnersv1.LoginLinkList
		if err := c.List(ctx, &byRef, client.InNamespace(pa.Namespace), client.MatchingFields{indexAccountRef: pa.Name}); err != nil {
			return nil, nil, fmt.Errorf("cannot list the LoginLinks of PartnerAccount %s: %w", pa.Name, err)
		}
		for _, ll := range byRef.Items {
			u := ll.Spec.UserEmail
			if u == "" {
				u = pa.Spec.Email
			}
			links, users = append(links, ll), append(users, strings.ToLower(u))
		}
	}
	return links, users, nil
}

// noCopyReader lists without copying the cache's objects: for callers that only read them.
// At 10,000 accounts the copies of accountRequests (every LoginLink and Lease event) were a
// quarter of what the manager allocated.
type noCopyReader struct{ client.Reader }

func (r noCopyReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.Reader.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...)
}

// candidates returns the LoginLinks competing for the user of t, me among them; rec is the
// user's Lease (a paused LoginLink whose link it records keeps the user).
func (r *LoginLinkReconciler) candidates(ctx context.Context, me *partnersv1.LoginLink, endpoint string, t linkTarget,
	rec *election.Record) ([]election.Candidate, error) {
	// Only read: the cache's objects are not copied (noCopyReader).
	links, users, err := accountLinks(ctx, noCopyReader{r.Client}, &r.deps, endpoint, t.accountID, nil)
	if err != nil {
		return nil, err
	}
	user := strings.ToLower(t.user)
	cands := []election.Candidate{candidateOf(me, true)}
	for i := range links {
		if links[i].UID != me.UID && users[i] == user {
			c := candidateOf(&links[i], eligible(&links[i]))
			c.Pinned = r.pinned(ctx, r.Client, &links[i], rec)
			cands = append(cands, c)
		}
	}
	return cands, nil
}

// holderEligible reads the Lease's holder live: may it keep the user? It must still exist,
// compete for the same user of the same account at the same API, and be eligible.
func (r *LoginLinkReconciler) holderEligible(ctx context.Context, c election.Candidate, k election.Key) (bool, error) {
	ns, name, _ := strings.Cut(c.ID, "/")
	ll := &partnersv1.LoginLink{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ll); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("cannot read the LoginLink that holds the user: %w", err)
	}
	if ll.UID != c.UID || !eligible(ll) {
		return false, nil
	}
	return r.competesFor(ctx, ll, k, c.Generation)
}

// competesFor reports whether a LoginLink, as it is now, competes for key: its account (its
// PartnerAccount's, which must claim it), its user and its config's API. It is asked of the
// Lease's holder only; leaseGen is its generation when it took the Lease (0: unknown).
func (r *LoginLinkReconciler) competesFor(ctx context.Context, ll *partnersv1.LoginLink, k election.Key, leaseGen int64) (bool, error) {
	var id int64
	user, ref := ll.Spec.UserEmail, ll.Spec.PartnerConfigRef
	if acc := ll.Spec.AccountRef; acc != nil {
		pa := &partnersv1.PartnerAccount{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: acc.Name}, pa); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if !pa.DeletionTimestamp.IsZero() {
			return false, nil
		}
		id, ref = pa.Status.AccountID, pa.Spec.PartnerConfigRef
		if user == "" {
			user = pa.Spec.Email
		}
	} else if ll.Spec.AccountID != nil {
		id = *ll.Spec.AccountID
		if user == "" && ll.Status.AccountID == id {
			user = ll.Status.UserEmail
		}
		if user == "" && leaseGen != 0 && ll.Generation == leaseGen {
			// For the account's holder, and its status does not say who that is yet: its pass
			// records the user after its generation. It took the Lease of k for its user
			// under the spec it still has, so that is k's user. (A spec changed since, or a
			// Lease that does not say, leaves the user unknown: not competing.)
			user = k.User
		}
	}
	if id != k.AccountID || !strings.EqualFold(user, k.User) {
		return false, nil
	}
	return r.endpointOf(ctx, ll.Namespace, ref) == k.Endpoint, nil
}

// accountRequests maps an account to reconcile requests for every LoginLink acting on it, or
// that acted on it last (status.accountID).
func (r *LoginLinkReconciler) accountRequests(ctx context.Context, id int64) []reconcile.Request {
	if id == 0 {
		return nil
	}
	// The map functions only read names: the cache's objects are not copied.
	links, _, err := accountLinks(ctx, noCopyReader{r.Client}, &r.deps, "", id, nil)
	if err != nil {
		logf.FromContext(ctx).Error(err, "Could not find the LoginLinks of an account to wake them", "account", id)
		return nil
	}
	// Those that acted on it last: by status.accountID, or by spec.accountID when the two are
	// the same (statusAccountKeys), whether or not they may act on it now.
	var former, byID partnersv1.LoginLinkList
	if err := r.List(ctx, &former, client.MatchingFields{indexStatusAccount: idString(id)}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "Could not find the LoginLinks of an account to wake them", "account", id)
	}
	if err := r.List(ctx, &byID, client.MatchingFields{indexAccountID: idString(id)}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "Could not find the LoginLinks of an account to wake them", "account", id)
	}
	for _, ll := range byID.Items {
		if ll.Status.AccountID == id {
			former.Items = append(former.Items, ll)
		}
	}
	seen := map[types.UID]bool{}
	reqs := make([]reconcile.Request, 0, len(links)+len(former.Items))
	for _, ll := range append(links, former.Items...) {
		if !seen[ll.UID] {
			seen[ll.UID] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ll)})
		}
	}
	return reqs
}

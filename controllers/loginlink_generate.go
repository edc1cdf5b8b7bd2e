package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// generate confirms the decision against the API server (the LoginLink, its Secret and the
// user's Lease read live), takes the user's Lease, calls the API and stores the new link.
func (r *LoginLinkReconciler) generate(ctx context.Context, s *linkScope, d linkDecision) (ctrl.Result, error) {
	ll := s.ll
	fresh := &partnersv1.LoginLink{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ll), fresh); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if fresh.ResourceVersion != ll.ResourceVersion {
		// The cache is behind (a newer spec, annotation or status is on its way): decide
		// again with it rather than call on stale facts.
		return ctrl.Result{RequeueAfter: minRequeue}, nil
	}
	// Its owner PartnerAccount paused since the cache was read: no call. The LoginLink's own
	// annotation is covered by the resourceVersion above; the owner's is read live here (one
	// GET per generation), and the pass after the cache caught up reports Paused.
	if who, err := pausedBy(ctx, r.APIReader, fresh); err != nil || who != "" {
		return ctrl.Result{RequeueAfter: minRequeue}, err
	}
	// A namespace or owner being deleted since the pass began: no call. Read from the cache,
	// which by now has had the live reads above to catch up: a live read here cost the scale
	// run a fifth of its time (bench/results.md), and what it would close is the watch delay,
	// in which a link generated for a LoginLink that goes with its namespace or owner is only
	// a wasted call: the user's one holder is that LoginLink, so no other link is invalidated.
	if why, err := loginLinkGoing(ctx, r.Client, ll); err != nil || why != "" {
		return ctrl.Result{}, err
	}
	// The Lease first, then the Secret: a link the Lease records is then in the Secret read.
	var err error
	if s.record, err = r.Elector.Live(ctx, s.key); err != nil {
		return ctrl.Result{}, err
	}
	secret, err := r.secret(ctx, r.APIReader, ll.Namespace, s.secretName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secret != nil && !metav1.IsControlledBy(secret, ll) {
		r.secretConflict(ll, s.secretName)
		return ctrl.Result{}, nil
	}
	s.secret = secret
	if d = r.decide(s); d.Action != actionGenerate {
		return r.ready(ctx, s, d), nil
	}
	if held, res := r.suspendedHold(ctx, s); held {
		return res, nil
	}
	if held, err := r.pausedHolder(ctx, s); held || err != nil {
		return ctrl.Result{}, err
	}

	took, err := r.Elector.Begin(ctx, s.key, s.me, s.record, func(ctx context.Context, c election.Candidate) (bool, error) {
		return r.holderEligible(ctx, c, s.key)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	switch took.Verdict {
	case election.Changed:
		return ctrl.Result{RequeueAfter: minRequeue}, nil // decide again on the new facts
	case election.Wait:
		if s.in.State == secretOK && !s.in.Current {
			r.setReady(ll, false, partnersv1.ReasonSuperseded, fmt.Sprintf(
				"another generation for %s is in flight until %s; this one's link was invalidated and is replaced after it",
				ll.Status.UserEmail, took.Until.UTC().Format(time.RFC3339)))
		}
		return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), took.Until, minRequeue)}, nil
	case election.CheckHolder:
		return ctrl.Result{}, r.superseded(ctx, s, took.Holder)
	}
	return r.callAndStore(ctx, s, d)
}

// callAndStore runs one generation under the user's Lease. Before the call it marks an
// existing Secret, so that a crash between the call and the store (after which the stored
// link is invalid) leads to a new generation instead of a dead link.
func (r *LoginLinkReconciler) callAndStore(ctx context.Context, s *linkScope, d linkDecision) (ctrl.Result, error) {
	ll, t := s.ll, s.target
	now := r.now()
	if secret := s.secret; secret != nil {
		if _, marked := secret.Annotations[annGenerating]; !marked {
			m := secret.DeepCopy()
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[annGenerating] = now.UTC().Format(time.RFC3339Nano)
			if err := r.Update(ctx, m); err != nil {
				_ = r.finish(ctx, s, election.NoEffect, "") // logged; the Lease's fence expires
				return ctrl.Result{}, fmt.Errorf("cannot mark Secret %s before generating: %w", s.secretName, err)
			}
			s.secret = m
		}
	}
	resp, err := s.cfg.API.GenerateLoginLink(ctx, fifteenth.AccountID(t.accountID), s.params.request(ll.Spec.UserEmail))
	if err != nil {
		outcome := election.Unknown
		if noEffect(err) {
			outcome = election.NoEffect
		}
		_ = r.finish(ctx, s, outcome, "") // logged; the Lease's fence expires
		return r.generationFailed(ctx, s, err)
	}
	link := storedLink{URL: resp.LoginLink, UserEmail: resp.UserEmail, AccountID: int64(resp.AccountID),
		ExpiresAt: resp.ExpiresAt, GeneratedAt: resp.CreatedAt, StoredAt: time.Now(), SpecHash: s.params.hash(),
		RenewRequest: ll.Annotations[partnersv1.AnnotationRenewRequestedAt]}
	if link.AccountID == 0 {
		link.AccountID = t.accountID
	}
	if link.GeneratedAt.IsZero() {
		link.GeneratedAt = now
	}
	if link.UserEmail == "" {
		link.UserEmail = t.user
	}
	if err := r.storeLink(ctx, ll, s.secretName, link); err != nil {
		// The new link is lost: every earlier one is invalid, and the marker (or the missing
		// Secret) makes the next pass generate again.
		_ = r.finish(ctx, s, election.Unknown, "") // logged; the Lease's fence expires
		return ctrl.Result{}, fmt.Errorf("cannot store the new link in Secret %s: %w", s.secretName, err)
	}
	if err := r.finish(ctx, s, election.Generated, stamp(link.GeneratedAt)); err != nil {
		return ctrl.Result{}, err
	}

	ll.Status.PreviousLinksInvalidated = clampInt32(resp.PreviousLinksInvalidated)
	ll.Status.NotificationSent = &resp.NotificationSent
	ll.Status.LastFailureTime = nil
	s.secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
	fillSecret(s.secret, link, nil)
	s.record = &election.Record{GeneratedBy: ll.UID, GeneratedAt: stamp(link.GeneratedAt)}
	after := r.decide(s)
	r.observeLink(ll, link, after)
	reason, event := partnersv1.ReasonGenerated, EventGenerated
	if d.Renewal {
		reason, event = partnersv1.ReasonRenewed, EventRenewed
	}
	msg := fmt.Sprintf("generated a link for %s on account %d because %s; it expires at %s",
		link.UserEmail, link.AccountID, d.Why, link.ExpiresAt.UTC().Format(time.RFC3339))
	r.setReady(ll, true, reason, msg)
	r.Recorder.Eventf(ll, nil, corev1.EventTypeNormal, event, "Generate", "%s", msg)
	logf.FromContext(ctx).Info("Generated a login link", "account", link.AccountID, "reason", d.Why,
		"expiresAt", link.ExpiresAt.UTC().Format(time.RFC3339))

	next := after.RenewAt
	if next.IsZero() {
		next = link.ExpiresAt
	}
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, next, minRequeue)}, nil
}

// finish records the generation's outcome in the user's Lease. A failure is logged and
// returned: the Lease then says the link may be invalid, which costs a generation, never a
// dead link.
func (r *LoginLinkReconciler) finish(ctx context.Context, s *linkScope, o election.Outcome, generatedAt string) error {
	if err := r.Elector.Finish(ctx, s.key, s.me, o, generatedAt); err != nil {
		logf.FromContext(ctx).Error(err, "Could not record the generation in the user's Lease")
		return fmt.Errorf("cannot record the generation in the user's Lease: %w", err)
	}
	return nil
}

// noEffect reports an error after which the API certainly generated nothing.
func noEffect(err error) bool {
	if fifteenth.IsRateLimited(err) {
		return true
	}
	e, ok := fifteenth.AsError(err)
	return ok && e.StatusCode >= 400 && e.StatusCode < 500
}

// storeLink writes the link into the LoginLink's Secret, creating it when needed. It reads
// the Secret fresh and retries: the link exists nowhere else.
func (r *LoginLinkReconciler) storeLink(ctx context.Context, ll *partnersv1.LoginLink, name string, link storedLink) error {
	errNotOwned := fmt.Errorf("secret %s is not owned by this LoginLink", name)
	return retry.OnError(retry.DefaultBackoff, func(err error) bool { return !errors.Is(err, errNotOwned) }, func() error {
		s := &corev1.Secret{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: name}, s)
		switch {
		case apierrors.IsNotFound(err):
			s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ll.Namespace, Name: name}}
			fillSecret(s, link, ll.Spec.SecretTemplate)
			if err := controllerutil.SetControllerReference(ll, s, r.Scheme()); err != nil {
				return err
			}
			return r.Create(ctx, s)
		case err != nil:
			return err
		case !metav1.IsControlledBy(s, ll):
			return errNotOwned
		}
		fillSecret(s, link, ll.Spec.SecretTemplate)
		return r.Update(ctx, s)
	})
}

// generationFailed turns an API error into a condition. Where the API certainly did nothing
// (4xx, rate limits) the Secret's marker is removed: its link is still valid. Warning Events
// are emitted when the reason changes, not on every retry.
func (r *LoginLinkReconciler) generationFailed(ctx context.Context, s *linkScope, err error) (ctrl.Result, error) {
	ll, now := s.ll, r.now()
	apiErr, isAPI := fifteenth.AsError(err)
	if noEffect(err) && s.secret != nil {
		if _, marked := s.secret.Annotations[annGenerating]; marked {
			u := s.secret.DeepCopy()
			delete(u.Annotations, annGenerating)
			if uerr := r.Update(ctx, u); uerr != nil {
				logf.FromContext(ctx).Info("Could not clear the generation marker; the next pass generates again", "error", uerr.Error())
			}
		}
	}
	if at, limited := fifteenth.RetryAt(err); limited {
		r.setReady(ll, false, partnersv1.ReasonRateLimited,
			fmt.Sprintf("a rate limit applies; the next try is at %s", at.UTC().Format(time.RFC3339)))
		return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, at, minRequeue)}, nil
	}
	switch {
	case fifteenth.HasCode(err, fifteenth.CodeAccountNotFound):
		r.failed(ll, partnersv1.ReasonAccountNotFound, err)
	case fifteenth.HasCode(err, fifteenth.CodeUserNotFound):
		r.failed(ll, partnersv1.ReasonUserNotFound, err)
	case fifteenth.HasCode(err, fifteenth.CodeInvalidRedirectURL):
		r.failed(ll, partnersv1.ReasonInvalidRedirectURL, err)
	case fifteenth.HasCode(err, fifteenth.CodeAccountSuspended):
		r.failed(ll, partnersv1.ReasonAccountSuspended, err)
		return ctrl.Result{RequeueAfter: r.syncPeriod()}, nil
	case isAPI && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden):
		r.failed(ll, partnersv1.ReasonUnauthorized, err)
		r.unauthorized(ctx, s.cfg)
		return ctrl.Result{}, err // backoff: a rotated key fixes it
	case fifteenth.IsTerminal(err):
		r.failed(ll, partnersv1.ReasonInvalidRequest, err)
	default:
		r.failed(ll, partnersv1.ReasonAPIUnavailable, err)
		return ctrl.Result{}, err // capped exponential backoff
	}
	return ctrl.Result{}, nil // terminal: wait for a spec change
}

// failed records a failed call; a Warning Event goes out when the reason changed.
func (r *LoginLinkReconciler) failed(ll *partnersv1.LoginLink, reason string, err error) {
	ll.Status.LastFailureTime = statusTime(r.now())
	ll.Status.RenewRequestHandled = ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
	if r.setReady(ll, false, reason, err.Error()) {
		r.Recorder.Eventf(ll, nil, corev1.EventTypeWarning, EventGenerationFailed, "Generate", "%s: %s", reason, err.Error())
	}
}

// suspendedHold holds a generation back after the API said the account is suspended, until
// a newer observation says it is active, or AccountSyncPeriod passed and a read of the
// account shows it active.
func (r *LoginLinkReconciler) suspendedHold(ctx context.Context, s *linkScope) (bool, ctrl.Result) {
	ll, now := s.ll, r.now()
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	if c == nil || c.Reason != partnersv1.ReasonAccountSuspended || ll.Status.LastFailureTime == nil ||
		newRenewRequest(ll) {
		return false, ctrl.Result{}
	}
	last := ll.Status.LastFailureTime.Time
	if s.target.observedActive.After(last) {
		return false, ctrl.Result{}
	}
	if wait := last.Add(r.syncPeriod()).Sub(now); wait > 0 {
		return true, ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, now.Add(wait), minRequeue)}
	}
	acct, err := s.cfg.API.GetAccount(ctx, fifteenth.AccountID(s.target.accountID))
	if err == nil && acct.Status == fifteenth.AccountSuspended {
		ll.Status.LastFailureTime = statusTime(now)
		return true, ctrl.Result{RequeueAfter: r.syncPeriod()}
	}
	return false, ctrl.Result{}
}

// SetupWithManager registers the controller. Status-only changes of a LoginLink do not
// trigger it; its Secret, its PartnerAccount, the other LoginLinks of its account and the
// account's user Leases do.
func (r *LoginLinkReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](DefaultBaseBackoff, DefaultMaxBackoff)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("loginlink").
		For(&partnersv1.LoginLink{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A Secret's generation marker comes and goes with each attempt: its owner is not woken
		// by it (a failed attempt waits for its backoff, not for its own writes).
		Owns(&corev1.Secret{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return !markerOnly(e) }})).
		Watches(&partnersv1.LoginLink{}, handler.EnqueueRequestsFromMapFunc(r.competitors)).
		Watches(&partnersv1.PartnerAccount{}, handler.EnqueueRequestsFromMapFunc(r.ofPartnerAccount)).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(r.ofLease))
	if r.claimsSource != nil {
		// A shard: another shard's claim on an account decides whether this shard's
		// LoginLinks by accountID may act on it.
		b = b.WatchesRawSource(source.Kind(r.claimsSource, client.Object(&partnersv1.PartnerAccount{}),
			handler.EnqueueRequestsFromMapFunc(r.ofClaim)))
	}
	return b.WithOptions(opts).Complete(r)
}

// ofClaim maps a PartnerAccount of any namespace (a shard's claims cache) to the LoginLinks
// this manager watches that name its account by ID.
func (r *LoginLinkReconciler) ofClaim(ctx context.Context, o client.Object) []reconcile.Request {
	id := o.(*partnersv1.PartnerAccount).Status.AccountID
	if id == 0 {
		return nil
	}
	var byID partnersv1.LoginLinkList
	if err := r.List(ctx, &byID, client.MatchingFields{indexAccountID: idString(id)}); err != nil {
		logf.FromContext(ctx).Error(err, "Could not list the LoginLinks of an account to wake them", "account", id)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(byID.Items))
	for _, l := range byID.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l)})
	}
	return reqs
}

// competitors maps a LoginLink to the other LoginLinks of its account, so that a new one
// supersedes the old at once and one that goes or fails hands over to the next.
func (r *LoginLinkReconciler) competitors(ctx context.Context, o client.Object) []reconcile.Request {
	ll := o.(*partnersv1.LoginLink)
	id := ll.Status.AccountID
	if ll.Spec.AccountID != nil {
		id = *ll.Spec.AccountID
	} else if ref := ll.Spec.AccountRef; ref != nil {
		pa := &partnersv1.PartnerAccount{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: ref.Name}, pa); err == nil && pa.Status.AccountID != 0 {
			id = pa.Status.AccountID
		}
	}
	var reqs []reconcile.Request
	for _, req := range r.accountRequests(ctx, id) {
		if req.NamespacedName != client.ObjectKeyFromObject(ll) {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// ofPartnerAccount maps a PartnerAccount to the LoginLinks that reference it and to those
// that name its account by ID (they learn the holder's email from it and compete with its
// LoginLinks).
func (r *LoginLinkReconciler) ofPartnerAccount(ctx context.Context, o client.Object) []reconcile.Request {
	// The map functions only read names: the cache's objects are not copied.
	var lls partnersv1.LoginLinkList
	if err := r.List(ctx, &lls, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexAccountRef: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "Could not list the LoginLinks of a PartnerAccount to wake them", "partnerAccount", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(lls.Items))
	for _, l := range lls.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l)})
	}
	if id := o.(*partnersv1.PartnerAccount).Status.AccountID; id != 0 {
		var byID partnersv1.LoginLinkList
		if err := r.List(ctx, &byID, client.MatchingFields{indexAccountID: idString(id)}, client.UnsafeDisableDeepCopy); err != nil {
			logf.FromContext(ctx).Error(err, "Could not list the LoginLinks of an account to wake them", "account", id)
		}
		for _, l := range byID.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l)})
		}
	}
	return reqs
}

// ofLease maps a user's Lease to the LoginLinks of its account, except the one that holds it:
// the holder wrote the Lease itself, and waking it would skip its backoff after a failure.
func (r *LoginLinkReconciler) ofLease(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Elector.Namespace {
		return nil
	}
	// The account is the user annotation's "<accountID>/<user>" (the cache keeps no
	// account-id label: CacheTransform).
	idText, user, _ := strings.Cut(o.GetAnnotations()[election.AnnotationUser], "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return nil
	}
	holder := types.UID(o.GetAnnotations()[election.AnnotationHolderUID])
	holderKey := types.NamespacedName{}
	if l, ok := o.(*coordinationv1.Lease); ok && l.Spec.HolderIdentity != nil {
		ns, name, _ := strings.Cut(*l.Spec.HolderIdentity, "/")
		holderKey = types.NamespacedName{Namespace: ns, Name: name}
	}
	// Only the LoginLinks of the Lease's user (or whose user is not known yet): a user's
	// election concerns them alone, and waking the other users' LoginLinks of the account made
	// two users' LoginLinks that retry (a rate limit) wake each other with every Lease write.
	var reqs []reconcile.Request
	for _, req := range r.accountRequests(ctx, id) {
		if (holder == "" || req.NamespacedName != holderKey) && r.mayBeUser(ctx, req.NamespacedName, user) {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// mayBeUser reports whether a LoginLink's user, by its spec or its status, is user, or is not
// known (or user is not).
func (r *LoginLinkReconciler) mayBeUser(ctx context.Context, key types.NamespacedName, user string) bool {
	ll := &partnersv1.LoginLink{}
	if user == "" || r.Get(ctx, key, ll, client.UnsafeDisableDeepCopy) != nil { // read only
		return true
	}
	spec, seen := strings.ToLower(ll.Spec.UserEmail), strings.ToLower(ll.Status.UserEmail)
	return spec == "" || seen == "" || spec == user || seen == user
}

// without returns m less key: m itself when it has no such key, else a copy.
func without(m map[string]string, key string) map[string]string {
	if _, ok := m[key]; !ok {
		return m
	}
	out := make(map[string]string, len(m)-1)
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// markerOnly reports a Secret update that changed nothing but the generation marker.
func markerOnly(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Secret)
	n, ok2 := e.ObjectNew.(*corev1.Secret)
	if !ok1 || !ok2 {
		return false
	}
	// Shallow copies: only the fields compared without are replaced (the cache's objects are
	// not copied whole for each Secret event).
	oc, nc := *o, *n
	oc.Annotations, nc.Annotations = without(o.Annotations, annGenerating), without(n.Annotations, annGenerating)
	oc.ResourceVersion, nc.ResourceVersion = "", ""
	oc.ManagedFields, nc.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(&oc, &nc)
}

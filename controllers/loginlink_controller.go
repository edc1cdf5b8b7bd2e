package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// Event reasons of LoginLinks.
const (
	EventGenerated        = "Generated"
	EventRenewed          = "Renewed"
	EventSuperseded       = "Superseded"
	EventGenerationFailed = "GenerationFailed"
)

// minRequeue is the shortest wait the controllers ever schedule: never zero, never a tight
// loop (a renewal time already passed is handled in the same pass, not by requeueing).
const minRequeue = 100 * time.Millisecond

// Defaults of the reconcilers' options.
const (
	DefaultAccountSyncPeriod = time.Hour
	DefaultBaseBackoff       = time.Second
	// DefaultMaxBackoff caps the retries of a failing API. Creations stay bounded by the
	// client-side limiter whatever the backoff.
	DefaultMaxBackoff = time.Minute
)

// LoginLinkReconciler keeps each LoginLink's link valid in its Secret, renews it before it
// expires, and makes sure only one LoginLink generates for a user.
type LoginLinkReconciler struct {
	client.Client
	deps
}

// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks,verbs=get;list;watch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile gets the LoginLink, runs one pass, and writes its status once.
func (r *LoginLinkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	ll := &partnersv1.LoginLink{}
	if err := r.Get(ctx, req.NamespacedName, ll); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.DeleteLoginLink(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !ll.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Secret goes with its owner
	}
	original := ll.DeepCopy()
	defer func() {
		cond := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
		var expires, renews time.Time
		if ll.Status.ExpiresAt != nil {
			expires = ll.Status.ExpiresAt.Time
		}
		if ll.Status.RenewalTime != nil {
			renews = ll.Status.RenewalTime.Time
		}
		metrics.SetLoginLink(ll.Namespace, ll.Name, cond != nil && cond.Status == metav1.ConditionTrue, expires, renews)
		if !apiequality.Semantic.DeepEqual(original.Status, ll.Status) {
			patchStatus(ctx, r.Client, ll, original, &res, &retErr)
		}
	}()
	return r.reconcile(ctx, ll)
}

// linkTarget is the account and user a LoginLink resolved to.
type linkTarget struct {
	accountID int64
	// user is the resolved user's email ("" while an accountID-only primary is unknown).
	user string
	// observedActive is when the account was last seen active (zero when unknown).
	observedActive time.Time
}

func (r *LoginLinkReconciler) reconcile(ctx context.Context, ll *partnersv1.LoginLink) (ctrl.Result, error) {
	now := r.now()
	secretName := ll.Spec.SecretName
	if secretName == "" {
		secretName = ll.Name
	}
	if old := ll.Status.SecretName; old != "" && old != secretName {
		if err := r.deleteOwnedSecret(ctx, ll, old); err != nil {
			return ctrl.Result{}, err
		}
	}
	ll.Status.SecretName = secretName
	hold := r.terminalHold(ll)

	target, ok, err := r.resolveTarget(ctx, ll)
	if !ok || err != nil {
		if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); err == nil &&
			ll.Spec.AccountID != nil && c != nil && c.Reason == partnersv1.ReasonAccountSuspended {
			// No PartnerAccount watch wakes an accountID-only LoginLink: look again later.
			return ctrl.Result{RequeueAfter: r.syncPeriod()}, nil
		}
		return ctrl.Result{}, err
	}
	ll.Status.AccountID = target.accountID
	if target.user != "" {
		ll.Status.UserEmail = target.user
	}

	if winner, err := r.activePeer(ctx, ll, target); err != nil {
		return ctrl.Result{}, err
	} else if winner != nil {
		msg := fmt.Sprintf("LoginLink %s/%s is newer and keeps the link of %s on account %d; this one calls nothing until it is deleted",
			winner.Namespace, winner.Name, userLabel(target.user), target.accountID)
		if r.setReady(ll, false, partnersv1.ReasonSuperseded, msg) {
			r.Recorder.Eventf(ll, winner, corev1.EventTypeNormal, EventSuperseded, "Supersede", msg)
		}
		return ctrl.Result{}, nil
	}

	secret, err := r.secret(ctx, r.Client, ll.Namespace, secretName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secret != nil && !metav1.IsControlledBy(secret, ll) {
		return r.secretConflict(ll, secretName)
	}
	params := paramsFor(&ll.Spec, target.accountID)
	in := r.input(ll, secret, params, now)
	d := decideLink(in)

	if d.Action == actionGenerate && !hold {
		if held, res := r.suspendedHold(ctx, ll, target, now); held {
			return res, nil
		}
		// Confirm with fresh reads: the cache may not show our own last write yet.
		fresh := &partnersv1.LoginLink{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ll), fresh); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if fresh.ResourceVersion != ll.ResourceVersion {
			// The cache is behind (a newer spec, annotation or status is on its way): decide
			// again with it rather than call on stale facts.
			return ctrl.Result{RequeueAfter: minRequeue}, nil
		}
		if secret, err = r.secret(ctx, r.APIReader, ll.Namespace, secretName); err != nil {
			return ctrl.Result{}, err
		}
		if secret != nil && !metav1.IsControlledBy(secret, ll) {
			return r.secretConflict(ll, secretName)
		}
		in = r.input(fresh, secret, params, now)
		if d = decideLink(in); d.Action == actionGenerate {
			return r.generate(ctx, ll, secret, secretName, params, target, d)
		}
	}

	// in describes secret (the fresh one when a generation was considered): no second read.
	link, state := in.Link, in.State
	if secret != nil && state == secretOK && secretMetaDrifted(secret, ll.Spec.SecretTemplate) {
		patched := secret.DeepCopy()
		setSecretMeta(patched, ll.Spec.SecretTemplate)
		if err := r.Patch(ctx, patched, client.MergeFrom(secret)); err != nil {
			return ctrl.Result{}, fmt.Errorf("cannot update Secret %s metadata: %w", secretName, err)
		}
	}
	if state == secretOK {
		r.observeLink(ll, link, d)
	}
	switch {
	case hold:
		return ctrl.Result{}, nil // a terminal failure waits for a spec change
	case d.Action == actionExpired:
		r.setReady(ll, false, partnersv1.ReasonExpired,
			fmt.Sprintf("the link expired at %s and renewal is disabled", link.ExpiresAt.UTC().Format(time.RFC3339)))
		return ctrl.Result{}, nil
	case d.Action == actionGenerate:
		// Defensive: every generation path above returns; look again later rather than spin.
		return ctrl.Result{RequeueAfter: minRequeue}, nil
	}
	reason := partnersv1.ReasonLinkValid
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		reason = c.Reason
	}
	next := d.RenewAt
	msg := fmt.Sprintf("the link expires at %s and is renewed at %s", d.ExpiresAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339))
	if next.IsZero() {
		next = d.ExpiresAt
		msg = fmt.Sprintf("the link expires at %s; renewal is disabled", d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	r.setReady(ll, true, reason, msg)
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, next, minRequeue)}, nil
}

// resolveTarget finds the account and user. ok is false when the LoginLink must wait (the
// condition says why).
func (r *LoginLinkReconciler) resolveTarget(ctx context.Context, ll *partnersv1.LoginLink) (linkTarget, bool, error) {
	if ref := ll.Spec.AccountRef; ref != nil {
		pa := &partnersv1.PartnerAccount{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: ref.Name}, pa); err != nil {
			if !apierrors.IsNotFound(err) {
				return linkTarget{}, false, err
			}
			r.setReady(ll, false, partnersv1.ReasonAccountNotReady, fmt.Sprintf("PartnerAccount %q does not exist", ref.Name))
			return linkTarget{}, false, nil
		}
		if pa.Status.AccountID == 0 {
			r.setReady(ll, false, partnersv1.ReasonAccountNotReady, fmt.Sprintf("PartnerAccount %q has no Fifteenth account yet", ref.Name))
			return linkTarget{}, false, nil
		}
		t := linkTarget{accountID: pa.Status.AccountID, user: ll.Spec.UserEmail}
		if t.user == "" {
			t.user = pa.Spec.Email
		}
		if pa.Status.AccountStatus == fifteenth.AccountSuspended {
			ll.Status.AccountID = t.accountID
			r.setReady(ll, false, partnersv1.ReasonAccountSuspended,
				fmt.Sprintf("account %d is suspended; the link is renewed again when it is active", t.accountID))
			return t, false, nil
		}
		if pa.Status.LastSyncTime != nil {
			t.observedActive = pa.Status.LastSyncTime.Time
		}
		return t, true, nil
	}

	// An accountID-only LoginLink for the primary holder learns the holder's email from its
	// first generation's answer (user_email), not from an extra read: until then it competes
	// under the empty email, and activePeer matches both keys.
	t := linkTarget{accountID: *ll.Spec.AccountID, user: ll.Spec.UserEmail}
	if t.user == "" && ll.Status.AccountID == t.accountID {
		t.user = ll.Status.UserEmail
	}
	return t, true, nil
}

// activePeer returns the newest other LoginLink competing for the same user when it is newer
// than ll, or nil when ll is the active one.
func (r *LoginLinkReconciler) activePeer(ctx context.Context, ll *partnersv1.LoginLink, t linkTarget) (*partnersv1.LoginLink, error) {
	keys := []string{keyFor(t.accountID, t.user)}
	if t.user != "" {
		keys = append(keys, keyFor(t.accountID, "")) // peers that have not learned the holder's email
	}
	var winner *partnersv1.LoginLink
	for _, key := range keys {
		var peers partnersv1.LoginLinkList
		if err := r.List(ctx, &peers, client.MatchingFields{indexAccountUser: key}); err != nil {
			return nil, fmt.Errorf("cannot list LoginLinks of the same user: %w", err)
		}
		for i := range peers.Items {
			p := &peers.Items[i]
			if p.UID == ll.UID || !p.DeletionTimestamp.IsZero() || !newerThan(p, ll) {
				continue
			}
			if winner == nil || newerThan(p, winner) {
				winner = p
			}
		}
	}
	return winner, nil
}

// input gathers the decision's input from a LoginLink and its Secret.
func (r *LoginLinkReconciler) input(ll *partnersv1.LoginLink, secret *corev1.Secret, p linkParams, now time.Time) linkInput {
	link, state := readSecret(secret)
	in := linkInput{Now: now, Link: link, State: state, SpecHash: p.hash(),
		Policy: partnersv1.RenewalPolicyRenewBefore, RenewRequest: ll.Annotations[partnersv1.AnnotationRenewRequestedAt],
		Jitter: renewal.Jitter(string(ll.UID) + "/" + link.GeneratedAt.UTC().Format(time.RFC3339Nano))}
	// A LoginLink that was superseded and is active again holds a link its successor
	// invalidated: it takes over by generating.
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Reason == partnersv1.ReasonSuperseded {
		in.TookOver = true
	}
	if rn := ll.Spec.Renewal; rn != nil {
		if rn.Policy != "" {
			in.Policy = rn.Policy
		}
		if rn.RenewBefore != nil {
			in.RenewBefore = rn.RenewBefore.Duration
		}
	}
	return in
}

// generate calls the API and stores the new link. Before the call it marks an existing
// Secret, so that a crash between the call and the store (after which the stored link is
// invalid) leads to a new generation instead of a dead link.
func (r *LoginLinkReconciler) generate(ctx context.Context, ll *partnersv1.LoginLink, secret *corev1.Secret,
	secretName string, p linkParams, t linkTarget, d linkDecision) (ctrl.Result, error) {
	now := r.now()
	if secret != nil {
		if _, marked := secret.Annotations[annGenerating]; !marked {
			m := secret.DeepCopy()
			m.Annotations[annGenerating] = now.UTC().Format(time.RFC3339Nano)
			if err := r.Update(ctx, m); err != nil {
				return ctrl.Result{}, fmt.Errorf("cannot mark Secret %s before generating: %w", secretName, err)
			}
			secret = m
		}
	}
	resp, err := r.API.GenerateLoginLink(ctx, fifteenth.AccountID(t.accountID), p.request(ll.Spec.UserEmail))
	if err != nil {
		return r.generationFailed(ctx, ll, secret, err)
	}
	link := storedLink{URL: resp.LoginLink, UserEmail: resp.UserEmail, AccountID: int64(resp.AccountID),
		ExpiresAt: resp.ExpiresAt, GeneratedAt: resp.CreatedAt, SpecHash: p.hash(),
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
	if err := r.storeLink(ctx, ll, secretName, link); err != nil {
		// The new link is lost; the marker (or the missing Secret) makes the next pass generate again.
		return ctrl.Result{}, fmt.Errorf("cannot store the new link in Secret %s: %w", secretName, err)
	}

	ll.Status.UserEmail = link.UserEmail
	ll.Status.PreviousLinksInvalidated = clampInt32(resp.PreviousLinksInvalidated)
	ll.Status.NotificationSent = &resp.NotificationSent
	ll.Status.LastFailureTime = nil
	in := r.input(ll, nil, p, now)
	in.Link, in.State = link, secretOK
	in.Jitter = renewal.Jitter(string(ll.UID) + "/" + link.GeneratedAt.UTC().Format(time.RFC3339Nano))
	after := decideLink(in)
	r.observeLink(ll, link, after)
	reason, event := partnersv1.ReasonGenerated, EventGenerated
	if d.Renewal {
		reason, event = partnersv1.ReasonRenewed, EventRenewed
	}
	msg := fmt.Sprintf("generated a link for %s on account %d because %s; it expires at %s",
		link.UserEmail, link.AccountID, d.Why, link.ExpiresAt.UTC().Format(time.RFC3339))
	r.setReady(ll, true, reason, msg)
	r.Recorder.Eventf(ll, nil, corev1.EventTypeNormal, event, "Generate", msg)
	logf.FromContext(ctx).Info("Generated a login link", "account", link.AccountID, "reason", d.Why,
		"expiresAt", link.ExpiresAt.UTC().Format(time.RFC3339))

	next := after.RenewAt
	if next.IsZero() {
		next = link.ExpiresAt
	}
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, next, minRequeue)}, nil
}

// storeLink writes the link into the LoginLink's Secret, creating it when needed. It reads
// the Secret fresh and retries a few times: the link exists nowhere else.
func (r *LoginLinkReconciler) storeLink(ctx context.Context, ll *partnersv1.LoginLink, name string, link storedLink) error {
	var err error
	for range 3 {
		s := &corev1.Secret{}
		err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: name}, s)
		switch {
		case apierrors.IsNotFound(err):
			s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ll.Namespace, Name: name}}
			fillSecret(s, link, ll.Spec.SecretTemplate)
			if err = controllerutil.SetControllerReference(ll, s, r.Scheme()); err != nil {
				return err
			}
			err = r.Create(ctx, s)
		case err != nil:
			continue
		case !metav1.IsControlledBy(s, ll):
			return fmt.Errorf("secret %s is not owned by this LoginLink", name)
		default:
			fillSecret(s, link, ll.Spec.SecretTemplate)
			err = r.Update(ctx, s)
		}
		if err == nil {
			return nil
		}
	}
	return err
}

// generationFailed turns an API error into a condition. Where the API certainly did nothing
// (4xx, rate limits) the Secret's marker is removed: its link is still valid.
func (r *LoginLinkReconciler) generationFailed(ctx context.Context, ll *partnersv1.LoginLink, secret *corev1.Secret, err error) (ctrl.Result, error) {
	now := r.now()
	apiErr, isAPI := fifteenth.AsError(err)
	noEffect := fifteenth.IsRateLimited(err) || (isAPI && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500)
	if noEffect && secret != nil {
		if _, marked := secret.Annotations[annGenerating]; marked {
			u := secret.DeepCopy()
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
		return ctrl.Result{}, err // backoff: a rotated key fixes it
	case fifteenth.IsTerminal(err):
		r.failed(ll, partnersv1.ReasonInvalidRequest, err)
	default:
		r.failed(ll, partnersv1.ReasonAPIUnavailable, err)
		return ctrl.Result{}, err // capped exponential backoff
	}
	return ctrl.Result{}, nil // terminal: wait for a spec change
}

// failed records a failed generation.
func (r *LoginLinkReconciler) failed(ll *partnersv1.LoginLink, reason string, err error) {
	ll.Status.LastFailureTime = &metav1.Time{Time: r.now()}
	r.setReady(ll, false, reason, err.Error())
	r.Recorder.Eventf(ll, nil, corev1.EventTypeWarning, EventGenerationFailed, "Generate", "%s: %s", reason, err.Error())
}

// terminalReasons are failures that no retry can fix: only a spec change (or a renewal
// request) leads to another call.
var terminalReasons = map[string]bool{
	partnersv1.ReasonAccountNotFound:    true,
	partnersv1.ReasonUserNotFound:       true,
	partnersv1.ReasonInvalidRedirectURL: true,
	partnersv1.ReasonInvalidRequest:     true,
}

// terminalHold reports whether a terminal failure of the current generation holds calls back.
func (r *LoginLinkReconciler) terminalHold(ll *partnersv1.LoginLink) bool {
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || !terminalReasons[c.Reason] || c.ObservedGeneration != ll.Generation {
		return false
	}
	return !renewRequestedAfter(ll, ll.Status.LastFailureTime)
}

// suspendedHold holds a generation back after the API said the account is suspended, until
// a newer observation says it is active, or AccountSyncPeriod passed and a read of the
// account shows it active.
func (r *LoginLinkReconciler) suspendedHold(ctx context.Context, ll *partnersv1.LoginLink, t linkTarget, now time.Time) (bool, ctrl.Result) {
	c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	if c == nil || c.Reason != partnersv1.ReasonAccountSuspended || ll.Status.LastFailureTime == nil ||
		renewRequestedAfter(ll, ll.Status.LastFailureTime) {
		return false, ctrl.Result{}
	}
	last := ll.Status.LastFailureTime.Time
	if t.observedActive.After(last) {
		return false, ctrl.Result{}
	}
	if wait := last.Add(r.syncPeriod()).Sub(now); wait > 0 {
		return true, ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, now.Add(wait), minRequeue)}
	}
	acct, err := r.API.GetAccount(ctx, fifteenth.AccountID(t.accountID))
	if err == nil && acct.Status == fifteenth.AccountSuspended {
		ll.Status.LastFailureTime = &metav1.Time{Time: now}
		return true, ctrl.Result{RequeueAfter: r.syncPeriod()}
	}
	return false, ctrl.Result{}
}

// renewRequestedAfter reports whether the renew-requested-at annotation is later than t.
func renewRequestedAfter(ll *partnersv1.LoginLink, t *metav1.Time) bool {
	v := ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
	at, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && t != nil && at.After(t.Time)
}

func (r *LoginLinkReconciler) secretConflict(ll *partnersv1.LoginLink, name string) (ctrl.Result, error) {
	r.setReady(ll, false, partnersv1.ReasonSecretConflict,
		fmt.Sprintf("Secret %s exists and is not owned by this LoginLink; it is never overwritten: delete it or choose another spec.secretName", name))
	return ctrl.Result{}, nil
}

// observeLink shows the stored link's times in status.
func (r *LoginLinkReconciler) observeLink(ll *partnersv1.LoginLink, l storedLink, d linkDecision) {
	ll.Status.AccountID = l.AccountID
	if l.UserEmail != "" {
		ll.Status.UserEmail = l.UserEmail
	}
	ll.Status.GeneratedAt = &metav1.Time{Time: l.GeneratedAt}
	ll.Status.ExpiresAt = &metav1.Time{Time: l.ExpiresAt}
	ll.Status.RenewalTime, ll.Status.RenewBefore = nil, nil
	if !d.RenewAt.IsZero() {
		ll.Status.RenewalTime = &metav1.Time{Time: d.RenewAt}
		ll.Status.RenewBefore = &metav1.Duration{Duration: d.RenewBefore}
	}
}

// setReady sets the Ready condition and reports whether its status or reason changed.
func (r *LoginLinkReconciler) setReady(ll *partnersv1.LoginLink, ready bool, reason, msg string) bool {
	return setReadyCondition(&ll.Status.Conditions, &ll.Status.ObservedGeneration, ll.Generation, ready, reason, msg)
}

// patchStatus writes obj's status, the one status write of a pass. The optimistic lock keeps a
// pass that read a stale cache from overwriting a newer status: on a conflict it runs again
// as soon as the cache caught up.
func patchStatus(ctx context.Context, c client.Client, obj, original client.Object, res *ctrl.Result, retErr *error) {
	err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}))
	switch {
	case err == nil || apierrors.IsNotFound(err):
	case apierrors.IsConflict(err) && *retErr == nil:
		*res = ctrl.Result{RequeueAfter: minRequeue}
	default:
		*retErr = errors.Join(*retErr, fmt.Errorf("cannot patch the status of %s: %w", client.ObjectKeyFromObject(obj), err))
	}
}

// setReadyCondition sets a Ready condition and observedGeneration; it reports whether the
// condition's status or reason changed.
func setReadyCondition(conds *[]metav1.Condition, observed *int64, generation int64, ready bool, reason, msg string) bool {
	status := metav1.ConditionFalse
	if ready {
		status = metav1.ConditionTrue
	}
	prev := meta.FindStatusCondition(*conds, partnersv1.ConditionReady)
	changed := prev == nil || prev.Status != status || prev.Reason != reason
	meta.SetStatusCondition(conds, metav1.Condition{Type: partnersv1.ConditionReady, Status: status,
		Reason: reason, Message: msg, ObservedGeneration: generation})
	*observed = generation
	return changed
}

// secret gets a Secret through reader, or nil when it does not exist.
func (r *LoginLinkReconciler) secret(ctx context.Context, reader client.Reader, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot get Secret %s: %w", name, err)
	}
	return s, nil
}

// deleteOwnedSecret removes a Secret the LoginLink used before its secretName changed.
func (r *LoginLinkReconciler) deleteOwnedSecret(ctx context.Context, ll *partnersv1.LoginLink, name string) error {
	s, err := r.secret(ctx, r.Client, ll.Namespace, name)
	if err != nil || s == nil || !metav1.IsControlledBy(s, ll) {
		return err
	}
	if err := r.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cannot delete the previous Secret %s: %w", name, err)
	}
	return nil
}

func clampInt32(n int) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < 0:
		return 0
	}
	return int32(n)
}

func userLabel(user string) string {
	if user == "" {
		return "the primary holder"
	}
	return user
}

// SetupWithManager registers the controller. Status-only changes of a LoginLink do not
// trigger it; its Secret, its PartnerAccount and its competitors do.
func (r *LoginLinkReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](DefaultBaseBackoff, DefaultMaxBackoff)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("loginlink").
		For(&partnersv1.LoginLink{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Watches(&partnersv1.LoginLink{}, handler.EnqueueRequestsFromMapFunc(r.competitors)).
		Watches(&partnersv1.PartnerAccount{}, handler.EnqueueRequestsFromMapFunc(r.referencing)).
		WithOptions(opts).
		Complete(r)
}

// competitors maps a LoginLink to the other LoginLinks of the same user, so that a new one
// supersedes the old at once and a deleted one hands over to the next.
func (r *LoginLinkReconciler) competitors(ctx context.Context, o client.Object) []reconcile.Request {
	ll := o.(*partnersv1.LoginLink)
	key := accountUserKey(ll)
	if key == "" {
		return nil
	}
	var peers partnersv1.LoginLinkList
	if err := r.List(ctx, &peers, client.MatchingFields{indexAccountUser: key}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, p := range peers.Items {
		if p.UID != ll.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
		}
	}
	return reqs
}

// referencing maps a PartnerAccount to the LoginLinks that reference it.
func (r *LoginLinkReconciler) referencing(ctx context.Context, o client.Object) []reconcile.Request {
	var lls partnersv1.LoginLinkList
	if err := r.List(ctx, &lls, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexAccountRef: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(lls.Items))
	for _, l := range lls.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l)})
	}
	return reqs
}

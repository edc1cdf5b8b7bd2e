package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
	"github.com/fifteenth/fifteenth-operator/internal/tenancy"
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
// expires, and makes sure only one LoginLink generates for a user (package election).
type LoginLinkReconciler struct {
	client.Client
	deps
}

// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks,verbs=get;list;watch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts,verbs=get;list;watch
// Secrets (get, list, watch, create, update, patch, delete) are granted by the hand-written
// ClusterRole in config/rbac/secret_role.yaml, not by a marker: config/default binds it
// cluster-wide, config/namespaced only in the watched namespaces.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// The Secrets a LoginLink owns carry blockOwnerDeletion: OwnerReferencesPermissionEnforcement
// requires update on the LoginLink's finalizers.
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks/finalizers,verbs=update

// Reconcile gets the LoginLink, runs one pass, and writes its status once.
func (r *LoginLinkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	ll := &partnersv1.LoginLink{}
	if err := r.Get(ctx, req.NamespacedName, ll); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !ll.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Secret goes with its owner
	}
	original := ll.DeepCopy()
	defer func() {
		if !apiequality.Semantic.DeepEqual(original.Status, ll.Status) {
			patchStatus(ctx, r.Client, ll, original, &res, &retErr)
		}
	}()
	return r.reconcile(ctx, ll)
}

// linkTarget is the account and user a LoginLink resolved to.
type linkTarget struct {
	accountID int64
	// user is the user's email as the spec or the account gives it.
	user string
	// observedActive is when the account was last seen active (zero when unknown).
	observedActive time.Time
}

// linkScope is what one pass learned, phase by phase.
type linkScope struct {
	ll         *partnersv1.LoginLink
	now        time.Time
	secretName string
	target     linkTarget
	key        election.Key
	me         election.Candidate
	// cfg is the partner config: the API client, its endpoint, its grants.
	cfg    *partnerconfig.Config
	params linkParams
	// secret is the LoginLink's own Secret (nil when missing); record the user's Lease
	// (nil when none).
	secret *corev1.Secret
	record *election.Record
	// heldBy is the LoginLink of this namespace that holds the user, when another does.
	heldBy string
	// in is the decision's input, read once from secret and record (decide), and decision
	// what decideLink made of it.
	in       linkInput
	decision linkDecision
}

// decide reads the decision's input from the scope's Secret and Lease, once per reading of
// them, and decides.
func (r *LoginLinkReconciler) decide(s *linkScope) linkDecision {
	s.in = r.input(s)
	s.decision = decideLink(s.in)
	return s.decision
}

// linkPhase is one step of a pass; done ends the pass with res and err.
type linkPhase func(ctx context.Context, s *linkScope) (res ctrl.Result, done bool, err error)

// reconcile runs the phases in order: whether the LoginLink goes with its namespace or owner,
// whether it is paused, whether the manager is a standby, the Secret's name, the account and user, the Secret, holds that wait for a change, the
// election, and last the link itself.
func (r *LoginLinkReconciler) reconcile(ctx context.Context, ll *partnersv1.LoginLink) (ctrl.Result, error) {
	s := &linkScope{ll: ll, now: r.now()}
	for _, phase := range []linkPhase{
		r.reconcileGoing,
		r.reconcilePaused,
		r.reconcileStandby,
		r.reconcileSecretName,
		r.reconcileTarget,
		r.reconcileSecret,
		r.reconcileHolds,
		r.reconcileElection,
		r.reconcileLink,
	} {
		if res, done, err := phase(ctx, s); done || err != nil {
			return res, err
		}
	}
	return ctrl.Result{}, nil
}

// reconcileGoing ends the pass of a LoginLink whose namespace or owner PartnerAccount is
// being deleted (as the cache says): it goes with them, so nothing is generated, written or
// called for it, even when its Secret went first.
func (r *LoginLinkReconciler) reconcileGoing(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	why, err := loginLinkGoing(ctx, r.Client, s.ll)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if why != "" {
		logf.FromContext(ctx).V(1).Info("The LoginLink is going: nothing to do", "because", why)
		return ctrl.Result{}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// reconcileSecretName removes the Secret of a previous spec.secretName.
func (r *LoginLinkReconciler) reconcileSecretName(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	ll := s.ll
	s.secretName = ll.Spec.SecretName
	if s.secretName == "" {
		s.secretName = ll.Name
	}
	if old := ll.Status.SecretName; old != "" && old != s.secretName {
		if err := r.deleteOwnedSecret(ctx, ll, old); err != nil {
			return ctrl.Result{}, true, err
		}
	}
	ll.Status.SecretName = s.secretName
	return ctrl.Result{}, false, nil
}

// reconcileTarget resolves the account and the user from facts known before any generation:
// the referenced PartnerAccount as read now, or for an accountID LoginLink for the primary
// holder, the holder's email (from the PartnerAccount that manages the account, else one
// Retrieve Account remembered in status).
func (r *LoginLinkReconciler) reconcileTarget(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	ll := s.ll
	var t linkTarget
	if ref := ll.Spec.AccountRef; ref != nil {
		pa := &partnersv1.PartnerAccount{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: ref.Name}, pa); err != nil {
			if !apierrors.IsNotFound(err) {
				return ctrl.Result{}, true, err
			}
			r.setReady(ll, false, partnersv1.ReasonAccountNotReady, fmt.Sprintf("PartnerAccount %q does not exist", ref.Name))
			return ctrl.Result{}, true, nil
		}
		if pa.Status.AccountID == 0 || !pa.DeletionTimestamp.IsZero() {
			r.setReady(ll, false, partnersv1.ReasonAccountNotReady, fmt.Sprintf("PartnerAccount %q has no Fifteenth account", ref.Name))
			// A PartnerAccount that lost its claim: the link its LoginLink kept for the account
			// is removed once another generation invalidated it.
			return ctrl.Result{}, true, r.retireFormerLink(ctx, s, pa)
		}
		cfg, res, ok, err := r.configFor(ctx, ll.Namespace, pa.Spec.PartnerConfigRef, func(reason, msg string) { r.setReady(ll, false, reason, msg) })
		if !ok {
			return res, true, err
		}
		s.cfg = cfg
		t = linkTarget{accountID: pa.Status.AccountID, user: ll.Spec.UserEmail}
		if t.user == "" {
			t.user = pa.Spec.Email
		}
		ll.Status.AccountID = t.accountID
		if pa.Status.AccountStatus == fifteenth.AccountSuspended {
			r.setReady(ll, false, partnersv1.ReasonAccountSuspended,
				fmt.Sprintf("account %d is suspended; the link is renewed again when it is active", t.accountID))
			return ctrl.Result{}, true, nil
		}
		if pa.Status.LastSyncTime != nil {
			t.observedActive = pa.Status.LastSyncTime.Time
		}
	} else {
		id := *ll.Spec.AccountID
		if ll.Status.AccountID != id {
			ll.Status.AccountID, ll.Status.UserEmail = id, ""
		}
		cfg, res, ok, err := r.configFor(ctx, ll.Namespace, ll.Spec.PartnerConfigRef, func(reason, msg string) { r.setReady(ll, false, reason, msg) })
		if !ok {
			return res, true, err
		}
		s.cfg = cfg
		t = linkTarget{accountID: id, user: ll.Spec.UserEmail}
		// The account must be this namespace's (its PartnerAccount is here), or unclaimed with
		// a grant: nothing is called, competed for or written otherwise.
		home, err := r.home(ctx, cfg.Endpoint, id)
		if err != nil {
			return ctrl.Result{}, true, err
		}
		granted, err := r.granted(ctx, cfg, ll.Namespace)
		if err != nil {
			return ctrl.Result{}, true, err
		}
		if d := tenancy.Permit(tenancy.Access{Namespace: ll.Namespace, AccountID: id, Home: home, Granted: granted}); !d.Allowed {
			r.setReady(ll, false, d.Reason, d.Message)
			return ctrl.Result{}, true, nil
		}
		if t.user == "" {
			user, res, done, err := r.primaryHolder(ctx, ll, cfg, id)
			if done || err != nil {
				return res, done, err
			}
			t.user = user
		}
	}
	ll.Status.UserEmail = strings.ToLower(t.user)
	s.target = t
	s.key = election.NewKey(s.cfg.Endpoint, t.accountID, t.user)
	s.me = candidateOf(ll, true)
	s.params = paramsFor(&ll.Spec, t.accountID)
	return ctrl.Result{}, false, nil
}

// retireFormerLink removes from the Secret a link kept for the account the LoginLink's
// PartnerAccount no longer has (status.accountID and userEmail say which), once invalid.
func (r *LoginLinkReconciler) retireFormerLink(ctx context.Context, s *linkScope, pa *partnersv1.PartnerAccount) error {
	ll := s.ll
	if ll.Status.AccountID == 0 || ll.Status.UserEmail == "" {
		return nil
	}
	endpoint := r.endpointOf(ctx, ll.Namespace, pa.Spec.PartnerConfigRef)
	if endpoint == "" {
		return nil
	}
	s.key = election.NewKey(endpoint, ll.Status.AccountID, ll.Status.UserEmail)
	var err error
	if s.secret, err = r.secret(ctx, r.Client, ll.Namespace, s.secretName); err != nil || s.secret == nil {
		return err
	}
	if s.record, err = r.Elector.Cached(ctx, s.key); err != nil {
		return err
	}
	return r.retireStaleLink(ctx, s)
}

// primaryHolder returns the primary holder's email of an account: from status when this
// LoginLink resolved it before, from the PartnerAccount that manages the account, or from one
// Retrieve Account.
func (r *LoginLinkReconciler) primaryHolder(ctx context.Context, ll *partnersv1.LoginLink, cfg *partnerconfig.Config, id int64) (string, ctrl.Result, bool, error) {
	if ll.Status.AccountID == id && ll.Status.UserEmail != "" {
		return ll.Status.UserEmail, ctrl.Result{}, false, nil
	}
	if r.terminalHold(ll) {
		return "", ctrl.Result{}, true, nil // the read failed for good: wait for a change
	}
	pas, err := r.claimantsIn(ctx, cfg.Endpoint, id)
	if err != nil {
		return "", ctrl.Result{}, true, err
	}
	if len(pas) > 0 {
		return pas[0].Spec.Email, ctrl.Result{}, false, nil
	}
	acct, err := cfg.API.GetAccount(ctx, fifteenth.AccountID(id))
	switch {
	case err == nil && acct.Email != "":
		return acct.Email, ctrl.Result{}, false, nil
	case fifteenth.HasCode(err, fifteenth.CodeAccountNotFound):
		r.failed(ll, partnersv1.ReasonAccountNotFound, err)
		return "", ctrl.Result{}, true, nil
	}
	if at, limited := fifteenth.RetryAt(err); limited {
		r.setReady(ll, false, partnersv1.ReasonRateLimited,
			fmt.Sprintf("a rate limit applies to reading account %d; the next try is at %s", id, at.UTC().Format(time.RFC3339)))
		return "", ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), at, minRequeue)}, true, nil
	}
	if err == nil || !fifteenth.IsRetryable(err) || isUnexpectedRoute(err) {
		// Without the holder's email this LoginLink cannot know which LoginLinks it competes
		// with, so it does not generate: spec.userEmail settles it.
		msg := fmt.Sprintf("cannot learn the primary holder's email of account %d from Retrieve Account; set spec.userEmail", id)
		if err != nil {
			msg += ": " + err.Error()
		}
		r.setReady(ll, false, partnersv1.ReasonAccountNotReady, msg)
		return "", ctrl.Result{RequeueAfter: r.syncPeriod()}, true, nil
	}
	r.failed(ll, partnersv1.ReasonAPIUnavailable, err)
	return "", ctrl.Result{}, true, err
}

// reconcileSecret reads the LoginLink's Secret and the user's Lease from the cache. A Secret
// of that name that this LoginLink does not own is never written.
func (r *LoginLinkReconciler) reconcileSecret(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	secret, err := r.secret(ctx, r.Client, s.ll.Namespace, s.secretName)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if secret != nil && !metav1.IsControlledBy(secret, s.ll) {
		r.secretConflict(s.ll, s.secretName)
		return ctrl.Result{}, true, nil
	}
	s.secret = secret
	if s.record, err = r.Elector.Cached(ctx, s.key); err != nil {
		return ctrl.Result{}, true, err
	}
	return ctrl.Result{}, false, nil
}

// reconcileHolds ends the pass of a LoginLink that waits for a change: a terminal failure of
// its current spec, or an expired link it may not renew. Neither holds the user.
func (r *LoginLinkReconciler) reconcileHolds(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	if r.terminalHold(s.ll) {
		return ctrl.Result{}, true, r.retireStaleLink(ctx, s)
	}
	if r.decide(s).Action == actionExpired {
		r.observeLink(s.ll, s.in.Link, linkDecision{})
		r.setReady(s.ll, false, partnersv1.ReasonExpired,
			fmt.Sprintf("the link expired at %s and renewal is disabled", s.in.Link.ExpiresAt.UTC().Format(time.RFC3339)))
		return ctrl.Result{}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// reconcileLink decides whether to generate, and generates or waits for the renewal time.
func (r *LoginLinkReconciler) reconcileLink(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	d := s.decision // decided in reconcileHolds; the election read nothing new
	var res ctrl.Result
	var err error
	if d.Action == actionGenerate {
		res, err = r.generate(ctx, s, d)
	} else {
		res = r.ready(ctx, s, d)
	}
	if err == nil {
		err = r.reconcileRestarts(ctx, s) // after a new link, and after a crash that interrupted its restarts
	}
	return res, true, err
}

// ready reports a current link and schedules its renewal.
func (r *LoginLinkReconciler) ready(ctx context.Context, s *linkScope, d linkDecision) ctrl.Result {
	ll, link := s.ll, s.in.Link
	if s.secret != nil && secretMetaDrifted(s.secret, ll.Spec.SecretTemplate) {
		patched := s.secret.DeepCopy()
		setSecretMeta(patched, ll.Spec.SecretTemplate)
		if err := r.Patch(ctx, patched, client.MergeFrom(s.secret)); err != nil {
			logf.FromContext(ctx).Info("Could not update the Secret's labels and annotations; trying again later",
				"secret", s.secretName, "error", err.Error())
		}
	}
	r.observeLink(ll, link, d)
	next := d.RenewAt
	if next.IsZero() {
		next = d.ExpiresAt
	}
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue &&
		c.ObservedGeneration == ll.Generation && (c.Reason == partnersv1.ReasonGenerated || c.Reason == partnersv1.ReasonRenewed) {
		// The pass after a generation keeps its condition: the status says the same, and
		// writing another message would cost a status write per renewal.
		return ctrl.Result{RequeueAfter: renewal.RequeueAfter(s.now, next, minRequeue)}
	}
	reason := partnersv1.ReasonLinkValid
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		reason = c.Reason
	}
	next = d.RenewAt
	msg := fmt.Sprintf("the link expires at %s and is renewed at %s", d.ExpiresAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339))
	if next.IsZero() {
		next = d.ExpiresAt
		msg = fmt.Sprintf("the link expires at %s; renewal is disabled", d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	r.setReady(ll, true, reason, msg)
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(s.now, next, minRequeue)}
}

// input gathers the decision's input from the scope.
func (r *LoginLinkReconciler) input(s *linkScope) linkInput {
	ll := s.ll
	link, state := readSecret(s.secret)
	in := linkInput{Now: s.now, Link: link, State: state, SpecHash: s.params.hash(),
		Policy: partnersv1.RenewalPolicyRenewBefore, RenewRequest: ll.Annotations[partnersv1.AnnotationRenewRequestedAt],
		Jitter:  renewal.Jitter(string(ll.UID) + "/" + stamp(link.GeneratedAt)),
		Current: s.record.Current(ll.UID, stamp(link.GeneratedAt))}
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
	return !newRenewRequest(ll)
}

// newRenewRequest reports whether the renew-requested-at annotation is one that no failed
// attempt acted on yet: each new value causes one attempt.
func newRenewRequest(ll *partnersv1.LoginLink) bool {
	v := ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
	return v != "" && v != ll.Status.RenewRequestHandled
}

// renewRequestedAfter reports whether the renew-requested-at annotation is later than t.
func renewRequestedAfter(ll *partnersv1.LoginLink, t *metav1.Time) bool {
	v := ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
	at, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && t != nil && at.After(t.Time)
}

func (r *LoginLinkReconciler) secretConflict(ll *partnersv1.LoginLink, name string) {
	r.setReady(ll, false, partnersv1.ReasonSecretConflict,
		fmt.Sprintf("Secret %s exists and is not owned by this LoginLink; it is never overwritten: delete it or choose another spec.secretName", name))
}

// observeLink shows the stored link's times in status, at the second precision the API
// server keeps (so that a pass that changed nothing writes nothing).
func (r *LoginLinkReconciler) observeLink(ll *partnersv1.LoginLink, l storedLink, d linkDecision) {
	ll.Status.AccountID = l.AccountID
	if l.UserEmail != "" {
		ll.Status.UserEmail = strings.ToLower(l.UserEmail)
	}
	ll.Status.GeneratedAt = statusTime(l.GeneratedAt)
	ll.Status.ExpiresAt = statusTime(l.ExpiresAt)
	ll.Status.RenewalTime, ll.Status.RenewBefore = nil, nil
	if !d.RenewAt.IsZero() {
		ll.Status.RenewalTime = statusTime(d.RenewAt)
		ll.Status.RenewBefore = &metav1.Duration{Duration: d.RenewBefore}
	}
}

// statusTime is t as the API server stores a metav1.Time: UTC, whole seconds.
func statusTime(t time.Time) *metav1.Time {
	return &metav1.Time{Time: t.UTC().Truncate(time.Second)}
}

// stamp is the generated-at of a link as its Secret and the user's Lease record it.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// setReady sets the Ready condition (and Reconciling and Stalled from it) and reports whether
// its status or reason changed.
func (r *LoginLinkReconciler) setReady(ll *partnersv1.LoginLink, ready bool, reason, msg string) bool {
	changed := setReadyCondition(&ll.Status.Conditions, &ll.Status.ObservedGeneration, ll.Generation, ready, reason, msg)
	setProgressConditions(&ll.Status.Conditions, ll.Generation, ready, reason, msg)
	return changed
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

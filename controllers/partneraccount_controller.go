package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// Event reasons of PartnerAccounts.
const (
	EventCreated      = "Created"
	EventAdopted      = "Adopted"
	EventSuspended    = "Suspended"
	EventReactivated  = "Reactivated"
	EventCreateFailed = "CreateFailed"
)

// purposeRenewal is the purpose of the links a PartnerAccount keeps.
const purposeRenewal = "automated_renewal"

// PartnerAccountReconciler creates each client's account exactly once (or adopts it), keeps
// the holder's and the spouse's links through owned LoginLinks, and observes suspension.
type PartnerAccountReconciler struct {
	client.Client
	deps
}

// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks,verbs=get;list;watch;create;update;patch

// Reconcile gets the PartnerAccount, runs one pass, and writes its status once.
func (r *PartnerAccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	pa := &partnersv1.PartnerAccount{}
	if err := r.Get(ctx, req.NamespacedName, pa); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.AccountReady.DeleteLabelValues(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !pa.DeletionTimestamp.IsZero() {
		// The Fifteenth account stays: the API has no delete, and it holds tax data. The
		// LoginLinks and their Secrets are garbage-collected with their owner.
		return ctrl.Result{}, nil
	}
	original := pa.DeepCopy()
	defer func() {
		c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady)
		ready := 0.0
		if c != nil && c.Status == metav1.ConditionTrue {
			ready = 1
		}
		metrics.AccountReady.WithLabelValues(pa.Namespace, pa.Name).Set(ready)
		if !apiequality.Semantic.DeepEqual(original.Status, pa.Status) {
			patchStatus(ctx, r.Client, pa, original, &res, &retErr)
		}
	}()
	return r.reconcile(ctx, pa)
}

func (r *PartnerAccountReconciler) reconcile(ctx context.Context, pa *partnersv1.PartnerAccount) (ctrl.Result, error) {
	holder, spouse, err := r.ensureLoginLinks(ctx, pa)
	if err != nil {
		return ctrl.Result{}, err
	}
	pa.Status.LoginLinkSecretName = holder.Spec.SecretName
	pa.Status.SpouseLoginLinkSecretName = ""
	if spouse != nil {
		pa.Status.SpouseLoginLinkSecretName = spouse.Spec.SecretName
	}

	if pa.Status.AccountID == 0 {
		if res, done, err := r.ensureAccount(ctx, pa, holder, spouse); done || err != nil {
			return res, err
		}
	} else if claimed, err := r.claimedByOlder(ctx, pa, pa.Status.AccountID); err != nil {
		return ctrl.Result{}, err
	} else if claimed != nil {
		return r.lostClaim(pa, pa.Status.AccountID, claimed)
	}

	next := r.observe(ctx, pa)
	r.summarise(pa, holder, spouse)
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), next, minRequeue)}, nil
}

// ensureLoginLinks creates or updates the owned LoginLinks of the holder and the spouse.
// They exist before the account does, so that the links of the create answer can be stored
// in their Secrets at once; until then they wait (AccountNotReady).
func (r *PartnerAccountReconciler) ensureLoginLinks(ctx context.Context, pa *partnersv1.PartnerAccount) (*partnersv1.LoginLink, *partnersv1.LoginLink, error) {
	ls := pa.Spec.LoginLink
	if ls == nil {
		ls = &partnersv1.AccountLoginLinkSpec{}
	}
	holderSecret := ls.SecretName
	if holderSecret == "" {
		holderSecret = pa.Name + "-login-link"
	}
	holder, err := r.ensureLoginLink(ctx, pa, pa.Name+"-holder", pa.Spec.Email, holderSecret, ls)
	if err != nil {
		return nil, nil, err
	}
	if pa.Spec.Spouse == nil {
		return holder, nil, nil
	}
	spouse, err := r.ensureLoginLink(ctx, pa, pa.Name+"-spouse", pa.Spec.Spouse.Email, pa.Name+"-spouse-login-link", ls)
	return holder, spouse, err
}

func (r *PartnerAccountReconciler) ensureLoginLink(ctx context.Context, pa *partnersv1.PartnerAccount, name, email, secretName string,
	ls *partnersv1.AccountLoginLinkSpec) (*partnersv1.LoginLink, error) {
	ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: pa.Namespace, Name: name}}
	want := partnersv1.LoginLinkSpec{
		AccountRef:       &partnersv1.LocalObjectReference{Name: pa.Name},
		UserEmail:        email,
		ExpiryHours:      ls.ExpiryHours,
		Purpose:          purposeRenewal,
		RedirectURL:      ls.RedirectURL,
		SendNotification: ptr.To(ls.SendNotification != nil && *ls.SendNotification),
		Renewal:          ls.Renewal,
		SecretName:       secretName,
	}
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, ll, func() error {
		if !ll.CreationTimestamp.IsZero() && !metav1.IsControlledBy(ll, pa) {
			return fmt.Errorf("LoginLink %s exists and is not owned by this PartnerAccount", name)
		}
		ll.Spec = want
		return controllerutil.SetControllerReference(pa, ll, r.Scheme())
	})
	if err != nil {
		return nil, fmt.Errorf("cannot ensure LoginLink %s: %w", name, err)
	}
	return ll, nil
}

// ensureAccount creates or adopts the account. done is true when the pass ends here.
func (r *PartnerAccountReconciler) ensureAccount(ctx context.Context, pa *partnersv1.PartnerAccount,
	holder, spouse *partnersv1.LoginLink) (ctrl.Result, bool, error) {
	if held := r.terminalHold(pa); held {
		return ctrl.Result{}, true, nil
	}
	// Every call below is confirmed with a live read: a pass that sees a stale cache (without
	// the last failure or 409 recorded) must not create twice.
	fresh := &partnersv1.PartnerAccount{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(pa), fresh); err != nil {
		return ctrl.Result{}, true, client.IgnoreNotFound(err)
	}
	if fresh.ResourceVersion != pa.ResourceVersion {
		return ctrl.Result{RequeueAfter: minRequeue}, true, nil
	}
	// A lost claim is looked at again once per sync period (the other PartnerAccount may be
	// deleted meanwhile), not on every wake-up: each look may cost a create call.
	if c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady); c != nil &&
		c.Reason == partnersv1.ReasonAccountClaimed && c.ObservedGeneration == pa.Generation {
		if next := c.LastTransitionTime.Add(r.syncPeriod()); r.now().Before(next) {
			return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), next, minRequeue)}, true, nil
		}
	}
	if id := pa.Spec.AccountID; id != nil {
		return r.adopt(ctx, pa, *id, nil)
	}
	if id := pa.Status.ExistingAccountID; id != 0 {
		// An earlier pass met a 409: verify and adopt that account; never create again.
		return r.adopt(ctx, pa, id, &fifteenth.Error{Code: fifteenth.CodeDuplicateEmail})
	}

	req := fifteenth.CreateAccountRequest{Email: pa.Spec.Email, FirstName: pa.Spec.FirstName, LastName: pa.Spec.LastName}
	if s := pa.Spec.Spouse; s != nil {
		req.Spouse = &fifteenth.SpouseInput{Email: s.Email, FirstName: s.FirstName, LastName: s.LastName, SendInvitation: s.SendInvitation}
	}
	acct, err := r.API.CreateAccount(ctx, req)
	if err != nil {
		return r.createFailed(ctx, pa, err)
	}
	// Store the links of the answer before anything else: they exist nowhere else.
	r.seed(ctx, holder, int64(acct.ID), acct.Email, acct.LoginLink, acct.LoginLinkExpiresAt, acct.CreatedAt)
	if spouse != nil && acct.Spouse != nil {
		r.seed(ctx, spouse, int64(acct.ID), acct.Spouse.Email, acct.Spouse.LoginLink, acct.Spouse.LoginLinkExpiresAt, acct.CreatedAt)
	}
	r.setAccount(pa, acct)
	pa.Status.LastSyncTime = &metav1.Time{Time: r.now()} // the answer told us its status
	pa.Status.LoginLinkExpiresAt = &metav1.Time{Time: acct.LoginLinkExpiresAt}
	msg := fmt.Sprintf("created Fifteenth account %d for %s", acct.ID, acct.Email)
	r.setReady(pa, true, partnersv1.ReasonCreated, msg)
	r.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, EventCreated, "Create", msg)
	logf.FromContext(ctx).Info("Created a Fifteenth account", "account", int64(acct.ID))
	return ctrl.Result{}, false, nil
}

// seed stores a link of the create answer in a LoginLink's Secret, marked with the LoginLink's
// own parameters, so that its engine keeps (and later renews) it without a second call.
func (r *PartnerAccountReconciler) seed(ctx context.Context, ll *partnersv1.LoginLink, accountID int64, user, url string, expires, created time.Time) {
	if url == "" {
		return
	}
	link := storedLink{URL: url, UserEmail: user, AccountID: accountID, ExpiresAt: expires, GeneratedAt: created,
		SpecHash: paramsFor(&ll.Spec, accountID).hash()}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ll.Namespace, Name: ll.Spec.SecretName}}
	fillSecret(s, link, ll.Spec.SecretTemplate)
	err := controllerutil.SetControllerReference(ll, s, r.Scheme())
	if err == nil {
		err = r.Create(ctx, s)
	}
	if err != nil {
		// Not fatal: the LoginLink finds no usable Secret and generates a fresh link.
		logf.FromContext(ctx).Info("Could not store the link of the create answer; the LoginLink generates a fresh one",
			"loginLink", ll.Name, "error", err.Error())
	}
}

// createFailed handles a failed creation. A 409 means the account exists (perhaps created by
// an earlier attempt whose answer was lost): it is adopted.
func (r *PartnerAccountReconciler) createFailed(ctx context.Context, pa *partnersv1.PartnerAccount, err error) (ctrl.Result, bool, error) {
	if apiErr, ok := fifteenth.AsError(err); ok && apiErr.Code == fifteenth.CodeDuplicateEmail {
		if id, ok := apiErr.ExistingAccountID(); ok {
			pa.Status.ExistingAccountID = int64(id)
			return r.adopt(ctx, pa, int64(id), apiErr)
		}
	}
	if at, limited := fifteenth.RetryAt(err); limited {
		r.setReady(pa, false, partnersv1.ReasonRateLimited,
			fmt.Sprintf("the account-creation rate limit applies; the next try is at %s", at.UTC().Format(time.RFC3339)))
		return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), at, minRequeue)}, true, nil
	}
	switch {
	case fifteenth.IsTerminal(err):
		reason := partnersv1.ReasonValidationFailed
		if e, _ := fifteenth.AsError(err); e.StatusCode == 401 || e.StatusCode == 403 {
			reason = partnersv1.ReasonUnauthorized
			r.failed(pa, reason, err)
			return ctrl.Result{}, true, err // backoff: a rotated key fixes it
		}
		r.failed(pa, reason, err)
		return ctrl.Result{}, true, nil // terminal until the spec changes
	default:
		// The account may or may not exist now: the retry meets a 409 if it does.
		r.failed(pa, partnersv1.ReasonAPIUnavailable, err)
		return ctrl.Result{}, true, err
	}
}

// adopt takes over an existing account after checking that it is the client's and that no
// other PartnerAccount manages it. dup is the 409 that led here, if any.
func (r *PartnerAccountReconciler) adopt(ctx context.Context, pa *partnersv1.PartnerAccount, id int64, dup *fifteenth.Error) (ctrl.Result, bool, error) {
	if claimed, err := r.claimedBy(ctx, pa, id); err != nil {
		return ctrl.Result{}, true, err
	} else if claimed != nil {
		res, err := r.lostClaim(pa, id, claimed)
		return res, true, err
	}
	acct, err := r.API.GetAccount(ctx, fifteenth.AccountID(id))
	switch {
	case err == nil:
		if !strings.EqualFold(acct.Email, pa.Spec.Email) {
			r.mismatch(pa, fmt.Sprintf("account %d belongs to %s, not to spec.email %s", id, acct.Email, pa.Spec.Email), dup != nil)
			return ctrl.Result{}, true, nil
		}
		if s := pa.Spec.Spouse; s != nil && (acct.Spouse == nil || !strings.EqualFold(acct.Spouse.Email, s.Email)) {
			r.mismatch(pa, fmt.Sprintf("account %d has no spouse with email %s, and the API cannot add one", id, s.Email), dup != nil)
			return ctrl.Result{}, true, nil
		}
		r.setAccount(pa, acct)
		pa.Status.LastSyncTime = &metav1.Time{Time: r.now()}
	case fifteenth.HasCode(err, fifteenth.CodeAccountNotFound):
		r.failed(pa, partnersv1.ReasonAccountNotFound, err)
		return ctrl.Result{}, true, nil
	case fifteenth.IsRetryable(err) && !isUnexpectedRoute(err):
		r.failed(pa, partnersv1.ReasonAPIUnavailable, err)
		return ctrl.Result{}, true, err
	default:
		// Retrieve Account answered something unexpected: carry on without it, trusting the
		// 409's email or the spec's accountID.
		logf.FromContext(ctx).Info("Retrieve Account answered unexpectedly; adopting without checking the email", "account", id, "error", err.Error())
		if dup != nil && dup.DetailString("email") != "" && !strings.EqualFold(dup.DetailString("email"), pa.Spec.Email) {
			r.mismatch(pa, fmt.Sprintf("email %s is already used by account %d", dup.DetailString("email"), id), true)
			return ctrl.Result{}, true, nil
		}
		pa.Status.AccountID = id
		pa.Status.LastSyncTime = &metav1.Time{Time: r.now()}
		if pa.Status.AccountStatus == "" {
			pa.Status.AccountStatus = fifteenth.AccountActive
		}
	}
	how := "adopted"
	if dup != nil {
		how = "adopted (its email was already registered)"
	}
	msg := fmt.Sprintf("%s Fifteenth account %d", how, id)
	r.setReady(pa, true, partnersv1.ReasonAdopted, msg)
	r.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, EventAdopted, "Adopt", msg)
	logf.FromContext(ctx).Info("Adopted a Fifteenth account", "account", id, "afterConflict", dup != nil)
	return ctrl.Result{}, false, nil
}

func (r *PartnerAccountReconciler) mismatch(pa *partnersv1.PartnerAccount, msg string, fromCreate bool) {
	reason := partnersv1.ReasonAccountMismatch
	if fromCreate {
		reason = partnersv1.ReasonValidationFailed
	}
	r.setReady(pa, false, reason, msg)
	r.Recorder.Eventf(pa, nil, corev1.EventTypeWarning, EventCreateFailed, "Adopt", msg)
}

// isUnexpectedRoute reports answers that say the route itself is not as CONTRACT.md infers:
// a 404 or 405 without a documented code, or an answer that could not be decoded.
func isUnexpectedRoute(err error) bool {
	var te *fifteenth.TransportError
	if errors.As(err, &te) && strings.Contains(te.Error(), "could not be decoded") {
		return true
	}
	e, ok := fifteenth.AsError(err)
	return ok && e.Code == "" && (e.StatusCode == 404 || e.StatusCode == 405 || e.StatusCode == 501)
}

// setAccount records an account in status.
func (r *PartnerAccountReconciler) setAccount(pa *partnersv1.PartnerAccount, a *fifteenth.Account) {
	pa.Status.AccountID = int64(a.ID)
	if a.Status != "" {
		pa.Status.AccountStatus = a.Status
	}
	if !a.CreatedAt.IsZero() {
		pa.Status.CreatedAt = &metav1.Time{Time: a.CreatedAt}
	}
	pa.Status.Spouse = nil
	if a.Spouse != nil {
		pa.Status.Spouse = &partnersv1.SpouseStatus{ID: int64(a.Spouse.ID), Email: a.Spouse.Email, Status: a.Spouse.Status}
	}
}

// claimedBy returns another PartnerAccount that claims the account, if any.
func (r *PartnerAccountReconciler) claimedBy(ctx context.Context, pa *partnersv1.PartnerAccount, id int64) (*partnersv1.PartnerAccount, error) {
	return r.claimant(ctx, pa, id, func(*partnersv1.PartnerAccount) bool { return true })
}

// claimedByOlder returns an older PartnerAccount claiming the same account: two that claimed
// it at once settle on the older.
func (r *PartnerAccountReconciler) claimedByOlder(ctx context.Context, pa *partnersv1.PartnerAccount, id int64) (*partnersv1.PartnerAccount, error) {
	return r.claimant(ctx, pa, id, func(o *partnersv1.PartnerAccount) bool { return olderThan(o, pa) })
}

func (r *PartnerAccountReconciler) claimant(ctx context.Context, pa *partnersv1.PartnerAccount, id int64,
	wins func(*partnersv1.PartnerAccount) bool) (*partnersv1.PartnerAccount, error) {
	var list partnersv1.PartnerAccountList
	if err := r.List(ctx, &list, client.MatchingFields{indexClaimedAccount: strconv.FormatInt(id, 10)}); err != nil {
		return nil, fmt.Errorf("cannot list PartnerAccounts claiming account %d: %w", id, err)
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID != pa.UID && o.DeletionTimestamp.IsZero() && wins(o) {
			return o, nil
		}
	}
	return nil, nil
}

// lostClaim gives the account up: this PartnerAccount's LoginLinks wait, so that they never
// invalidate the links of the one that manages it.
func (r *PartnerAccountReconciler) lostClaim(pa *partnersv1.PartnerAccount, id int64, other *partnersv1.PartnerAccount) (ctrl.Result, error) {
	pa.Status.AccountID = 0
	pa.Status.AccountStatus = ""
	pa.Status.Spouse = nil
	r.setReady(pa, false, partnersv1.ReasonAccountClaimed,
		fmt.Sprintf("account %d is managed by PartnerAccount %s/%s; delete one of the two", id, other.Namespace, other.Name))
	return ctrl.Result{}, nil
}

// observe reads the account every AccountSyncPeriod and returns when to look again.
func (r *PartnerAccountReconciler) observe(ctx context.Context, pa *partnersv1.PartnerAccount) time.Time {
	now := r.now()
	if last := pa.Status.LastSyncTime; last != nil && now.Before(last.Add(r.syncPeriod())) {
		return last.Add(r.syncPeriod())
	}
	pa.Status.LastSyncTime = &metav1.Time{Time: now}
	acct, err := r.API.GetAccount(ctx, fifteenth.AccountID(pa.Status.AccountID))
	if err != nil {
		// A single warning, never a failure: observation is best effort.
		logf.FromContext(ctx).Info("Could not observe the account; trying again after the sync period",
			"account", pa.Status.AccountID, "error", err.Error())
		return now.Add(r.syncPeriod())
	}
	before := pa.Status.AccountStatus
	r.setAccount(pa, acct)
	switch {
	case acct.Status == fifteenth.AccountSuspended && before != fifteenth.AccountSuspended:
		r.Recorder.Eventf(pa, nil, corev1.EventTypeWarning, EventSuspended, "Observe",
			"account %d is suspended; its links are not renewed until it is active", pa.Status.AccountID)
	case acct.Status == fifteenth.AccountActive && before == fifteenth.AccountSuspended:
		r.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, EventReactivated, "Observe",
			"account %d is active again; its links are renewed", pa.Status.AccountID)
	}
	return now.Add(r.syncPeriod())
}

// summarise sets Ready from the account's status and its LoginLinks.
func (r *PartnerAccountReconciler) summarise(pa *partnersv1.PartnerAccount, holder, spouse *partnersv1.LoginLink) {
	if pa.Status.AccountStatus == fifteenth.AccountSuspended {
		r.setReady(pa, false, partnersv1.ReasonAccountSuspended,
			fmt.Sprintf("account %d is suspended; its links are not renewed until it is active", pa.Status.AccountID))
		return
	}
	if holder.Status.ExpiresAt != nil {
		pa.Status.LoginLinkExpiresAt = holder.Status.ExpiresAt
	}
	for _, ll := range []*partnersv1.LoginLink{holder, spouse} {
		if ll == nil {
			continue
		}
		c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionFalse && c.Reason != partnersv1.ReasonAccountNotReady {
			r.setReady(pa, false, partnersv1.ReasonLinksNotReady, fmt.Sprintf("LoginLink %s: %s: %s", ll.Name, c.Reason, c.Message))
			return
		}
	}
	reason, msg := partnersv1.ReasonAccountReady, fmt.Sprintf("account %d is %s and its links are kept", pa.Status.AccountID, pa.Status.AccountStatus)
	if c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue &&
		(c.Reason == partnersv1.ReasonCreated || c.Reason == partnersv1.ReasonAdopted) && c.ObservedGeneration == pa.Generation {
		reason, msg = c.Reason, c.Message
	}
	r.setReady(pa, true, reason, msg)
}

var paTerminalReasons = map[string]bool{
	partnersv1.ReasonValidationFailed: true,
	partnersv1.ReasonAccountMismatch:  true,
	partnersv1.ReasonAccountNotFound:  true,
}

// terminalHold reports whether a terminal failure of this generation holds calls back.
func (r *PartnerAccountReconciler) terminalHold(pa *partnersv1.PartnerAccount) bool {
	c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && paTerminalReasons[c.Reason] && c.ObservedGeneration == pa.Generation
}

func (r *PartnerAccountReconciler) failed(pa *partnersv1.PartnerAccount, reason string, err error) {
	r.setReady(pa, false, reason, err.Error())
	r.Recorder.Eventf(pa, nil, corev1.EventTypeWarning, EventCreateFailed, "Create", "%s: %s", reason, err.Error())
}

func (r *PartnerAccountReconciler) setReady(pa *partnersv1.PartnerAccount, ready bool, reason, msg string) {
	setReadyCondition(&pa.Status.Conditions, &pa.Status.ObservedGeneration, pa.Generation, ready, reason, msg)
}

// SetupWithManager registers the controller; it reacts to its LoginLinks' status too.
func (r *PartnerAccountReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](DefaultBaseBackoff, DefaultMaxBackoff)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("partneraccount").
		For(&partnersv1.PartnerAccount{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&partnersv1.LoginLink{}).
		WithOptions(opts).
		Complete(r)
}

package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
	"github.com/fifteenth/fifteenth-operator/internal/tenancy"
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

	// waking wakes the PartnerAccounts whose turn in the creation line has come.
	waking wakeQueue
}

// wakeQueue holds the controller's queue, so that the creation limiter can wake exactly the
// PartnerAccount whose slot has freed up (fifteenth.CreationLine).
type wakeQueue struct {
	mu sync.Mutex
	q  workqueue.TypedRateLimitingInterface[reconcile.Request]
	// lines holds, by UID, the creation line each waiting PartnerAccount stands in.
	lines map[types.UID]fifteenth.CreationLine
}

// joined records that the PartnerAccount uid stands in line.
func (w *wakeQueue) joined(uid types.UID, line fifteenth.CreationLine) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lines == nil {
		w.lines = map[types.UID]fifteenth.CreationLine{}
	}
	w.lines[uid] = line
}

// leave takes the PartnerAccount uid out of the line it stands in, if any: a deleted waiter,
// or one that no longer creates, must not hold the slot it was told of for a window.
func (w *wakeQueue) leave(uid types.UID) {
	w.mu.Lock()
	line, ok := w.lines[uid]
	delete(w.lines, uid)
	w.mu.Unlock()
	if ok {
		line.LeaveLine(string(uid))
	}
}

// forget drops the record of uid's line: it took its slot (and left the line).
func (w *wakeQueue) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.lines, uid)
}

// start is a source.Func: it only keeps the queue.
func (w *wakeQueue) start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.q = q
	return nil
}

// wakePriority puts a PartnerAccount whose slot has freed up ahead of the other work of the
// queue (whose events have priority 0), so that the slot is used at once.
const wakePriority = 10

// wake returns a function that queues req; it never blocks.
func (w *wakeQueue) wake(req reconcile.Request) func() {
	return func() {
		w.mu.Lock()
		q := w.q
		w.mu.Unlock()
		if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(wakePriority)}, req)
		} else if q != nil {
			q.Add(req)
		}
	}
}

// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=loginlinks,verbs=get;list;watch;create;update;patch
// The LoginLinks a PartnerAccount owns carry blockOwnerDeletion (SetControllerReference):
// OwnerReferencesPermissionEnforcement (OpenShift) requires update on the owner's finalizers.
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partneraccounts/finalizers,verbs=update

// Reconcile gets the PartnerAccount, runs one pass, and writes its status once.
func (r *PartnerAccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	pa := &partnersv1.PartnerAccount{}
	if err := r.Get(ctx, req.NamespacedName, pa); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !pa.DeletionTimestamp.IsZero() {
		r.waking.leave(pa.UID)
		// The Fifteenth account stays: the API has no delete, and it holds tax data. The
		// LoginLinks and their Secrets are garbage-collected with their owner.
		return ctrl.Result{}, nil
	}
	if going, err := namespaceGoing(ctx, r.Client, pa.Namespace); err != nil || going {
		// The namespace controller removes it with its LoginLinks: nothing is created,
		// linked or called for.
		return ctrl.Result{}, err
	}
	original := pa.DeepCopy()
	defer func() {
		if !apiequality.Semantic.DeepEqual(original.Status, pa.Status) {
			patchStatus(ctx, r.Client, pa, original, &res, &retErr)
		}
	}()
	return r.reconcile(ctx, pa, original)
}

func (r *PartnerAccountReconciler) reconcile(ctx context.Context, pa, original *partnersv1.PartnerAccount) (ctrl.Result, error) {
	if isPaused(pa) {
		// Nothing is created, called or written; its LoginLinks are paused with it. Removing
		// the annotation wakes it.
		r.setReady(pa, false, partnersv1.ReasonPaused, fmt.Sprintf(
			"paused by its annotation %s: nothing is created, called or written, and its LoginLinks are paused, until it is removed",
			partnersv1.AnnotationPaused))
		return ctrl.Result{}, nil
	}
	holder, spouse, err := r.ensureLoginLinks(ctx, pa)
	var conflict *loginLinkConflict
	if errors.As(err, &conflict) {
		// Terminal: the LoginLink watch wakes this PartnerAccount when it is renamed or deleted.
		r.setReady(pa, false, partnersv1.ReasonLoginLinkConflict, fmt.Sprintf(
			"LoginLink %s exists and is not owned by this PartnerAccount, which needs that name for its %s's link: rename or delete it",
			conflict.name, conflict.role))
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	pa.Status.LoginLinkSecretName = holder.Spec.SecretName
	pa.Status.SpouseLoginLinkSecretName = ""
	if spouse != nil {
		pa.Status.SpouseLoginLinkSecretName = spouse.Spec.SecretName
	}

	cfg, res, ok, err := r.configFor(ctx, pa.Namespace, pa.Spec.PartnerConfigRef, func(reason, msg string) { r.failed(pa, reason, msg) })
	if !ok {
		return res, err
	}
	if r.ReadOnly {
		return r.standby(ctx, pa, cfg)
	}
	if pa.Status.AccountID == 0 {
		if res, done, err := r.ensureAccount(ctx, pa, original, cfg, holder, spouse); done || err != nil {
			return res, err
		}
	} else if claimed, err := r.claimedByOlder(ctx, pa, cfg.Endpoint, pa.Status.AccountID); err != nil {
		return ctrl.Result{}, err
	} else if claimed != nil {
		return r.lostClaim(pa, pa.Status.AccountID, claimed)
	}

	next := r.observe(ctx, pa, cfg)
	if err := r.summarise(ctx, pa, cfg, holder); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), next, minRequeue)}, nil
}

// loginLinkConflict is a LoginLink of the name a PartnerAccount needs that it does not own.
type loginLinkConflict struct{ name, role string }

func (e *loginLinkConflict) Error() string {
	return fmt.Sprintf("LoginLink %s exists and is not owned by this PartnerAccount", e.name)
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
	holder, err := r.ensureLoginLink(ctx, pa, pa.Name+"-holder", "holder", pa.Spec.Email, holderSecret, ls)
	if err != nil {
		return nil, nil, err
	}
	if pa.Spec.Spouse == nil {
		return holder, nil, nil
	}
	spouse, err := r.ensureLoginLink(ctx, pa, pa.Name+"-spouse", "spouse", pa.Spec.Spouse.Email, pa.Name+"-spouse-login-link", ls)
	return holder, spouse, err
}

func (r *PartnerAccountReconciler) ensureLoginLink(ctx context.Context, pa *partnersv1.PartnerAccount, name, role, email, secretName string,
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
		// The holder's and the spouse's links each restart the targets once per new link.
		RolloutRestartTargets: ls.RolloutRestartTargets,
	}
	conflict := &loginLinkConflict{name: name, role: role}
	// A patch of the difference, not an update: the cache keeps no last-applied-configuration
	// (CacheTransform), which an update of the whole object would erase on the server.
	_, err := controllerutil.CreateOrPatch(ctx, r.Client, ll, func() error {
		if !ll.CreationTimestamp.IsZero() && !metav1.IsControlledBy(ll, pa) {
			return conflict
		}
		ll.Spec = want
		propagateRenewRequest(pa, ll, r.now())
		return controllerutil.SetControllerReference(pa, ll, r.Scheme())
	})
	if errors.As(err, &conflict) {
		return nil, conflict
	}
	if err != nil {
		return nil, fmt.Errorf("cannot ensure LoginLink %s: %w", name, err)
	}
	return ll, nil
}

// ensureAccount creates or adopts the account. done is true when the pass ends here.
func (r *PartnerAccountReconciler) ensureAccount(ctx context.Context, pa, original *partnersv1.PartnerAccount, cfg *partnerconfig.Config,
	holder, spouse *partnersv1.LoginLink) (ctrl.Result, bool, error) {
	if held := r.terminalHold(pa); held {
		return ctrl.Result{}, true, nil
	}
	// A PartnerAccount that would create waits in the line of the creation budget without a
	// live read or a write: it is woken when its own slot frees up (the status already says
	// that it waits, in words that do not change while it does).
	line, inLine := cfg.API.(fifteenth.CreationLine)
	adopts := pa.Spec.AccountID != nil || pa.Status.ExistingAccountID != 0
	if inLine && adopts {
		r.waking.leave(pa.UID) // it adopts now: its place goes to the next
	}
	if inLine && !adopts {
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pa)}
		r.waking.joined(pa.UID, line)
		if at, turn := line.CreateTurn(string(pa.UID), r.waking.wake(req)); !turn {
			now := r.now()
			// The wake-up comes when the slot frees; this is the fallback, late enough that a
			// line running a little behind its forecast does not wake the PartnerAccount twice.
			fallback := at.Add(max(time.Second, at.Sub(now)/4))
			r.failed(pa, partnersv1.ReasonRateLimited, rateLimitedMessage)
			return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, fallback, minRequeue)}, true, nil
		}
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
	// The namespace again, from the cache (see LoginLinkReconciler.generate for why not live).
	if going, err := namespaceGoing(ctx, r.Client, pa.Namespace); err != nil || going {
		return ctrl.Result{}, true, err
	}
	// A lost claim costs no call to look at again (the claim is checked in the cache first),
	// and the PartnerAccount watch wakes it when the claimant goes. An unverified adoption is
	// looked at again once per sync period, whatever wakes it.
	if c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady); c != nil &&
		c.Reason == partnersv1.ReasonAccountUnverified && pa.Status.LastSyncTime != nil {
		if next := pa.Status.LastSyncTime.Add(r.syncPeriod()); r.now().Before(next) {
			return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), next, minRequeue)}, true, nil
		}
	}
	if id := pa.Spec.AccountID; id != nil {
		return r.adopt(ctx, pa, cfg, *id, nil)
	}
	if id := pa.Status.ExistingAccountID; id != 0 {
		// An earlier pass met a 409: verify and adopt that account; never create again.
		return r.adopt(ctx, pa, cfg, id, &fifteenth.Error{Code: fifteenth.CodeDuplicateEmail})
	}

	req := fifteenth.CreateAccountRequest{Email: pa.Spec.Email, FirstName: pa.Spec.FirstName, LastName: pa.Spec.LastName}
	if s := pa.Spec.Spouse; s != nil {
		req.Spouse = &fifteenth.SpouseInput{Email: s.Email, FirstName: s.FirstName, LastName: s.LastName, SendInvitation: s.SendInvitation}
	}
	// Record the attempt before the call: after a lost answer, the 409 of the retry is
	// recognised as this PartnerAccount's own account (and only then adopted without a grant).
	recorded := pa.Status.CreateAttemptedAt == nil
	if recorded {
		pa.Status.CreateAttemptedAt = statusTime(r.now())
		if err := r.checkpoint(ctx, pa, original); err != nil {
			return ctrl.Result{}, true, err
		}
	}
	if inLine {
		ctx = fifteenth.WithWaiter(ctx, string(pa.UID))
	}
	acct, err := cfg.API.CreateAccount(ctx, req)
	if inLine && err == nil {
		r.waking.forget(pa.UID) // it took its slot and left the line for good
	}
	if err != nil {
		if recorded && noEffect(err) {
			// The API answered that it created nothing: this attempt leaves no account behind.
			pa.Status.CreateAttemptedAt = nil
		}
		return r.createFailed(ctx, pa, cfg, err)
	}
	// Store the links of the answer before anything else: they exist nowhere else.
	r.seed(ctx, holder, int64(acct.ID), acct.Email, acct.LoginLink, acct.LoginLinkExpiresAt, acct.CreatedAt)
	if spouse != nil && acct.Spouse != nil {
		r.seed(ctx, spouse, int64(acct.ID), acct.Spouse.Email, acct.Spouse.LoginLink, acct.Spouse.LoginLinkExpiresAt, acct.CreatedAt)
	}
	r.setAccount(pa, acct)
	pa.Status.LastSyncTime = statusTime(r.now()) // the answer told us its status
	pa.Status.LoginLinkExpiresAt = statusTime(acct.LoginLinkExpiresAt)
	msg := fmt.Sprintf("created Fifteenth account %d for %s", acct.ID, acct.Email)
	r.setReady(pa, true, partnersv1.ReasonCreated, msg)
	r.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, EventCreated, "Create", "%s", msg)
	logf.FromContext(ctx).Info("Created a Fifteenth account", "account", int64(acct.ID))
	return ctrl.Result{}, false, nil
}

// checkpoint writes the status now (the pass's final write then starts from it): for facts
// that must be durable before a call.
func (r *PartnerAccountReconciler) checkpoint(ctx context.Context, pa, original *partnersv1.PartnerAccount) error {
	if err := r.Status().Patch(ctx, pa, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("cannot record the creation attempt: %w", err)
	}
	*original = *pa.DeepCopy()
	return nil
}

// seed stores a link of the create answer in a LoginLink's Secret, marked with the LoginLink's
// own parameters, so that its engine keeps (and later renews) it without a second call.
func (r *PartnerAccountReconciler) seed(ctx context.Context, ll *partnersv1.LoginLink, accountID int64, user, url string, expires, created time.Time) {
	if url == "" {
		return
	}
	link := storedLink{URL: url, UserEmail: user, AccountID: accountID, ExpiresAt: expires, GeneratedAt: created, StoredAt: time.Now(),
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

// createFailed handles a failed creation (decideCreateFailure). A 409 means the account
// exists (perhaps created by an earlier attempt whose answer was lost): it is adopted.
func (r *PartnerAccountReconciler) createFailed(ctx context.Context, pa *partnersv1.PartnerAccount, cfg *partnerconfig.Config, err error) (ctrl.Result, bool, error) {
	v := decideCreateFailure(err)
	if v.reason == partnersv1.ReasonUnauthorized {
		r.unauthorized(ctx, cfg)
	}
	if v.adoptID != 0 {
		pa.Status.ExistingAccountID = v.adoptID
		apiErr, _ := fifteenth.AsError(err)
		return r.adopt(ctx, pa, cfg, v.adoptID, apiErr)
	}
	res, err := r.apply(pa, v, err)
	return res, true, err
}

// apply shows a verdict that ends the pass and says when to look again.
func (r *PartnerAccountReconciler) apply(pa *partnersv1.PartnerAccount, v verdict, cause error) (ctrl.Result, error) {
	r.failed(pa, v.reason, v.message)
	switch v.step {
	case stepBackoff:
		return ctrl.Result{}, cause
	case stepRetryAt:
		now := r.now()
		if v.retryAt.IsZero() {
			return ctrl.Result{RequeueAfter: r.syncPeriod()}, nil
		}
		// Many PartnerAccounts wait for the same reset: spread them over a short window (a
		// tenth of the wait, at most two seconds), so that they do not all wake at once.
		spread := min(2*time.Second, max(100*time.Millisecond, v.retryAt.Sub(now)/10))
		at := v.retryAt.Add(time.Duration(renewal.Jitter(string(pa.UID)) * float64(spread)))
		return ctrl.Result{RequeueAfter: renewal.RequeueAfter(now, at, minRequeue)}, nil
	}
	return ctrl.Result{}, nil
}

// adopt takes over an existing account after checking that it is the client's and that no
// other PartnerAccount manages it. dup is the 409 that led here, if any.
func (r *PartnerAccountReconciler) adopt(ctx context.Context, pa *partnersv1.PartnerAccount, cfg *partnerconfig.Config, id int64, dup *fifteenth.Error) (ctrl.Result, bool, error) {
	// Another namespace's claim always stands; in this namespace the older PartnerAccount keeps
	// an account two adopt at once (the younger yields in its next pass).
	if claimed, err := r.claimant(ctx, pa, cfg.Endpoint, id, func(o *partnersv1.PartnerAccount) bool {
		return o.Namespace != pa.Namespace || olderThan(o, pa)
	}); err != nil {
		return ctrl.Result{}, true, err
	} else if claimed != nil && claimed.Namespace != pa.Namespace {
		// Another namespace's account: nothing is called; the claim watch wakes this one.
		d := tenancy.Permit(tenancy.Access{Namespace: pa.Namespace, AccountID: id, Home: claimed.Namespace})
		r.failed(pa, d.Reason, d.Message)
		return ctrl.Result{}, true, nil
	} else if claimed != nil {
		res, err := r.lostClaim(pa, id, claimed)
		return res, true, err
	}
	// An unclaimed account is adopted only when it is this PartnerAccount's own (a 409 after
	// its own attempt of unknown outcome), or with a grant.
	own := dup != nil && pa.Status.CreateAttemptedAt != nil
	granted, err := r.granted(ctx, cfg, pa.Namespace)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if !own && !granted {
		if dup != nil {
			r.failed(pa, partnersv1.ReasonAccountExists, accountExistsMessage(pa.Spec.Email))
			return ctrl.Result{}, true, nil
		}
		d := tenancy.Permit(tenancy.Access{Namespace: pa.Namespace, AccountID: id})
		r.failed(pa, d.Reason, d.Message)
		return ctrl.Result{}, true, nil
	}
	acct, err := cfg.API.GetAccount(ctx, fifteenth.AccountID(id))
	if err == nil && own && !granted && !createdSince(acct.CreatedAt, pa.Status.CreateAttemptedAt.Time) {
		r.failed(pa, partnersv1.ReasonAccountExists, accountExistsMessage(pa.Spec.Email))
		return ctrl.Result{}, true, nil
	}
	if v := decideAdoption(&pa.Spec, id, acct, err, dup != nil); v.step != stepProceed {
		if err == nil {
			err = errors.New(v.message)
		}
		if v.reason == partnersv1.ReasonAccountUnverified {
			pa.Status.LastSyncTime = statusTime(r.now())
		}
		res, err := r.apply(pa, v, err)
		return res, true, err
	}
	r.setAccount(pa, acct)
	pa.Status.LastSyncTime = statusTime(r.now())
	how := "adopted"
	if dup != nil {
		how = "adopted (its email was already registered)"
	}
	msg := fmt.Sprintf("%s Fifteenth account %d", how, id)
	r.setReady(pa, true, partnersv1.ReasonAdopted, msg)
	r.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, EventAdopted, "Adopt", "%s", msg)
	logf.FromContext(ctx).Info("Adopted a Fifteenth account", "account", id, "afterConflict", dup != nil)
	return ctrl.Result{}, false, nil
}

// clockSkew is how much earlier than this PartnerAccount's first creation attempt (by the
// manager's clock) the API may date an account it created for that attempt.
const clockSkew = time.Minute

// createdSince reports whether an account created at created (the API's clock) can be the
// result of a creation attempted at attempted (the manager's clock).
func createdSince(created, attempted time.Time) bool {
	return created.IsZero() || !created.Before(attempted.Add(-clockSkew))
}

// accountExistsMessage says why a 409 is not adopted, and how an administrator grants it.
func accountExistsMessage(email string) string {
	return fmt.Sprintf("%s is already registered to a Fifteenth account that this PartnerAccount did not create; "+
		"it is adopted only with a grant: an administrator adds this namespace to ClusterPartnerConfig spec.accountAccess "+
		"(or the manager's --account-access-namespaces), or sets spec.accountID on a new PartnerAccount in a granted namespace", email)
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
		pa.Status.CreatedAt = statusTime(a.CreatedAt)
	}
	pa.Status.Spouse = nil
	if a.Spouse != nil {
		pa.Status.Spouse = &partnersv1.SpouseStatus{ID: int64(a.Spouse.ID), Email: a.Spouse.Email, Status: a.Spouse.Status}
	}
}

// claimedByOlder returns an older PartnerAccount claiming the same account: two that claimed
// it at once settle on the older.
func (r *PartnerAccountReconciler) claimedByOlder(ctx context.Context, pa *partnersv1.PartnerAccount, endpoint string, id int64) (*partnersv1.PartnerAccount, error) {
	return r.claimant(ctx, pa, endpoint, id, func(o *partnersv1.PartnerAccount) bool { return olderThan(o, pa) })
}

func (r *PartnerAccountReconciler) claimant(ctx context.Context, pa *partnersv1.PartnerAccount, endpoint string, id int64,
	wins func(*partnersv1.PartnerAccount) bool) (*partnersv1.PartnerAccount, error) {
	pas, err := r.claimantsIn(ctx, endpoint, id)
	if err != nil {
		return nil, err
	}
	for i := range pas {
		if o := &pas[i]; o.UID != pa.UID && wins(o) {
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
	pa.Status.Users = nil
	who := "another PartnerAccount"
	if other.Namespace == pa.Namespace {
		who = "PartnerAccount " + other.Name
	}
	r.setReady(pa, false, partnersv1.ReasonAccountClaimed,
		fmt.Sprintf("account %d is managed by %s; this one takes over when that one is deleted", id, who))
	return ctrl.Result{}, nil
}

// observe reads the account every AccountSyncPeriod and returns when to look again.
func (r *PartnerAccountReconciler) observe(ctx context.Context, pa *partnersv1.PartnerAccount, cfg *partnerconfig.Config) time.Time {
	now := r.now()
	if last := pa.Status.LastSyncTime; last != nil && now.Before(last.Add(r.syncPeriod())) {
		return last.Add(r.syncPeriod())
	}
	pa.Status.LastSyncTime = statusTime(now)
	acct, err := cfg.API.GetAccount(ctx, fifteenth.AccountID(pa.Status.AccountID))
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

// summarise sets Ready and status.users from the account's status and the LoginLinks that
// hold its users (decideReady).
func (r *PartnerAccountReconciler) summarise(ctx context.Context, pa *partnersv1.PartnerAccount, cfg *partnerconfig.Config, holder *partnersv1.LoginLink) error {
	if holder.Status.ExpiresAt != nil {
		pa.Status.LoginLinkExpiresAt = holder.Status.ExpiresAt
	}
	// Only read (strings and times into pa's status, which are not shared mutably): the
	// cache's objects are not copied (noCopyReader).
	links, users, err := accountLinks(ctx, noCopyReader{r.Client}, &r.deps, cfg.Endpoint, pa.Status.AccountID, pa)
	if err != nil {
		return err
	}
	want := []struct{ email, role string }{{pa.Spec.Email, "holder"}}
	if s := pa.Spec.Spouse; s != nil {
		want = append(want, struct{ email, role string }{s.Email, "spouse"})
	}
	holds := make([]userHold, 0, len(want))
	pa.Status.Users = nil
	for _, w := range want {
		u := userHold{email: strings.ToLower(w.email), role: w.role}
		var cands []election.Candidate
		byUID := map[types.UID]*partnersv1.LoginLink{}
		rec, err := r.Elector.Cached(ctx, election.NewKey(cfg.Endpoint, pa.Status.AccountID, u.email))
		if err != nil {
			return err
		}
		for i := range links {
			if users[i] == u.email {
				c := candidateOf(&links[i], eligible(&links[i]))
				c.Pinned = r.pinned(ctx, r.Client, &links[i], rec)
				cands = append(cands, c)
				byUID[links[i].UID] = &links[i]
			}
		}
		if h, ok := election.Holder(cands); ok {
			ll := byUID[h.UID]
			if ll.Namespace != pa.Namespace {
				u.otherNamespace = true
			} else {
				u.heldBy = ll.Name
			}
			c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
			u.ready = c != nil && c.Status == metav1.ConditionTrue
			u.pending = c == nil || c.Reason == partnersv1.ReasonAccountNotReady || c.ObservedGeneration != ll.Generation
			if c != nil {
				u.reason, u.message = c.Reason, c.Message
			}
		} else if len(cands) > 0 {
			if c := meta.FindStatusCondition(byUID[cands[0].UID].Status.Conditions, partnersv1.ConditionReady); c != nil {
				u.reason, u.message = c.Reason, c.Message
			}
		}
		holds = append(holds, u)
		pa.Status.Users = append(pa.Status.Users, partnersv1.AccountUserStatus{Email: u.email, Role: u.role, HeldBy: u.heldBy})
	}
	v := decideReady(pa.Status.AccountID, pa.Status.AccountStatus, holds)
	if v.step != stepProceed {
		r.setReady(pa, false, v.reason, v.message)
		return nil
	}
	reason, msg := v.reason, v.message
	if c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue &&
		(c.Reason == partnersv1.ReasonCreated || c.Reason == partnersv1.ReasonAdopted) && c.ObservedGeneration == pa.Generation {
		reason, msg = c.Reason, c.Message
	}
	r.setReady(pa, true, reason, msg)
	return nil
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

// failed shows a failure; a Warning Event goes out when the reason changed, not on every retry.
func (r *PartnerAccountReconciler) failed(pa *partnersv1.PartnerAccount, reason, msg string) {
	if r.setReady(pa, false, reason, msg) {
		r.Recorder.Eventf(pa, nil, corev1.EventTypeWarning, EventCreateFailed, "Create", "%s: %s", reason, msg)
	}
}

// setReady sets the Ready condition (and Reconciling and Stalled from it) and reports whether
// its status or reason changed.
func (r *PartnerAccountReconciler) setReady(pa *partnersv1.PartnerAccount, ready bool, reason, msg string) bool {
	changed := setReadyCondition(&pa.Status.Conditions, &pa.Status.ObservedGeneration, pa.Generation, ready, reason, msg)
	setProgressConditions(&pa.Status.Conditions, pa.Generation, ready, reason, msg)
	return changed
}

// SetupWithManager registers the controller. Besides its own spec (and its renew-requested-at
// annotation, which it passes on to its LoginLinks), it reacts to the
// LoginLinks that hold its users or take the names it needs, and to the PartnerAccounts that
// claim the account it waits for.
func (r *PartnerAccountReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](DefaultBaseBackoff, DefaultMaxBackoff)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("partneraccount").
		// Annotations (partners.fifteenth.com/paused, renew-requested-at) wake it as spec changes do.
		For(&partnersv1.PartnerAccount{}, builder.WithPredicates(
			predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, requestAnnotationsChanged))).
		// A LoginLink's change is looked at after a short delay, in which the changes of the
		// holder's and the spouse's LoginLinks (both seeded by the creation) become one pass.
		Watches(&partnersv1.LoginLink{}, settled{handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(),
			&partnersv1.PartnerAccount{}, handler.OnlyControllerOwner()), loginLinkSettle}, builder.WithPredicates(r.loginLinkMatters())).
		Watches(&partnersv1.LoginLink{}, settled{handler.EnqueueRequestsFromMapFunc(r.ofLoginLink), loginLinkSettle},
			builder.WithPredicates(r.loginLinkMatters())).
		Watches(&partnersv1.PartnerAccount{}, handler.EnqueueRequestsFromMapFunc(r.waitingFor)).
		// A PartnerAccount deleted while it waits for the creation budget leaves the line.
		Watches(&partnersv1.PartnerAccount{}, handler.Funcs{
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.waking.leave(e.Object.GetUID())
			},
		}).
		// The creation limiter wakes the PartnerAccount whose turn has come.
		WatchesRawSource(source.Func(r.waking.start))
	if r.claimsSource != nil {
		// A shard: a claim that another shard's namespace gives up wakes the PartnerAccounts
		// here that wait for the account.
		b = b.WatchesRawSource(source.Kind(r.claimsSource, client.Object(&partnersv1.PartnerAccount{}),
			handler.EnqueueRequestsFromMapFunc(r.waitingFor)))
	}
	return b.WithOptions(opts).Complete(r)
}

// loginLinkSettle is how long a PartnerAccount lets its LoginLinks' status changes settle
// before it summarises them.
const loginLinkSettle = time.Second

// settled is an event handler whose update events queue their requests after a delay: the
// priority queue keeps one entry per request at its earliest time, so that changes within the
// delay make one reconcile. Creations and deletions are queued at once.
type settled struct {
	handler.EventHandler
	delay time.Duration
}

// Update queues the requests of h after the delay.
func (s settled) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	s.EventHandler.Update(ctx, e, delayedQueue{q, s.delay})
}

// delayedQueue turns Add into AddAfter.
type delayedQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	delay time.Duration
}

// Add queues item after the delay.
func (q delayedQueue) Add(item reconcile.Request) { q.AddAfter(item, q.delay) }

// loginLinkMatters drops the LoginLink events that tell a PartnerAccount nothing: the
// creation of a LoginLink it controls (it made it), and a change of the status or metadata of
// such a LoginLink that waits for the account (AccountNotReady) while the PartnerAccount has
// none (it reads its LoginLinks' status only to summarise an account's users). Many
// PartnerAccounts waiting for the creation budget so stay asleep until the limiter wakes each
// in its turn; any other state of the LoginLink is looked at.
func (r *PartnerAccountReconciler) loginLinkMatters() predicate.Funcs {
	controlled := func(o client.Object) *metav1.OwnerReference {
		if owner := metav1.GetControllerOf(o); owner != nil && owner.Kind == "PartnerAccount" {
			return owner
		}
		return nil
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return controlled(e.Object) == nil },
		UpdateFunc: func(e event.UpdateEvent) bool {
			owner := controlled(e.ObjectNew)
			if owner == nil || e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
				return true
			}
			if ll, ok := e.ObjectNew.(*partnersv1.LoginLink); ok {
				if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c == nil || c.Reason != partnersv1.ReasonAccountNotReady {
					return true
				}
			}
			pa := &partnersv1.PartnerAccount{}
			if err := r.Get(context.Background(), types.NamespacedName{Namespace: e.ObjectNew.GetNamespace(), Name: owner.Name}, pa); err != nil {
				return true
			}
			return pa.UID != owner.UID || pa.Status.AccountID != 0
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// ofLoginLink maps a LoginLink to the PartnerAccounts whose users it may hold (by reference,
// or by the account ID they claim) and to the one whose holder or spouse name it takes.
func (r *PartnerAccountReconciler) ofLoginLink(ctx context.Context, o client.Object) []reconcile.Request {
	ll := o.(*partnersv1.LoginLink)
	var reqs []reconcile.Request
	add := func(ns, name string) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	if ref := ll.Spec.AccountRef; ref != nil {
		add(ll.Namespace, ref.Name)
	}
	for _, suffix := range []string{"-holder", "-spouse"} {
		if name, ok := strings.CutSuffix(ll.Name, suffix); ok && name != "" {
			add(ll.Namespace, name)
		}
	}
	if id := ll.Spec.AccountID; id != nil {
		// The manager's cache, not the claims: a shard wakes only the PartnerAccounts it watches.
		var pas partnersv1.PartnerAccountList
		if err := r.List(ctx, &pas, client.MatchingFields{indexClaimedAccount: idString(*id)}); err != nil {
			logf.FromContext(ctx).Error(err, "Could not find the PartnerAccounts of an account to wake them", "account", *id)
		}
		for _, pa := range pas.Items {
			add(pa.Namespace, pa.Name)
		}
	}
	return reqs
}

// waitingFor maps a PartnerAccount to the others that wait for its account (they lost the
// claim to it, or meet its email): when it goes, the next one takes over at once.
func (r *PartnerAccountReconciler) waitingFor(ctx context.Context, o client.Object) []reconcile.Request {
	pa := o.(*partnersv1.PartnerAccount)
	keys := []string{"email:" + strings.ToLower(pa.Spec.Email)}
	if id := pa.Status.AccountID; id != 0 {
		keys = append(keys, idString(id))
	}
	var reqs []reconcile.Request
	for _, k := range keys {
		var list partnersv1.PartnerAccountList
		if err := r.List(ctx, &list, client.MatchingFields{indexWantedAccount: k}, client.UnsafeDisableDeepCopy); err != nil {
			logf.FromContext(ctx).Error(err, "Could not list the PartnerAccounts waiting for an account")
			continue
		}
		for i := range list.Items {
			if w := &list.Items[i]; w.UID != pa.UID && w.Status.AccountID == 0 {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(w)})
			}
		}
	}
	return reqs
}

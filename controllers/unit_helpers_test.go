package controllers

// A fast unit harness: the real reconcilers, called directly, over controller-runtime's fake
// client (with the field indexes SetupIndexes registers), the function-field fake of the
// Fifteenth API, a fake clock and a fake event recorder. No API server, no manager, no
// goroutines: every pass is one Reconcile call whose effects are read back from the fake
// client and the fake API's call counts.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crfake "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	apifake "github.com/fifteenth/fifteenth-operator/internal/fifteenth/fake"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
)

const (
	unitNS       = "ns"
	unitEndpoint = "https://api.fifteenth.test"
	// unitAccount is the Fifteenth account of most tests; unitEmail its primary holder.
	unitAccount int64 = 4242
	unitEmail         = "john@example.com"
	// unitLifetime is the lifetime of the links the fake API issues.
	unitLifetime = 24 * time.Hour
)

// unitT0 is the fake clock's start: whole seconds, as the API server stores times.
var unitT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// builderIndexer registers SetupIndexes' field indexes on a fake client builder, so that the
// fake client answers MatchingFields exactly as the manager's cache does.
type builderIndexer struct{ b *crfake.ClientBuilder }

func (x builderIndexer) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	x.b.WithIndex(obj, field, fn)
	return nil
}

// unitEnv is one test's world.
type unitEnv struct {
	t        *testing.T
	ctx      context.Context
	scheme   *runtime.Scheme
	c        client.WithWatch
	api      *apifake.API
	clock    *clocktesting.FakeClock
	rec      *events.FakeRecorder
	elector  *election.Elector
	links    *LoginLinkReconciler
	accounts *PartnerAccountReconciler

	mu   sync.Mutex // guards uids, recording and writes: a wired controller writes from its own goroutine
	uids int
	// recording makes the client log every write into writes (see record).
	recording bool
	writes    []unitWrite
	// issued are the links the fake API issued, in order (see answerLinks).
	issued []string
	// events are the events drained from rec so far.
	events []string
}

func newUnitEnv(t *testing.T) *unitEnv {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := partnersv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	e := &unitEnv{t: t, ctx: context.Background(), scheme: s, api: apifake.New(t),
		clock: clocktesting.NewFakeClock(unitT0), rec: events.NewFakeRecorder(1000)}
	b := crfake.NewClientBuilder().WithScheme(s).
		WithStatusSubresource(&partnersv1.LoginLink{}, &partnersv1.PartnerAccount{}).
		WithInterceptorFuncs(e.interceptors())
	if err := SetupIndexes(e.ctx, builderIndexer{b}); err != nil {
		t.Fatal(err)
	}
	e.c = b.Build()
	e.elector = &election.Elector{Client: e.c, Cache: e.c, Reader: e.c, Namespace: unitNS,
		InFlight: 35 * time.Second, Clock: e.clock,
		Labels: map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}}
	configs := &partnerconfig.Resolver{Client: e.c, SecretReader: e.c,
		Default: partnerconfig.NewDefault(e.api, unitEndpoint, "", unitNS)}
	d := deps{APIReader: e.c, claims: e.c, Configs: configs, Elector: e.elector, Recorder: e.rec,
		Clock: e.clock, AccountSyncPeriod: time.Hour}
	e.links = &LoginLinkReconciler{Client: e.c, deps: d}
	e.accounts = &PartnerAccountReconciler{Client: e.c, deps: d}
	return e
}

// stampNew does what the API server does on create and the fake client does not: a UID, a
// creationTimestamp (whole seconds, from the fake clock) and generation 1.
func (e *unitEnv) stampNew(obj client.Object) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if obj.GetUID() == "" {
		e.uids++
		obj.SetUID(types.UID(fmt.Sprintf("uid-%s-%d", obj.GetName(), e.uids)))
	}
	if ts := obj.GetCreationTimestamp(); ts.IsZero() {
		obj.SetCreationTimestamp(metav1.NewTime(e.clock.Now().Truncate(time.Second)))
	}
	if obj.GetGeneration() == 0 {
		obj.SetGeneration(1)
	}
}

// create creates objects, keeping the status they carry (as a controller would have written it).
func (e *unitEnv) create(objs ...client.Object) {
	e.t.Helper()
	for _, o := range objs {
		status := o.DeepCopyObject().(client.Object)
		if err := e.c.Create(e.ctx, o); err != nil {
			e.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
		switch s := status.(type) {
		case *partnersv1.LoginLink:
			ll := o.(*partnersv1.LoginLink)
			if !isZeroLinkStatus(s.Status) {
				ll.Status = s.Status
				if err := e.c.Status().Update(e.ctx, ll); err != nil {
					e.t.Fatalf("seed status of LoginLink %s: %v", ll.Name, err)
				}
			}
		case *partnersv1.PartnerAccount:
			pa := o.(*partnersv1.PartnerAccount)
			pa.Status = s.Status
			if err := e.c.Status().Update(e.ctx, pa); err != nil {
				e.t.Fatalf("seed status of PartnerAccount %s: %v", pa.Name, err)
			}
		}
	}
}

func isZeroLinkStatus(s partnersv1.LoginLinkStatus) bool {
	return s.AccountID == 0 && s.UserEmail == "" && len(s.Conditions) == 0 && s.ExpiresAt == nil
}

// newLink is a LoginLink created at created (UID uid-<name>), shaped by mutate.
func newLink(name string, created time.Time, mutate ...func(*partnersv1.LoginLink)) *partnersv1.LoginLink {
	ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: unitNS, Name: name, UID: types.UID("uid-" + name),
		Generation: 1, CreationTimestamp: metav1.NewTime(created)}}
	for _, m := range mutate {
		m(ll)
	}
	return ll
}

// byID makes a LoginLink name the account by ID, for user (the primary holder when "").
func byID(id int64, user string) func(*partnersv1.LoginLink) {
	return func(ll *partnersv1.LoginLink) {
		ll.Spec.AccountID = ptr.To(id)
		ll.Spec.UserEmail = user
	}
}

// byRef makes a LoginLink reference a PartnerAccount, for user (its holder when "").
func byRef(pa string, user string) func(*partnersv1.LoginLink) {
	return func(ll *partnersv1.LoginLink) {
		ll.Spec.AccountRef = &partnersv1.LocalObjectReference{Name: pa}
		ll.Spec.UserEmail = user
	}
}

// withStatus seeds a LoginLink's Ready condition for its current generation.
func withStatus(ready bool, reason string) func(*partnersv1.LoginLink) {
	return func(ll *partnersv1.LoginLink) {
		setReadyCondition(&ll.Status.Conditions, &ll.Status.ObservedGeneration, ll.Generation, ready, reason, "seeded by the test")
	}
}

// newAccount is a PartnerAccount that manages account id (status.accountID), active, last
// read now: its reconciles call nothing until the sync period passed.
func (e *unitEnv) newAccount(name, email string, id int64, created time.Time) *partnersv1.PartnerAccount {
	return &partnersv1.PartnerAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: unitNS, Name: name, UID: types.UID("uid-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(created)},
		Spec: partnersv1.PartnerAccountSpec{Email: email, FirstName: "John", LastName: "Doe"},
		Status: partnersv1.PartnerAccountStatus{AccountID: id, AccountStatus: fifteenth.AccountActive,
			LastSyncTime: statusTime(e.clock.Now())},
	}
}

// ownedHolder is the holder LoginLink a PartnerAccount creates for itself (ensureLoginLink's
// spec, controlled by pa), created at created.
func (e *unitEnv) ownedHolder(pa *partnersv1.PartnerAccount, created time.Time) *partnersv1.LoginLink {
	e.t.Helper()
	ll := newLink(pa.Name+"-holder", created, func(ll *partnersv1.LoginLink) {
		ll.Spec = partnersv1.LoginLinkSpec{
			AccountRef:       &partnersv1.LocalObjectReference{Name: pa.Name},
			UserEmail:        pa.Spec.Email,
			Purpose:          purposeRenewal,
			SendNotification: ptr.To(false),
			SecretName:       pa.Name + "-login-link",
		}
	})
	if err := controllerutil.SetControllerReference(pa, ll, e.scheme); err != nil {
		e.t.Fatal(err)
	}
	return ll
}

// answerPrimary makes the fake API's Retrieve Account answer an active account whose primary
// holder is email.
func (e *unitEnv) answerPrimary(email string) {
	e.api.GetAccountFunc = func(_ context.Context, id fifteenth.AccountID) (*fifteenth.Account, error) {
		return &fifteenth.Account{ID: id, Email: email, Status: fifteenth.AccountActive}, nil
	}
}

// clearLinkStatus empties a LoginLink's status, as it is before its first pass writes it.
func (e *unitEnv) clearLinkStatus(name string) {
	e.t.Helper()
	ll := e.getLink(name)
	ll.Status = partnersv1.LoginLinkStatus{}
	if err := e.c.Status().Update(e.ctx, ll); err != nil {
		e.t.Fatal(err)
	}
}

// storedFor is a link of ll's current parameters for account id and user, generated at gen.
func storedFor(ll *partnersv1.LoginLink, id int64, user, url string, gen time.Time) storedLink {
	return storedLink{URL: url, UserEmail: user, AccountID: id, GeneratedAt: gen, ExpiresAt: gen.Add(unitLifetime),
		SpecHash: paramsFor(&ll.Spec, id).hash()}
}

// seedSecret stores a link in ll's Secret the way the operator does (fillSecret, controlled by ll).
func (e *unitEnv) seedSecret(ll *partnersv1.LoginLink, l storedLink) *corev1.Secret {
	e.t.Helper()
	name := ll.Spec.SecretName
	if name == "" {
		name = ll.Name
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ll.Namespace, Name: name}}
	fillSecret(s, l, ll.Spec.SecretTemplate)
	if err := controllerutil.SetControllerReference(ll, s, e.scheme); err != nil {
		e.t.Fatal(err)
	}
	e.create(s)
	return s
}

// answerLinks makes the fake API issue a new link on every call: created now, valid for
// unitLifetime, for the requested user (primary when the request names none).
func (e *unitEnv) answerLinks(primary string) {
	e.api.GenerateLoginLinkFunc = func(_ context.Context, id fifteenth.AccountID, req fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error) {
		now := e.clock.Now()
		e.mu.Lock()
		url := fmt.Sprintf("https://app.fifteenth.test/login/%d", len(e.issued)+1)
		e.issued = append(e.issued, url)
		e.mu.Unlock()
		user := req.UserEmail
		if user == "" {
			user = primary
		}
		return &fifteenth.LoginLink{LoginLink: url, UserEmail: user, ExpiresAt: now.Add(unitLifetime), ExpiresInHours: 24,
			CreatedAt: now, AccountID: id, NotificationSent: true, PreviousLinksInvalidated: 1}, nil
	}
}

// failLinks makes the fake API answer every generation with err.
func (e *unitEnv) failLinks(err error) {
	e.api.GenerateLoginLinkFunc = func(context.Context, fifteenth.AccountID, fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error) {
		return nil, err
	}
}

// reconcileLink runs one LoginLink pass and checks it cannot loop hot.
func (e *unitEnv) reconcileLink(name string) (ctrl.Result, error) {
	e.t.Helper()
	res, err := e.links.Reconcile(e.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: unitNS, Name: name}})
	var cond *metav1.Condition
	if ll := e.getLink(name); ll != nil {
		cond = meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
	}
	assertNoHotLoop(e.t, "LoginLink "+name, res, err, cond)
	return res, err
}

// reconcileAccount runs one PartnerAccount pass and checks it cannot loop hot.
func (e *unitEnv) reconcileAccount(name string) (ctrl.Result, error) {
	e.t.Helper()
	res, err := e.accounts.Reconcile(e.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: unitNS, Name: name}})
	var cond *metav1.Condition
	if pa := e.getAccount(name); pa != nil {
		cond = meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady)
	}
	assertNoHotLoop(e.t, "PartnerAccount "+name, res, err, cond)
	return res, err
}

// mustReconcileLink is reconcileLink that also requires a nil error.
func (e *unitEnv) mustReconcileLink(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.reconcileLink(name)
	if err != nil {
		e.t.Fatalf("reconcile LoginLink %s: %v", name, err)
	}
	return res
}

// unitTerminalReasons are the conditions under which a pass may end without a requeue: the
// object waits for a change that a watch reports (a spec edit, a competitor, its PartnerAccount).
var unitTerminalReasons = map[string]bool{
	partnersv1.ReasonSuperseded:         true,
	partnersv1.ReasonSecretConflict:     true,
	partnersv1.ReasonExpired:            true,
	partnersv1.ReasonAccountNotReady:    true,
	partnersv1.ReasonAccountSuspended:   true,
	partnersv1.ReasonAccountNotFound:    true,
	partnersv1.ReasonUserNotFound:       true,
	partnersv1.ReasonInvalidRedirectURL: true,
	partnersv1.ReasonInvalidRequest:     true,
	partnersv1.ReasonLoginLinkConflict:  true,
	partnersv1.ReasonAccountClaimed:     true,
	partnersv1.ReasonValidationFailed:   true,
	partnersv1.ReasonAccountMismatch:    true,
}

// unitBackoffReasons are the conditions under which a pass returns its error: the workqueue
// retries with capped exponential backoff (DefaultBaseBackoff..DefaultMaxBackoff).
var unitBackoffReasons = map[string]bool{
	partnersv1.ReasonAPIUnavailable: true,
	partnersv1.ReasonUnauthorized:   true,
}

// assertNoHotLoop is rule 10, checked after every Reconcile of these tests: a pass either
// schedules its next look (RequeueAfter > 0, nil error), or ends with RequeueAfter 0 and a
// nil error under a terminal condition (a watch wakes it), or returns an error with an empty
// result and a backoff condition (the workqueue's capped exponential backoff). Never an
// immediate requeue, never a result the workqueue ignores.
func assertNoHotLoop(t *testing.T, what string, res ctrl.Result, err error, cond *metav1.Condition) {
	t.Helper()
	desc := func() string {
		if cond == nil {
			return "no Ready condition"
		}
		return fmt.Sprintf("Ready=%s %s", cond.Status, cond.Reason)
	}
	switch {
	case res.RequeueAfter < 0:
		t.Errorf("%s: RequeueAfter %v < 0", what, res.RequeueAfter)
	case res.RequeueAfter > 0 && err != nil:
		t.Errorf("%s: RequeueAfter %v together with error %v (the result is ignored)", what, res.RequeueAfter, err)
	case res.RequeueAfter > 0:
	case err != nil:
		if cond == nil || cond.Status != metav1.ConditionFalse || !unitBackoffReasons[cond.Reason] {
			t.Errorf("%s: error %v with %s: not a backoff condition", what, err, desc())
		}
	default:
		if cond == nil || cond.Status != metav1.ConditionFalse || !unitTerminalReasons[cond.Reason] {
			t.Errorf("%s: RequeueAfter 0 and no error with %s: nothing would look at it again", what, desc())
		}
	}
}

func (e *unitEnv) getLink(name string) *partnersv1.LoginLink {
	e.t.Helper()
	ll := &partnersv1.LoginLink{}
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: unitNS, Name: name}, ll); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	return ll
}

func (e *unitEnv) getAccount(name string) *partnersv1.PartnerAccount {
	e.t.Helper()
	pa := &partnersv1.PartnerAccount{}
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: unitNS, Name: name}, pa); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	return pa
}

func (e *unitEnv) getSecret(name string) *corev1.Secret {
	e.t.Helper()
	s := &corev1.Secret{}
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: unitNS, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	return s
}

// lease returns the user's Lease, or nil.
func (e *unitEnv) lease(id int64, user string) *coordinationv1.Lease {
	e.t.Helper()
	l := &coordinationv1.Lease{}
	name := election.NewKey(unitEndpoint, id, user).LeaseName()
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: unitNS, Name: name}, l); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	return l
}

func (e *unitEnv) delete(obj client.Object) {
	e.t.Helper()
	if err := e.c.Delete(e.ctx, obj); err != nil {
		e.t.Fatal(err)
	}
}

// wantLink requires the LoginLink's Ready condition, for its current generation.
func (e *unitEnv) wantLink(name string, status metav1.ConditionStatus, reason string) *partnersv1.LoginLink {
	e.t.Helper()
	ll := e.getLink(name)
	if ll == nil {
		e.t.Fatalf("LoginLink %s does not exist", name)
	}
	wantCondition(e.t, "LoginLink "+name, ll.Status.Conditions, ll.Generation, status, reason)
	return ll
}

// wantAccount requires the PartnerAccount's Ready condition, for its current generation.
func (e *unitEnv) wantAccount(name string, status metav1.ConditionStatus, reason string) *partnersv1.PartnerAccount {
	e.t.Helper()
	pa := e.getAccount(name)
	if pa == nil {
		e.t.Fatalf("PartnerAccount %s does not exist", name)
	}
	wantCondition(e.t, "PartnerAccount "+name, pa.Status.Conditions, pa.Generation, status, reason)
	return pa
}

func wantCondition(t *testing.T, what string, conds []metav1.Condition, gen int64, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(conds, partnersv1.ConditionReady)
	switch {
	case c == nil:
		t.Fatalf("%s: no Ready condition, want Ready=%s %s", what, status, reason)
	case c.Status != status || c.Reason != reason:
		t.Fatalf("%s: Ready=%s %s (%s), want Ready=%s %s", what, c.Status, c.Reason, c.Message, status, reason)
	case c.ObservedGeneration != gen:
		t.Fatalf("%s: Ready observedGeneration %d, want %d", what, c.ObservedGeneration, gen)
	}
}

// wantCalls requires the fake API's call counts so far.
func (e *unitEnv) wantCalls(generate, get, create int) {
	e.t.Helper()
	if g, a, c := e.api.GenerateLoginLinkCalls(), e.api.GetAccountCalls(), e.api.CreateAccountCalls(); g != generate || a != get || c != create {
		e.t.Fatalf("API calls: GenerateLoginLink %d, GetAccount %d, CreateAccount %d; want %d, %d, %d", g, a, c, generate, get, create)
	}
}

// drainEvents moves the recorded events into e.events and returns them all.
func (e *unitEnv) drainEvents() []string {
	for {
		select {
		case ev := <-e.rec.Events:
			e.events = append(e.events, ev)
		default:
			return e.events
		}
	}
}

// countEvents counts the events so far that start with "<type> <reason> ".
func (e *unitEnv) countEvents(eventType, reason string) int {
	n := 0
	for _, ev := range e.drainEvents() {
		if strings.HasPrefix(ev, eventType+" "+reason+" ") {
			n++
		}
	}
	return n
}

// secretLink returns the login_link a Secret holds ("" when none or no Secret).
func (e *unitEnv) secretLink(name string) string {
	e.t.Helper()
	if s := e.getSecret(name); s != nil {
		return string(s.Data[partnersv1.SecretKeyLoginLink])
	}
	return ""
}

package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// staleAccounts is a cache that has not seen the latest PartnerAccount yet: it answers Gets of
// PartnerAccounts with an earlier copy.
type staleAccounts struct {
	client.Client
	pa *partnersv1.PartnerAccount
}

func (s staleAccounts) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if pa, ok := obj.(*partnersv1.PartnerAccount); ok && key.Name == s.pa.Name && key.Namespace == s.pa.Namespace {
		s.pa.DeepCopyInto(pa)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// A PartnerAccount paused between the pass's (cached) read and the call: the pause is
// confirmed on the live read before a generation, as a LoginLink's own annotation is (its
// resourceVersion), so no call is made while it is set.
func TestReviewPartnerAccountPauseConfirmedLiveBeforeCall(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(unitEmail)
	pa := e.newAccount("acme", unitEmail, unitAccount, unitT0)
	e.create(pa)
	e.create(e.ownedHolder(pa, unitT0))
	stale := e.getAccount("acme").DeepCopy()
	live := e.getAccount("acme")
	live.Annotations = map[string]string{partnersv1.AnnotationPaused: "true"}
	if err := e.c.Update(e.ctx, live); err != nil {
		t.Fatal(err)
	}
	e.links.Client = staleAccounts{Client: e.c, pa: stale}
	_, _ = e.reconcileLink("acme-holder")
	e.wantCalls(0, 0, 0)
	if s := e.getSecret("acme-login-link"); s != nil {
		t.Fatalf("a Secret was written for a paused PartnerAccount's LoginLink")
	}
}

// failingSecrets fails every Secret create and update while fail is set, and counts the
// patches of workloads.
type failingSecrets struct {
	client.Client
	fail    *bool
	patches *int
}

func (f failingSecrets) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.Secret); ok && *f.fail {
		return apierrors.NewInternalError(errors.New("etcd is away"))
	}
	return f.Client.Create(ctx, obj, opts...)
}

func (f failingSecrets) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if _, ok := obj.(*corev1.Secret); ok && *f.fail {
		return apierrors.NewInternalError(errors.New("etcd is away"))
	}
	return f.Client.Update(ctx, obj, opts...)
}

func (f failingSecrets) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if _, ok := obj.(*appsv1.Deployment); ok {
		*f.patches++
	}
	return f.Client.Patch(ctx, obj, patch, opts...)
}

// A generation whose link cannot be stored restarts nothing (the link is lost); the next
// generation, stored, restarts the target once, for that link.
func TestReviewRestartNotForALinkNeverStored(t *testing.T) {
	e := newUnitEnv(t)
	e.answerLinks(unitEmail)
	pa := e.newAccount("acme", unitEmail, unitAccount, unitT0)
	e.create(pa)
	ll := e.ownedHolder(pa, unitT0)
	ll.Spec.RolloutRestartTargets = []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}}
	e.create(ll)
	labels := map[string]string{"app": "web"}
	e.create(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: unitNS, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}}})
	fail, patches := true, 0
	e.links.Client = failingSecrets{Client: e.c, fail: &fail, patches: &patches}
	// Called directly: the lost link's pass returns its error with no Ready condition yet,
	// which assertNoHotLoop refuses (the workqueue's backoff retries it; see the report).
	pass := func() error {
		_, err := e.links.Reconcile(e.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: unitNS, Name: "acme-holder"}})
		return err
	}
	if err := pass(); err == nil {
		t.Fatal("a lost link must fail the pass")
	}
	e.wantCalls(1, 0, 0)
	if patches != 0 {
		t.Fatalf("%d restarts for a link never stored", patches)
	}
	fail = false
	e.clock.Step(2 * time.Second)
	for range 3 {
		_ = pass()
	}
	e.wantCalls(2, 0, 0)
	d := &appsv1.Deployment{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: unitNS, Name: "web"}, d); err != nil {
		t.Fatal(err)
	}
	s := e.getSecret("acme-login-link")
	link, _ := readSecret(s)
	if got, want := d.Spec.Template.Annotations[partnersv1.AnnotationRestartedAt], link.restartTime().UTC().Format(time.RFC3339Nano); got != want || patches != 1 {
		t.Fatalf("restartedAt %q after %d patches, want %q after 1", got, patches, want)
	}
}

package controllers

import (
	"context"
	"testing"

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

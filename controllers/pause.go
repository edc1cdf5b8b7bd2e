package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
)

// intended reports a Ready condition that is False on purpose, Paused or Standby: such an
// object exports no readiness or renewal series, so that no alert fires for it.
func intended(c *metav1.Condition) bool {
	return c != nil && c.Status == metav1.ConditionFalse && (c.Reason == partnersv1.ReasonPaused || c.Reason == partnersv1.ReasonStandby)
}

// isPaused reports whether an object carries partners.fifteenth.com/paused: "true".
func isPaused(o metav1.Object) bool {
	return o.GetAnnotations()[partnersv1.AnnotationPaused] == "true"
}

// pausedBy says who paused a LoginLink, as read through c: its own annotation, or the
// PartnerAccount that owns it. "" when it is not paused.
func pausedBy(ctx context.Context, c client.Reader, ll *partnersv1.LoginLink) (string, error) {
	if isPaused(ll) {
		return "this LoginLink's annotation " + partnersv1.AnnotationPaused, nil
	}
	owner := metav1.GetControllerOf(ll)
	if owner == nil || owner.Kind != "PartnerAccount" || owner.APIVersion != partnersv1.GroupVersion.String() {
		return "", nil
	}
	pa := &partnersv1.PartnerAccount{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: owner.Name}, pa); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if pa.UID != owner.UID || !isPaused(pa) {
		return "", nil
	}
	return fmt.Sprintf("PartnerAccount %s's annotation %s", pa.Name, partnersv1.AnnotationPaused), nil
}

// reconcilePaused ends the pass of a paused LoginLink: no call, no Secret write, no requeue
// (removing the annotation, its own or its owner's, wakes it).
func (r *LoginLinkReconciler) reconcilePaused(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	who, err := pausedBy(ctx, r.Client, s.ll)
	if err != nil || who == "" {
		return ctrl.Result{}, err != nil, err
	}
	r.setReady(s.ll, false, partnersv1.ReasonPaused, fmt.Sprintf(
		"paused by %s: nothing is called or written (the Secret stays as it is) and it keeps its hold on its user until the annotation is removed", who))
	return ctrl.Result{}, true, nil
}

// holdsCurrentLink reports whether a LoginLink's stored link is its user's current one, as
// the user's Lease (rec) records it; with no generation recorded, whether it stores a link.
// An expired link is nobody's to keep: a pause then protects nothing, and holding the user
// would leave them without a valid link.
func holdsCurrentLink(ll *partnersv1.LoginLink, rec *election.Record, now time.Time) bool {
	if !unexpired(ll, now) {
		return false
	}
	if rec == nil || rec.GeneratedBy == "" {
		return ll.Status.ExpiresAt != nil
	}
	return rec.GeneratedBy == ll.UID && rec.GeneratedAt != ""
}

// pinned reports whether a LoginLink is paused and holds its user's current link: it then
// keeps the user against any newer LoginLink (election.Candidate.Pinned).
func (d *deps) pinned(ctx context.Context, c client.Reader, ll *partnersv1.LoginLink, rec *election.Record) bool {
	if !holdsCurrentLink(ll, rec, d.now()) {
		return false
	}
	who, err := pausedBy(ctx, c, ll)
	return err == nil && who != ""
}

// pausedHolder confirms, before a generation, that the LoginLink whose generation is the
// user's current link (the Lease read live) is not paused, as read live: a paused holder
// keeps its user even when the cache has not shown its pause yet.
func (r *LoginLinkReconciler) pausedHolder(ctx context.Context, s *linkScope) (bool, error) {
	rec := s.record
	if rec == nil || rec.GeneratedBy == "" || rec.GeneratedBy == s.me.UID || rec.Holder.UID != rec.GeneratedBy {
		return false, nil
	}
	ns, name, _ := strings.Cut(rec.Holder.ID, "/")
	ll := &partnersv1.LoginLink{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ll); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if ll.UID != rec.Holder.UID || !ll.DeletionTimestamp.IsZero() || !unexpired(ll, r.now()) {
		return false, nil
	}
	who, err := pausedBy(ctx, r.APIReader, ll)
	if err != nil || who == "" {
		return false, err
	}
	return true, r.superseded(ctx, s, rec.Holder)
}

// unexpired reports whether a LoginLink's status shows a stored link that may not have
// expired yet: status keeps whole seconds (truncated), so the link surely expired only a
// second after the time shown.
func unexpired(ll *partnersv1.LoginLink, now time.Time) bool {
	return ll.Status.ExpiresAt != nil && now.Before(ll.Status.ExpiresAt.Add(time.Second))
}

// pinnedUntil is when the link of a pinned (paused) holder expires, as the cache shows it:
// the LoginLinks it keeps Superseded look again then (zero when unknown).
func (r *LoginLinkReconciler) pinnedUntil(ctx context.Context, holder election.Candidate) time.Time {
	ns, name, _ := strings.Cut(holder.ID, "/")
	ll := &partnersv1.LoginLink{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ll); err != nil || ll.UID != holder.UID || ll.Status.ExpiresAt == nil {
		return time.Time{}
	}
	return ll.Status.ExpiresAt.Add(time.Second)
}

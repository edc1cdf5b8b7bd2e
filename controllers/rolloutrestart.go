package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
)

// Event reasons of the rollout restarts.
const (
	EventRolloutRestarted     = "RolloutRestarted"
	EventRolloutRestartFailed = "RolloutRestartFailed"
)

// Results of fifteenth_rollout_restarts_total.
const (
	restartResultRestarted = "restarted"
	restartResultNotFound  = "not_found"
	restartResultForbidden = "forbidden"
	restartResultFailed    = "failed"
)

// The targets are read with the APIReader (one uncached GET per target and pass) rather than
// through an informer: a cache of every Deployment, StatefulSet and DaemonSet would cost
// memory in proportion to the cluster, for objects read only when a LoginLink has a current
// link. get and patch on them are granted with the Secrets, by the hand-written ClusterRole
// in config/rbac/secret_role.yaml (not a marker), so that config/namespaced and the chart's
// watchNamespaces bind them only in the watched namespaces.

// restartNeeded decides whether a target must be restarted for the link generated at
// generatedAt. Its restartedAt annotation only moves forward: a time at or after generatedAt
// (this link's, or a newer link's of another LoginLink) is left as it is. A target without
// the annotation is restarted unless it was created after the link's second: its pods then
// started with the link already in the Secret.
func restartNeeded(annotation string, created, generatedAt time.Time) bool {
	if at, err := time.Parse(time.RFC3339Nano, annotation); err == nil {
		return at.Before(generatedAt)
	}
	return !created.After(generatedAt.Truncate(time.Second))
}

// restartFailure classifies a failure to read or patch a target: the condition's reason and
// the metric's result.
func restartFailure(err error) (reason, result string) {
	switch {
	case apierrors.IsNotFound(err):
		return partnersv1.ReasonTargetNotFound, restartResultNotFound
	case apierrors.IsForbidden(err):
		return partnersv1.ReasonForbidden, restartResultForbidden
	}
	return partnersv1.ReasonPatchFailed, restartResultFailed
}

// reconcileRestarts restarts the LoginLink's targets for its current link, each at most once
// per link, and sets the RolloutRestarted condition. It runs on every pass that ends with a
// current link, so a restart a crash interrupted is made by the next pass; a manager restart
// or a resync finds every target up to date and patches nothing. A failure is returned (the
// pass is retried with the controller's capped backoff); it never touches the link or Ready.
func (r *LoginLinkReconciler) reconcileRestarts(ctx context.Context, s *linkScope) error {
	ll := s.ll
	if len(ll.Spec.RolloutRestartTargets) == 0 {
		meta.RemoveStatusCondition(&ll.Status.Conditions, partnersv1.ConditionRolloutRestarted)
		return nil
	}
	// The link's time to the nanosecond: two links stored in one second each restart once.
	generatedAt := s.in.Link.restartTime()
	if c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue ||
		s.in.State != secretOK || generatedAt.IsZero() {
		return nil
	}
	var failures []string
	reason := ""
	for _, t := range ll.Spec.RolloutRestartTargets {
		what := t.Kind + "/" + t.Name
		restarted, err := r.restartTarget(ctx, ll.Namespace, t, generatedAt)
		if err != nil {
			why, result := restartFailure(err)
			metrics.ObserveRolloutRestart(ll.Namespace, t.Kind, result)
			if reason == "" {
				reason = why
			}
			msg := err.Error()
			if why == partnersv1.ReasonTargetNotFound {
				msg = "does not exist"
			}
			failures = append(failures, fmt.Sprintf("%s: %s", what, msg))
			continue
		}
		if restarted {
			metrics.ObserveRolloutRestart(ll.Namespace, t.Kind, restartResultRestarted)
			r.Recorder.Eventf(ll, nil, corev1.EventTypeNormal, EventRolloutRestarted, "RolloutRestart",
				"restarted %s for the link generated at %s", what, generatedAt.UTC().Format(time.RFC3339))
			logf.FromContext(ctx).Info("Restarted a rollout restart target", "target", what,
				"generatedAt", generatedAt.UTC().Format(time.RFC3339))
		}
	}
	if len(failures) > 0 {
		msg := "cannot restart " + strings.Join(failures, "; ") + "; the link is kept and the restart is tried again"
		if setRestartedCondition(ll, metav1.ConditionFalse, reason, msg) {
			r.Recorder.Eventf(ll, nil, corev1.EventTypeWarning, EventRolloutRestartFailed, "RolloutRestart", "%s: %s", reason, msg)
		}
		return errors.New(msg)
	}
	setRestartedCondition(ll, metav1.ConditionTrue, partnersv1.ReasonRestarted,
		fmt.Sprintf("every target was restarted for the link generated at %s (or after it)", generatedAt.UTC().Format(time.RFC3339)))
	return nil
}

// setRestartedCondition sets RolloutRestarted and reports whether it changed (status, reason
// or message).
func setRestartedCondition(ll *partnersv1.LoginLink, status metav1.ConditionStatus, reason, msg string) bool {
	prev := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionRolloutRestarted)
	changed := prev == nil || prev.Status != status || prev.Reason != reason || prev.Message != msg
	meta.SetStatusCondition(&ll.Status.Conditions, metav1.Condition{Type: partnersv1.ConditionRolloutRestarted,
		Status: status, Reason: reason, Message: msg, ObservedGeneration: ll.Generation})
	return changed
}

// restartTarget sets the target's restartedAt pod template annotation to generatedAt when
// restartNeeded says so, with a merge patch that carries the resourceVersion read: a newer
// time written meanwhile (another LoginLink) is a conflict, read again, and kept.
func (r *LoginLinkReconciler) restartTarget(ctx context.Context, namespace string, t partnersv1.RolloutRestartTarget, generatedAt time.Time) (bool, error) {
	restarted := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		restarted = false
		obj, tmpl, err := newRestartTarget(t.Kind)
		if err != nil {
			return err
		}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: t.Name}, obj); err != nil {
			return err
		}
		if !restartNeeded(tmpl.Annotations[partnersv1.AnnotationRestartedAt], obj.GetCreationTimestamp().Time, generatedAt) {
			return nil
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": obj.GetResourceVersion()},
			"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]string{
				partnersv1.AnnotationRestartedAt: generatedAt.UTC().Format(time.RFC3339Nano)}}}},
		})
		if err != nil {
			return err
		}
		if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return err
		}
		restarted = true
		return nil
	})
	return restarted, err
}

// newRestartTarget returns an empty object of kind and its pod template.
func newRestartTarget(kind string) (client.Object, *corev1.PodTemplateSpec, error) {
	switch kind {
	case "Deployment":
		o := &appsv1.Deployment{}
		return o, &o.Spec.Template, nil
	case "StatefulSet":
		o := &appsv1.StatefulSet{}
		return o, &o.Spec.Template, nil
	case "DaemonSet":
		o := &appsv1.DaemonSet{}
		return o, &o.Spec.Template, nil
	}
	return nil, nil, fmt.Errorf("kind %q cannot be restarted", kind)
}

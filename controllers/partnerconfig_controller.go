package controllers

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
)

// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partnerconfigs;clusterpartnerconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=partners.fifteenth.com,resources=partnerconfigs/status;clusterpartnerconfigs/status,verbs=get;update;patch
// The key Secrets are read (get) with the ClusterRole of config/rbac/secret_role.yaml, not a
// marker; config/namespaced grants get in the operator's namespace for ClusterPartnerConfigs.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// PartnerConfigReconciler keeps the status of PartnerConfigs and ClusterPartnerConfigs: Ready
// with the reason their key and URL give, and the key's fingerprint. It never calls the API:
// the other reconcilers call MarkUnauthorized when the API refuses a config's key. It reads
// each key Secret again at the resolver's TTL, so a rotated key shows without a watch.
type PartnerConfigReconciler struct {
	// Client is the manager's client (status writes, cached reads of the configs).
	Client client.Client
	// APIReader reads the config before MarkUnauthorized writes it (default: Client).
	APIReader client.Reader
	// Resolver checks the configs and builds their clients.
	Resolver *partnerconfig.Resolver
	// SkipClusterStatus leaves the status of ClusterPartnerConfigs to another manager (one of
	// several shards writes it, --cluster-config-status): this one only refreshes its resolver,
	// and records Unauthorized when the API refused the key on its own call (MarkUnauthorized),
	// which the writer keeps until the key changes.
	SkipClusterStatus bool
}

// SetupWithManager registers one controller per kind.
func (r *PartnerConfigReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("partnerconfig").
		For(&partnersv1.PartnerConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(opts).
		Complete(reconcile.Func(r.reconcilePartnerConfig)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusterpartnerconfig").
		For(&partnersv1.ClusterPartnerConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(opts).
		Complete(reconcile.Func(r.reconcileClusterPartnerConfig))
}

func (r *PartnerConfigReconciler) reconcilePartnerConfig(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pc := &partnersv1.PartnerConfig{}
	if err := r.Client.Get(ctx, req.NamespacedName, pc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Resolver.Forget(partnerconfig.Ref{Kind: partnersv1.KindPartnerConfig, Namespace: req.Namespace, Name: req.Name})
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	cfg, err := r.Resolver.ForPartnerConfig(ctx, pc)
	return r.settle(ctx, pc, &pc.Status, cfg, err)
}

func (r *PartnerConfigReconciler) reconcileClusterPartnerConfig(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cpc := &partnersv1.ClusterPartnerConfig{}
	if err := r.Client.Get(ctx, req.NamespacedName, cpc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Resolver.Forget(partnerconfig.Ref{Kind: partnersv1.KindClusterPartnerConfig, Name: req.Name})
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	cfg, err := r.Resolver.ForClusterPartnerConfig(ctx, cpc)
	if r.SkipClusterStatus {
		var perr *partnerconfig.Error
		if err != nil && !errors.As(err, &perr) {
			return ctrl.Result{}, err // the API server could not be read: backoff
		}
		return ctrl.Result{}, nil
	}
	return r.settle(ctx, cpc, &cpc.Status, cfg, err)
}

// settle writes the status that the resolver's answer gives, and says when to look again: at
// the Secret TTL while the outcome depends on the Secret, never when only a spec change (which
// triggers a reconcile) can change it.
func (r *PartnerConfigReconciler) settle(ctx context.Context, obj client.Object, st *partnersv1.PartnerConfigStatus,
	cfg *partnerconfig.Config, resolveErr error) (res ctrl.Result, retErr error) {
	var perr *partnerconfig.Error
	if resolveErr != nil && !errors.As(resolveErr, &perr) {
		return ctrl.Result{}, resolveErr // the API server could not be read: backoff
	}
	original := obj.DeepCopyObject().(client.Object)
	before := st.DeepCopy()
	res = ctrl.Result{RequeueAfter: r.Resolver.TTL()}
	gen := obj.GetGeneration()
	switch {
	case perr != nil:
		st.KeyFingerprint = ""
		setReadyCondition(&st.Conditions, &st.ObservedGeneration, gen, false, perr.Reason, perr.Message)
		if perr.Reason == partnersv1.ReasonAPIURLNotAllowed || perr.Reason == partnersv1.ReasonPartnerConfigNotReady {
			res = ctrl.Result{} // only a spec change (or a restart with other flags) changes it
		}
	case r.stillRefused(st, cfg, gen):
		// The API refused this very key at this generation: keep Unauthorized until the key or
		// the spec changes.
	default:
		st.KeyFingerprint = cfg.Fingerprint
		setReadyCondition(&st.Conditions, &st.ObservedGeneration, gen, true, partnersv1.ReasonValid,
			fmt.Sprintf("the key Secret holds a partner key (fingerprint %s); it is checked by the API on use", cfg.Fingerprint))
	}
	if !equality.Semantic.DeepEqual(before, st) {
		patchStatus(ctx, r.Client, obj, original, &res, &retErr)
	}
	return res, retErr
}

// stillRefused reports whether the status says the API refused the key cfg has now.
func (r *PartnerConfigReconciler) stillRefused(st *partnersv1.PartnerConfigStatus, cfg *partnerconfig.Config, gen int64) bool {
	c := meta.FindStatusCondition(st.Conditions, partnersv1.ConditionReady)
	return c != nil && c.Reason == partnersv1.ReasonUnauthorized && c.ObservedGeneration == gen &&
		st.KeyFingerprint != "" && st.KeyFingerprint == cfg.Fingerprint
}

// MarkUnauthorized records that the API refused cfg's key (a 401 or 403 on a call made with
// cfg.API): the config turns Ready=False Unauthorized until its key or spec changes. A key
// rotated since cfg was resolved is not marked, nor is the flag-built default (no object).
// It makes no API call.
func (r *PartnerConfigReconciler) MarkUnauthorized(ctx context.Context, cfg *partnerconfig.Config) error {
	if cfg == nil || cfg.Fingerprint == "" {
		return nil
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	key := types.NamespacedName{Namespace: cfg.Ref.Namespace, Name: cfg.Ref.Name}
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var obj client.Object
		var st *partnersv1.PartnerConfigStatus
		switch cfg.Ref.Kind {
		case partnersv1.KindPartnerConfig:
			pc := &partnersv1.PartnerConfig{}
			obj, st = pc, &pc.Status
		case partnersv1.KindClusterPartnerConfig:
			cpc := &partnersv1.ClusterPartnerConfig{}
			obj, st = cpc, &cpc.Status
		default:
			return nil
		}
		if err := reader.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return nil // the flag-built default, or a deleted config
			}
			return err
		}
		if st.KeyFingerprint != "" && st.KeyFingerprint != cfg.Fingerprint {
			return nil // the key was rotated since that call
		}
		original := obj.DeepCopyObject().(client.Object)
		before := st.DeepCopy()
		st.KeyFingerprint = cfg.Fingerprint
		setReadyCondition(&st.Conditions, &st.ObservedGeneration, obj.GetGeneration(), false, partnersv1.ReasonUnauthorized,
			fmt.Sprintf("the API refused the key (fingerprint %s): put a valid partner key in the key Secret", cfg.Fingerprint))
		if equality.Semantic.DeepEqual(before, st) {
			return nil
		}
		return r.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}))
	})
}

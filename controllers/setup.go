// Package controllers holds the reconcilers of PartnerAccount and LoginLink.
package controllers

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Config is what the controllers need from the manager's flags.
type Config struct {
	API               fifteenth.API
	AccountSyncPeriod time.Duration
	Controller        controller.Options
	// Now is the clock (default time.Now); tests may replace it.
	Now func() time.Time
}

// Setup registers the field indexes and every controller with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	ll := &LoginLinkReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), API: cfg.API,
		Recorder: mgr.GetEventRecorder("fifteenth-operator"), Now: cfg.Now, AccountSyncPeriod: cfg.AccountSyncPeriod,
	}
	if err := ll.SetupWithManager(mgr, cfg.Controller); err != nil {
		return err
	}
	pa := &PartnerAccountReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), API: cfg.API,
		Recorder: mgr.GetEventRecorder("fifteenth-operator"), Now: cfg.Now, AccountSyncPeriod: cfg.AccountSyncPeriod,
	}
	return pa.SetupWithManager(mgr, cfg.Controller)
}

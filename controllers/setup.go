// Package controllers holds the reconcilers of PartnerAccount and LoginLink.
package controllers

import (
	"context"
	"time"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// deps is what both reconcilers need besides their cached client.
type deps struct {
	// APIReader reads from the API server, bypassing the cache: every decision to call the
	// Fifteenth API is confirmed with it, so a stale cache never causes a second call.
	APIReader client.Reader
	API       fifteenth.API
	Recorder  events.EventRecorder
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AccountSyncPeriod is how often an account is read to observe its status, and how long a
	// suspended account waits before it is looked at again.
	AccountSyncPeriod time.Duration
}

func (d *deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *deps) syncPeriod() time.Duration {
	if d.AccountSyncPeriod > 0 {
		return d.AccountSyncPeriod
	}
	return DefaultAccountSyncPeriod
}

// Setup registers the field indexes and every controller with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	d := deps{APIReader: mgr.GetAPIReader(), API: cfg.API, Recorder: mgr.GetEventRecorder("fifteenth-operator"),
		Now: cfg.Now, AccountSyncPeriod: cfg.AccountSyncPeriod}
	ll := &LoginLinkReconciler{Client: mgr.GetClient(), deps: d}
	if err := ll.SetupWithManager(mgr, cfg.Controller); err != nil {
		return err
	}
	pa := &PartnerAccountReconciler{Client: mgr.GetClient(), deps: d}
	return pa.SetupWithManager(mgr, cfg.Controller)
}

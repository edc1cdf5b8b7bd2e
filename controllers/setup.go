// Package controllers holds the reconcilers of PartnerAccount and LoginLink.
package controllers

import (
	"context"
	"time"

	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Config is what the controllers need from the manager's flags.
type Config struct {
	API fifteenth.API
	// APIEndpoint identifies the API (its base URL) in the per-user elections.
	APIEndpoint string
	// APITimeout bounds one API call (default fifteenth.DefaultTimeout); a generation is
	// fenced for a little longer.
	APITimeout time.Duration
	// ElectionNamespace holds the per-user election Leases. The manager's cache must include
	// the Leases there that carry the managed-by label.
	ElectionNamespace string
	AccountSyncPeriod time.Duration
	// AccountAccess reports whether a namespace may adopt, or link by accountID, accounts
	// that no PartnerAccount manages (the manager's --account-access-namespaces); nil: none.
	AccountAccess func(namespace string) bool
	Controller    controller.Options
	// Clock is the clock (default the real one); tests may replace it.
	Clock clock.PassiveClock
}

// deps is what both reconcilers need besides their cached client.
type deps struct {
	// APIReader reads from the API server, bypassing the cache: every decision to call the
	// Fifteenth API is confirmed with it, so a stale cache never causes a second call.
	APIReader client.Reader
	API       fifteenth.API
	Endpoint  string
	Elector   *election.Elector
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// AccountSyncPeriod is how often an account is read to observe its status, and how long a
	// suspended account waits before it is looked at again.
	AccountSyncPeriod time.Duration
	// AccountAccess: see Config.
	AccountAccess func(namespace string) bool
}

// granted reports whether namespace may adopt or link accounts no PartnerAccount manages.
func (d *deps) granted(namespace string) bool {
	return d.AccountAccess != nil && d.AccountAccess(namespace)
}

func (d *deps) now() time.Time { return d.Clock.Now() }

func (d *deps) syncPeriod() time.Duration {
	if d.AccountSyncPeriod > 0 {
		return d.AccountSyncPeriod
	}
	return DefaultAccountSyncPeriod
}

// newDeps builds the reconcilers' dependencies from the manager and cfg.
func newDeps(mgr ctrl.Manager, cfg Config) deps {
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	timeout := cfg.APITimeout
	if timeout <= 0 {
		timeout = fifteenth.DefaultTimeout
	}
	return deps{
		APIReader: mgr.GetAPIReader(), API: cfg.API, Endpoint: cfg.APIEndpoint,
		Recorder: mgr.GetEventRecorder("fifteenth-operator"), Clock: clk, AccountSyncPeriod: cfg.AccountSyncPeriod,
		AccountAccess: cfg.AccountAccess,
		Elector: &election.Elector{Client: mgr.GetClient(), Cache: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Namespace: cfg.ElectionNamespace, InFlight: timeout + 5*time.Second, Clock: clk,
			Labels: map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}},
	}
}

// Setup registers the field indexes and every controller with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	d := newDeps(mgr, cfg)
	ll := &LoginLinkReconciler{Client: mgr.GetClient(), deps: d}
	if err := ll.SetupWithManager(mgr, cfg.Controller); err != nil {
		return err
	}
	pa := &PartnerAccountReconciler{Client: mgr.GetClient(), deps: d}
	return pa.SetupWithManager(mgr, cfg.Controller)
}

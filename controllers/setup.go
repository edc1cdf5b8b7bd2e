// Package controllers holds the reconcilers of PartnerAccount and LoginLink.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/election"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/recorder"
)

// Config is what the controllers need from the manager's flags.
type Config struct {
	// Configs resolves each object's partner config (PartnerConfig, ClusterPartnerConfig, or
	// the flag-built default). Nil: a resolver with only the default made of API,
	// APIEndpoint and AccountAccessNamespaces.
	Configs *partnerconfig.Resolver
	API     fifteenth.API
	// APIEndpoint identifies the API (its base URL) in the per-user elections.
	APIEndpoint string
	// APITimeout bounds one API call (default fifteenth.DefaultTimeout); a generation is
	// fenced for a little longer.
	APITimeout time.Duration
	// ElectionNamespace holds the per-user election Leases. The manager's cache must include
	// the Leases there that carry the managed-by label.
	ElectionNamespace string
	AccountSyncPeriod time.Duration
	// AccountAccessNamespaces may adopt, or link by accountID, accounts that no
	// PartnerAccount manages, with the flag-built default (--account-access-namespaces).
	AccountAccessNamespaces string
	// SecretTTL is how long the default resolver trusts a key Secret it read (tests shorten it).
	SecretTTL  time.Duration
	Controller controller.Options
	// Clock is the clock (default the real one); tests may replace it.
	Clock clock.PassiveClock
	// ReadOnly is --read-only: a standby cluster's manager. It calls neither Create Account nor
	// Generate Login Link, writes no Secret, reads the accounts it may adopt at the account
	// sync period, and reports every object Ready=False Standby with what it would do.
	ReadOnly bool
	// ClusterWideClaims reads the claims (which PartnerAccount manages an account) from a
	// cluster-wide cache of PartnerAccounts, stripped to what a claim check reads, instead of
	// the manager's cache. A manager that watches only some namespaces (a shard) must set it:
	// its own cache does not hold the other shards' claims.
	ClusterWideClaims bool
	// WatchedNamespaces are the namespaces the manager's cache watches (nil: all). With
	// ClusterWideClaims, the claims cache leaves them out: their claims are read from the
	// manager's cache, which holds their PartnerAccounts already.
	WatchedNamespaces []string
	// SkipClusterConfigStatus leaves the routine status of ClusterPartnerConfigs to another
	// manager (--cluster-config-status=false): of several managers (shards), one writes it.
	// Unauthorized, the API's refusal of a key on a call this manager made, is still recorded.
	SkipClusterConfigStatus bool
}

// deps is what both reconcilers need besides their cached client.
type deps struct {
	// APIReader reads from the API server, bypassing the cache: every decision to call the
	// Fifteenth API is confirmed with it, so a stale cache never causes a second call.
	APIReader client.Reader
	// Configs gives each object its API client, endpoint and grants.
	Configs  *partnerconfig.Resolver
	Elector  *election.Elector
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// AccountSyncPeriod is how often an account is read to observe its status, and how long a
	// suspended account waits before it is looked at again.
	AccountSyncPeriod time.Duration
	// configs writes the configs' status (Unauthorized once the API refused a key).
	configStatus *PartnerConfigReconciler
	// ReadOnly: a standby (Config.ReadOnly).
	ReadOnly bool
	// claims lists the PartnerAccounts that claim an account (indexClaimedAccount), in every
	// namespace: the manager's cache, or the claims cache of a shard.
	claims client.Reader
	// ownClaims lists the claims of a shard's own namespaces (its cache), when its claims cache
	// leaves them out (Config.WatchedNamespaces); nil otherwise.
	ownClaims client.Reader
	// claimsSource is the claims cache of a shard (nil otherwise): the controllers watch it for
	// the claims of the other shards' namespaces.
	claimsSource cache.Cache
}

// unauthorized records on the object's config that the API refused its key (logged when the
// write fails: the object's own condition already says Unauthorized).
func (d *deps) unauthorized(ctx context.Context, cfg *partnerconfig.Config) {
	if d.configStatus == nil || cfg == nil {
		return
	}
	if err := d.configStatus.MarkUnauthorized(ctx, cfg); err != nil {
		logf.FromContext(ctx).Info("Could not mark the partner config Unauthorized", "config", cfg.Ref.String(), "error", err.Error())
	}
}

// granted reports whether objects of namespace may adopt or link, with cfg, accounts no
// PartnerAccount manages.
func (d *deps) granted(ctx context.Context, cfg *partnerconfig.Config, namespace string) (bool, error) {
	return d.Configs.Grants(ctx, cfg, namespace)
}

// configFor resolves the partner config of an object of namespace. ok is false when the pass
// must end: a config that cannot serve the object was reported through refuse (no call is
// made), and it is looked at again after the resolver's TTL or when the config changes.
func (d *deps) configFor(ctx context.Context, namespace string, ref *partnersv1.PartnerConfigReference,
	refuse func(reason, msg string)) (*partnerconfig.Config, ctrl.Result, bool, error) {
	cfg, err := d.Configs.For(ctx, namespace, ref)
	if reason, settled := partnerconfig.ReasonOf(err); settled {
		var pe *partnerconfig.Error
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Message
		}
		refuse(reason, msg)
		return nil, ctrl.Result{RequeueAfter: d.Configs.TTL()}, false, nil
	}
	if err != nil {
		return nil, ctrl.Result{}, false, err
	}
	return cfg, ctrl.Result{}, true, nil
}

func (d *deps) now() time.Time { return d.Clock.Now() }

func (d *deps) syncPeriod() time.Duration {
	if d.AccountSyncPeriod > 0 {
		return d.AccountSyncPeriod
	}
	return DefaultAccountSyncPeriod
}

// newDeps builds the reconcilers' dependencies from the manager, cfg and the Event recorder.
func newDeps(mgr ctrl.Manager, cfg Config, rec events.EventRecorder) deps {
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	timeout := cfg.APITimeout
	if timeout <= 0 {
		timeout = fifteenth.DefaultTimeout
	}
	configs := cfg.Configs
	if configs == nil {
		endpoint := cfg.APIEndpoint
		if n, err := partnerconfig.NormalizeURL(endpoint); err == nil {
			endpoint = n
		}
		configs = &partnerconfig.Resolver{Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), SecretTTL: cfg.SecretTTL,
			Default: partnerconfig.NewDefault(cfg.API, endpoint, "", cfg.AccountAccessNamespaces)}
		if endpoint != "" {
			configs.AllowedAPIURLs = []string{endpoint}
		}
	}
	return deps{
		APIReader: mgr.GetAPIReader(), Configs: configs, claims: mgr.GetClient(),
		Recorder: rec, Clock: clk, AccountSyncPeriod: cfg.AccountSyncPeriod, ReadOnly: cfg.ReadOnly,
		Elector: &election.Elector{Client: mgr.GetClient(), Cache: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Namespace: cfg.ElectionNamespace, InFlight: timeout + 5*time.Second, Clock: clk,
			Labels: map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue}},
	}
}

// newRecorder returns the controllers' Event recorder, added to mgr (which starts it): one whose
// memory is bounded (internal/recorder), rather than the manager's events/v1 recorder, which
// keeps every distinct Event for minutes.
func newRecorder(mgr ctrl.Manager) (*recorder.Recorder, error) {
	cs, err := eventsv1client.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("cannot create the Events client: %w", err)
	}
	host, _ := os.Hostname()
	rec := recorder.New(cs, mgr.GetScheme(), eventsController, eventsController+"-"+host, clock.RealClock{})
	return rec, mgr.Add(rec)
}

// eventsController is the reportingController of the operator's Events.
const eventsController = "fifteenth-operator"

// Setup registers the field indexes and every controller with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	rec, err := newRecorder(mgr)
	if err != nil {
		return err
	}
	d := newDeps(mgr, cfg, rec)
	remove := metrics.AddObjectSource(objectMetrics{c: mgr.GetClient(), elected: mgr.Elected()})
	go func() { <-ctx.Done(); remove() }()
	if cfg.ClusterWideClaims {
		c, err := newClaimsCache(ctx, mgr, cfg.WatchedNamespaces)
		if err != nil {
			return err
		}
		d.claims, d.claimsSource = c, c
		if len(cfg.WatchedNamespaces) > 0 {
			d.ownClaims = mgr.GetClient()
		}
	}
	pc := &PartnerConfigReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Resolver: d.Configs,
		SkipClusterStatus: cfg.SkipClusterConfigStatus}
	d.configStatus = pc
	ll := &LoginLinkReconciler{Client: mgr.GetClient(), deps: d}
	if err := ll.SetupWithManager(mgr, cfg.Controller); err != nil {
		return err
	}
	pa := &PartnerAccountReconciler{Client: mgr.GetClient(), deps: d}
	if err := pa.SetupWithManager(mgr, cfg.Controller); err != nil {
		return err
	}
	return pc.SetupWithManager(mgr, cfg.Controller)
}

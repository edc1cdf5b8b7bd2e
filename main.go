// Command manager runs the fifteenth-operator controllers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/controllers"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/memlimit"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
	"github.com/fifteenth/fifteenth-operator/internal/metricsauth"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/restmapper"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(partnersv1.AddToScheme(scheme))
}

// envAPIKey is the environment variable holding the API key when --api-key-file is not set.
const envAPIKey = "FIFTEENTH_API_KEY"

// defaultNamespace is the namespace config/default installs the operator in.
const defaultNamespace = "fifteenth-operator-system"

// electionNamespace returns the namespace of the per-user election Leases.
func electionNamespace(o options) string {
	for _, ns := range []string{o.electionNamespace, os.Getenv("POD_NAMESPACE"), o.leaderElectionNS} {
		if ns = strings.TrimSpace(ns); ns != "" {
			return ns
		}
	}
	return defaultNamespace
}

type options struct {
	apiURL              string
	apiKeyFile          string
	apiTimeout          time.Duration
	createLimit         fifteenth.Rate
	linkLimit           fifteenth.Rate
	accountSyncPeriod   time.Duration
	watchNamespaces     string
	namespaceSelector   string
	clusterConfigStatus bool
	syncPeriod          time.Duration
	concurrency         int
	metricsAddr         string
	metricsSecure       bool
	metricsCertDir      string
	probeAddr           string
	leaderElect         bool
	leaderElectionNS    string
	leaderElectionID    string
	leaseDuration       time.Duration
	renewDeadline       time.Duration
	retryPeriod         time.Duration
	gracefulShutdownTTL time.Duration
	cacheSyncTimeout    time.Duration
	electionNamespace   string
	accountAccess       string
	allowedAPIURLs      string
	readOnly            bool
	pprofAddr           string
}

func main() {
	o := options{createLimit: fifteenth.DefaultAccountCreateRate, linkLimit: fifteenth.DefaultLoginLinkRate}
	flag.StringVar(&o.apiURL, "api-url", fifteenth.DefaultBaseURL, "Base URL of the Fifteenth Partner API (plain http only to loopback).")
	flag.StringVar(&o.apiKeyFile, "api-key-file", "", "File holding the partner API key, re-read when it changes. Default: the "+envAPIKey+" environment variable.")
	flag.DurationVar(&o.apiTimeout, "api-timeout", fifteenth.DefaultTimeout, "Timeout of each call to the Fifteenth API.")
	flag.Var(&o.createLimit, "account-create-limit", "Client-side limit on account creations per key, N/DURATION.")
	flag.Var(&o.linkLimit, "login-link-limit", "Client-side limit on login links per account (sliding window), N/DURATION.")
	flag.DurationVar(&o.accountSyncPeriod, "account-sync-period", controllers.DefaultAccountSyncPeriod, "How often each account is read from the API to observe suspension.")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch. Default: all.")
	flag.StringVar(&o.namespaceSelector, "watch-namespace-selector", "", "Label selector of the Namespaces to watch (e.g. fifteenth.com/shard=a), "+
		"instead of --watch-namespaces: the manager exits when the selected set changes, and its Deployment starts it again with the new set. "+
		"See docs/operations.md, Large installations.")
	flag.BoolVar(&o.clusterConfigStatus, "cluster-config-status", true, "Write the status of ClusterPartnerConfigs. "+
		"Of several managers sharing a cluster (shards), exactly one keeps it true.")
	flag.DurationVar(&o.syncPeriod, "sync-period", 10*time.Hour, "How often every object is reconciled again (a resync costs no API call).")
	flag.IntVar(&o.concurrency, "max-concurrent-reconciles", 4, "Reconciles run in parallel per controller.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint; 0 disables it. Use e.g. :8080 with --metrics-secure=false.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, to callers whose bearer token may GET /metrics (TokenReview and SubjectAccessReview); "+
		"false: plain HTTP without authentication, for loopback only.")
	flag.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Directory holding tls.crt and tls.key of the metrics endpoint (e.g. a mounted cert-manager Secret). Default: a self-signed certificate generated at start.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease. Default: the pod's namespace.")
	flag.StringVar(&o.leaderElectionID, "leader-election-id", "fifteenth-operator.partners.fifteenth.com", "Name of the leader election Lease.")
	flag.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "Leader election lease duration.")
	flag.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "Leader election renew deadline.")
	flag.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "Leader election retry period.")
	flag.DurationVar(&o.gracefulShutdownTTL, "graceful-shutdown-timeout", 30*time.Second, "How long to wait for reconciles to finish on shutdown.")
	flag.StringVar(&o.electionNamespace, "election-namespace", "", "Namespace of the per-user election Leases (one per account user, so that one LoginLink generates at a time). "+
		"Default: $POD_NAMESPACE, else --leader-election-namespace, else "+defaultNamespace+". Managers that share accounts must share it.")
	flag.StringVar(&o.accountAccess, "account-access-namespaces", "", "Comma-separated namespaces that may adopt (spec.accountID) or link by accountID "+
		"accounts no PartnerAccount manages, with the flag-built partner key; * for all. Default: none.")
	flag.StringVar(&o.allowedAPIURLs, "allowed-api-urls", fifteenth.DefaultBaseURL, "Comma-separated API base URLs a namespaced PartnerConfig may use "+
		"(a tenant's apiURL is an address the operator calls from inside the cluster). ClusterPartnerConfigs may use any https URL.")
	flag.BoolVar(&o.readOnly, "read-only", false, "Standby: never call Create Account or Generate Login Link, never write a Secret; "+
		"report every PartnerAccount and LoginLink Ready=False Standby with what it would do, and read adoptable accounts at the account sync period. "+
		"For a second cluster fed from the same Git repository (see docs/operations.md, Several clusters).")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of the pprof endpoints (/debug/pprof/), e.g. 127.0.0.1:6060 for a heap profile. Default: disabled.")
	flag.DurationVar(&o.cacheSyncTimeout, "cache-sync-timeout", 2*time.Minute, "Exit when the caches have not synced by then (usually missing RBAC; the log names the forbidden resource).")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))

	if err := run(o); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Manager failed")
		os.Exit(1)
	}
}

func apiKeySource(file string) (fifteenth.KeySource, error) {
	if file != "" {
		k := fifteenth.NewFileKey(file)
		if _, err := k.APIKey(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if v := strings.TrimSpace(os.Getenv(envAPIKey)); v != "" {
		return fifteenth.StaticKey(v), nil
	}
	return nil, errors.New("no API key: set --api-key-file or the " + envAPIKey + " environment variable")
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	// A soft limit below the container's, so that the collector works before the OOM killer.
	if limit, from, err := memlimit.Apply(); err != nil {
		log.Error(err, "Cannot read the container's memory limit; no soft memory limit set")
	} else if limit > 0 {
		log.Info("Soft memory limit set", "bytes", limit, "from", string(from), "ratio", memlimit.Ratio)
	}
	scope, err := parseNamespaceScope(o.watchNamespaces, o.namespaceSelector)
	if err != nil {
		return err
	}
	if o.readOnly {
		log.Info("Running as a standby (--read-only): no account is created, no link generated, no Secret written")
	}
	key, err := apiKeySource(o.apiKeyFile)
	if err != nil {
		return err
	}
	endpoint, err := partnerconfig.NormalizeURL(o.apiURL)
	if err != nil {
		return err
	}
	allowed, err := partnerconfig.ParseAllowedAPIURLs(o.allowedAPIURLs)
	if err != nil {
		return err
	}
	keyValue, err := key.APIKey()
	if err != nil {
		return err
	}
	// Every config's clients share the login-link budget of an endpoint's accounts, and each
	// key its creation budget.
	fingerprint, limiters := partnerconfig.Fingerprint(keyValue), partnerconfig.NewLimiters(nil)
	api, err := fifteenth.New(fifteenth.Options{
		BaseURL: o.apiURL, Key: key, Timeout: o.apiTimeout,
		AccountCreateRate: o.createLimit, LoginLinkRate: o.linkLimit,
		LoginLinkLimiter: limiters.LoginLinks(endpoint, o.linkLimit), AccountCreateLimiter: limiters.Creations(fingerprint, o.createLimit),
		ObserveRequest: metrics.ObserveRequest, ObserveRateLimited: metrics.ObserveRateLimited,
	})
	if err != nil {
		return err
	}

	// Cache only the Secrets the operator writes: a cluster with many unrelated Secrets must
	// not grow the manager's memory.
	managed := labels.SelectorFromSet(labels.Set{partnersv1.LabelManagedBy: partnersv1.ManagedByValue})
	// The per-user election Leases live in one namespace; only the operator's are cached.
	electionNS := electionNamespace(o)
	restCfg := ctrl.GetConfigOrDie()
	live, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	watched, err := scope.resolve(context.Background(), live)
	if err != nil {
		return err
	}
	cacheOpts := cache.Options{SyncPeriod: &o.syncPeriod, DefaultNamespaces: defaultNamespaces(watched), DefaultTransform: controllers.CacheTransform(), ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:        {Label: managed},
		&coordinationv1.Lease{}: {Label: managed, Namespaces: map[string]cache.Config{electionNS: {}}},
	}}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		Cache:  cacheOpts,
		// The cache asks the RESTMapper on every read when it watches a set of namespaces:
		// its answers are kept (internal/restmapper).
		MapperProvider: func(c *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
			m, err := apiutil.NewDynamicRESTMapper(c, hc)
			if err != nil {
				return nil, err
			}
			return restmapper.Memoize(m), nil
		},
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        o.leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNS,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		GracefulShutdownTimeout: &o.gracefulShutdownTTL,
		PprofBindAddress:        o.pprofAddr,
		// Leadership is dropped on exit, so that a replacement takes over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("cannot create manager: %w", err)
	}
	ctx, stop := context.WithCancel(ctrl.SetupSignalHandler())
	defer stop()
	if err := controllers.Setup(ctx, mgr, controllers.Config{
		Configs: &partnerconfig.Resolver{Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(),
			Default:        partnerconfig.NewDefault(api, endpoint, fingerprint, o.accountAccess),
			AllowedAPIURLs: allowed, Limiters: limiters,
			ClientOptions: fifteenth.Options{Timeout: o.apiTimeout},
			Observers: func(config string) (func(string, int, time.Duration), func(string, time.Duration)) {
				return metrics.RequestObserver(config), metrics.RateLimitObserver(config)
			}},
		APITimeout: o.apiTimeout, ElectionNamespace: electionNS, AccountSyncPeriod: o.accountSyncPeriod, ReadOnly: o.readOnly,
		Controller: controller.Options{MaxConcurrentReconciles: o.concurrency},
		// A shard's cache holds its own namespaces only; the claims of the others' are read
		// from a cluster-wide cache of stripped PartnerAccounts.
		ClusterWideClaims: !scope.all(), WatchedNamespaces: watched, SkipClusterConfigStatus: !o.clusterConfigStatus,
	}); err != nil {
		return err
	}
	if scope.selector != nil {
		if err := watchSelectedNamespaces(ctx, mgr.GetCache(), scope.selector, watched, func(now []string) {
			log.Info("Exiting: the Namespaces that --watch-namespace-selector selects changed; the Deployment starts the manager again with them",
				"selector", scope.selector.String(), "watched", watched, "selected", now)
			stop()
		}); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Not Ready until the caches synced: a manager that cannot list what it watches (missing
	// RBAC) reconciles nothing, and must not look healthy.
	if err := mgr.AddReadyzCheck("caches-synced", func(req *http.Request) error {
		c, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(c) {
			return errors.New("caches have not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	go exitUnlessSynced(ctx, mgr, o.cacheSyncTimeout)
	go exitAfterShutdownTimeout(ctx, o.gracefulShutdownTTL+15*time.Second)
	log.Info("Starting manager", "apiURL", o.apiURL, "accountCreateLimit", o.createLimit.String(),
		"loginLinkLimit", o.linkLimit.String(), "watchNamespaces", watched, "watchNamespaceSelector", o.namespaceSelector, "clusterConfigStatus", o.clusterConfigStatus, "metricsSecure", o.metricsSecure, "electionNamespace", electionNS, "accountAccessNamespaces", o.accountAccess)
	return mgr.Start(ctx)
}

// metricsOptions serves the metrics over HTTPS with authentication and authorization, as
// kubebuilder scaffolds it, unless --metrics-secure=false. Either way /metrics adds the
// per-object series to the registry's (metrics.Handler), behind the authorization.
func metricsOptions(o options) metricsserver.Options {
	if !o.metricsSecure {
		return metricsserver.Options{BindAddress: o.metricsAddr, FilterProvider: objectSeries(nil)}
	}
	return metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: true, CertDir: o.metricsCertDir,
		FilterProvider: objectSeries(metricsauth.Provider)}
}

// objectSeries is a FilterProvider that serves the per-object series with the registry's
// metrics, behind the filter of auth when it is not nil.
func objectSeries(auth func(*rest.Config, *http.Client) (metricsserver.Filter, error)) func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
	return func(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
		var authorize metricsserver.Filter
		if auth != nil {
			var err error
			if authorize, err = auth(config, httpClient); err != nil {
				return nil, err
			}
		}
		return func(log logr.Logger, h http.Handler) (http.Handler, error) {
			h = metrics.Handler(h)
			if authorize == nil {
				return h, nil
			}
			return authorize(log, h)
		}, nil
	}
}

// exitUnlessSynced ends the process when the caches have not synced within timeout: idling
// forever with nothing reconciled would hide the cause (the log above names the resource the
// manager may not list). A restart loop shows it. It looks at the deadline, not at the start:
// the controllers' informers exist only once the manager leads, and a wait begun before
// would not include them. Informers begun just before the deadline get a grace period.
func exitUnlessSynced(ctx context.Context, mgr ctrl.Manager, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	c, cancel := context.WithTimeout(ctx, min(timeout, 10*time.Second))
	defer cancel()
	if mgr.GetCache().WaitForCacheSync(c) || ctx.Err() != nil {
		return
	}
	ctrl.Log.WithName("setup").Error(errors.New("caches did not sync"), "Exiting: check the RBAC of the manager's ServiceAccount",
		"timeout", timeout.String())
	os.Exit(1)
}

// exitAfterShutdownTimeout ends the process when it has not stopped within timeout of the
// shutdown signal. controller-runtime v0.25 can spin forever when it is stopped before its
// caches synced (fixed upstream in kubernetes-sigs/controller-runtime#3440).
func exitAfterShutdownTimeout(ctx context.Context, timeout time.Duration) {
	<-ctx.Done()
	t := time.NewTimer(timeout)
	defer t.Stop()
	<-t.C
	ctrl.Log.WithName("setup").Error(errors.New("shutdown timed out"), "Exiting without a clean shutdown", "timeout", timeout.String())
	os.Exit(1)
}

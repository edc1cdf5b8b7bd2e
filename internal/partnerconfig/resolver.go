package partnerconfig

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// DefaultSecretTTL is how long a key Secret read is trusted: a rotated key is used at most
// this long after the Secret changed.
const DefaultSecretTTL = 30 * time.Second

// Resolver finds the effective config of an object and keeps one client per config, rebuilt
// when the config's spec or its key changes. It is safe for concurrent use. Set the fields
// before the first call and do not change them afterwards.
type Resolver struct {
	// Client reads PartnerConfigs, ClusterPartnerConfigs and Namespaces (the manager's cached
	// client; Namespaces are read only for label selectors).
	Client client.Reader
	// SecretReader reads the key Secrets live: the manager's APIReader, so that the manager
	// neither caches nor watches Secrets it does not write. Reads are kept for SecretTTL.
	SecretReader client.Reader
	// Default is the flag-built config (NewDefault), used when no ClusterPartnerConfig named
	// "default" exists. Nil: such objects get PartnerConfigNotReady.
	Default *Config
	// AllowedAPIURLs are the normalised URLs a namespaced PartnerConfig may use
	// (ParseAllowedAPIURLs of --allowed-api-urls). Empty: the public API only.
	AllowedAPIURLs []string
	// SecretTTL defaults to DefaultSecretTTL.
	SecretTTL time.Duration
	// Limiters are shared with the default's client (default: a set of this resolver's own).
	Limiters *Limiters
	// ClientOptions are the template of the clients built for configs (Timeout, HTTPClient,
	// ObserveRequest, ObserveRateLimited, UserAgent, Now). BaseURL, Key, the rates and the
	// limiters are the config's.
	ClientOptions fifteenth.Options
	// Observers, when set, give each config's clients their own observers (metrics labelled
	// with the config's name); ClientOptions' observers apply otherwise.
	Observers func(config string) (func(route string, code int, d time.Duration), func(scope string, wait time.Duration))
	// Now is the clock of the Secret TTL (default time.Now).
	Now func() time.Time

	init        sync.Once
	mu          sync.Mutex
	clients     map[Ref]*built
	secrets     map[types.NamespacedName]*secretRead
	secretReads atomic.Int64
}

// built is a cached client and what it was built from.
type built struct {
	sig         string // endpoint and limits
	fingerprint string
	api         fifteenth.API
}

// secretRead is a cached read of a Secret (data nil and found false when it did not exist).
type secretRead struct {
	at    time.Time
	found bool
	data  map[string][]byte
}

func (r *Resolver) setup() {
	r.init.Do(func() {
		if r.Now == nil {
			r.Now = time.Now
		}
		if r.Limiters == nil {
			r.Limiters = NewLimiters(r.ClientOptions.Now)
		}
		if len(r.AllowedAPIURLs) == 0 {
			r.AllowedAPIURLs = []string{fifteenth.DefaultBaseURL}
		}
		r.clients = map[Ref]*built{}
		r.secrets = map[types.NamespacedName]*secretRead{}
	})
}

// TTL is how long a Secret read is kept; the config reconciler requeues at it.
func (r *Resolver) TTL() time.Duration {
	if r.SecretTTL > 0 {
		return r.SecretTTL
	}
	return DefaultSecretTTL
}

// SecretReads counts the reads of key Secrets from the API server (not the TTL cache hits).
func (r *Resolver) SecretReads() int64 { return r.secretReads.Load() }

// For returns the effective config of an object in namespace that names ref (nil: the
// ClusterPartnerConfig "default", or the flag-built Default when that does not exist). A
// PartnerConfig is looked up in namespace only. The error is an *Error when the config
// cannot serve the object (see Error), another error when the API server could not be read.
func (r *Resolver) For(ctx context.Context, namespace string, ref *partnersv1.PartnerConfigReference) (*Config, error) {
	r.setup()
	kind, name := partnersv1.KindClusterPartnerConfig, partnersv1.DefaultPartnerConfigName
	if ref != nil {
		kind, name = ref.Kind, ref.Name
	}
	switch kind {
	case partnersv1.KindPartnerConfig:
		pc := &partnersv1.PartnerConfig{}
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, pc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, errorf(partnersv1.ReasonPartnerConfigNotReady, "PartnerConfig %q does not exist in this namespace", name)
			}
			return nil, fmt.Errorf("cannot get PartnerConfig %s: %w", name, err)
		}
		return r.ForPartnerConfig(ctx, pc)
	case partnersv1.KindClusterPartnerConfig:
		cpc := &partnersv1.ClusterPartnerConfig{}
		if err := r.Client.Get(ctx, types.NamespacedName{Name: name}, cpc); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("cannot get ClusterPartnerConfig %s: %w", name, err)
			}
			if name == partnersv1.DefaultPartnerConfigName && r.Default != nil {
				return r.Default, nil
			}
			return nil, errorf(partnersv1.ReasonPartnerConfigNotReady, "ClusterPartnerConfig %q does not exist", name)
		}
		ok, err := r.permits(ctx, cpc, namespace)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errorf(partnersv1.ReasonPartnerConfigNotPermitted,
				"ClusterPartnerConfig %q does not admit this namespace (its spec.namespaces and spec.namespaceSelector)", name)
		}
		return r.ForClusterPartnerConfig(ctx, cpc)
	default:
		return nil, errorf(partnersv1.ReasonPartnerConfigNotReady, "unknown config kind %q", kind)
	}
}

// Permits reports whether a ClusterPartnerConfig admits namespace: its spec.namespaces and
// spec.namespaceSelector, both empty meaning every namespace.
func (r *Resolver) permits(ctx context.Context, cpc *partnersv1.ClusterPartnerConfig, namespace string) (bool, error) {
	a, err := accessOf(cpc.Spec.Namespaces, cpc.Spec.NamespaceSelector, true, "spec.namespaceSelector")
	if err != nil {
		return false, err
	}
	return r.includes(ctx, a, namespace)
}

// includes reports whether namespace is in a, reading the Namespace only when its labels
// matter.
func (r *Resolver) includes(ctx context.Context, a Access, namespace string) (bool, error) {
	ns := &corev1.Namespace{}
	ns.Name = namespace
	if a.NeedsLabels() && !slices.Contains(a.Namespaces, namespace) {
		if err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("cannot get Namespace %s: %w", namespace, err)
		}
	}
	return a.Includes(ns), nil
}

// Grants reports whether cfg lets objects of namespace adopt or link accounts that no
// PartnerAccount here manages (Config.Grants), reading the Namespace when a selector needs
// its labels.
func (r *Resolver) Grants(ctx context.Context, cfg *Config, namespace string) (bool, error) {
	if cfg == nil {
		return false, nil
	}
	if cfg.Tenant {
		return namespace == cfg.Ref.Namespace, nil
	}
	return r.includes(ctx, cfg.AccountAccess, namespace)
}

// ForPartnerConfig returns the config a PartnerConfig makes, whoever asks: its apiURL must be
// on the allow-list (checked before anything is read), its Secret is in its own namespace.
func (r *Resolver) ForPartnerConfig(ctx context.Context, pc *partnersv1.PartnerConfig) (*Config, error) {
	r.setup()
	ref := Ref{Kind: partnersv1.KindPartnerConfig, Namespace: pc.Namespace, Name: pc.Name}
	endpoint, err := NormalizeURL(defaultURL(pc.Spec.APIURL))
	if err != nil {
		return nil, errorf(partnersv1.ReasonAPIURLNotAllowed, "%v", err)
	}
	if !slices.Contains(r.AllowedAPIURLs, endpoint) {
		return nil, errorf(partnersv1.ReasonAPIURLNotAllowed,
			"apiURL %s is not on the operator's allow-list (--allowed-api-urls); ask an administrator", endpoint)
	}
	cfg := &Config{Ref: ref, Endpoint: endpoint, Name: pc.Namespace + "/" + pc.Name, Tenant: true}
	s := pc.Spec.APIKeySecretRef
	return r.finish(ctx, cfg, pc.Spec.PartnerConfigLimits, types.NamespacedName{Namespace: pc.Namespace, Name: s.Name}, s.Key,
		fmt.Sprintf("Secret %s key %q", s.Name, s.Key))
}

// ForClusterPartnerConfig returns the config a ClusterPartnerConfig makes, without checking
// which namespace asks (For does).
func (r *Resolver) ForClusterPartnerConfig(ctx context.Context, cpc *partnersv1.ClusterPartnerConfig) (*Config, error) {
	r.setup()
	// The messages of a ClusterPartnerConfig reach tenants through For: they name neither its
	// Secret's namespace nor its URL (the admin finds both in the spec).
	endpoint, err := NormalizeURL(defaultURL(cpc.Spec.APIURL))
	if err != nil {
		return nil, errorf(partnersv1.ReasonAPIURLNotAllowed, "ClusterPartnerConfig %q: spec.apiURL is not an absolute http(s) URL", cpc.Name)
	}
	cfg := &Config{Ref: Ref{Kind: partnersv1.KindClusterPartnerConfig, Name: cpc.Name}, Endpoint: endpoint, Name: cpc.Name}
	if aa := cpc.Spec.AccountAccess; aa != nil {
		if cfg.AccountAccess, err = accessOf(aa.Namespaces, aa.NamespaceSelector, false, "spec.accountAccess.namespaceSelector"); err != nil {
			return nil, err
		}
	}
	s := cpc.Spec.APIKeySecretRef
	return r.finish(ctx, cfg, cpc.Spec.PartnerConfigLimits, types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, s.Key,
		fmt.Sprintf("ClusterPartnerConfig %q: the key Secret (spec.apiKeySecretRef)", cpc.Name))
}

// defaultURL is apiURL, or the public API when it is empty.
func defaultURL(apiURL string) string {
	if strings.TrimSpace(apiURL) == "" {
		return fifteenth.DefaultBaseURL
	}
	return apiURL
}

// finish reads the key and gives cfg its client, reusing the cached one when nothing changed.
// where names the key in messages.
func (r *Resolver) finish(ctx context.Context, cfg *Config, limits partnersv1.PartnerConfigLimits, secret types.NamespacedName, key, where string) (*Config, error) {
	createRate, err := parseRate(limits.AccountCreateLimit, "spec.accountCreateLimit")
	if err != nil {
		return nil, err
	}
	linkRate, err := parseRate(limits.LoginLinkLimit, "spec.loginLinkLimit")
	if err != nil {
		return nil, err
	}
	apiKey, err := r.key(ctx, secret, key, where)
	if err != nil {
		return nil, err
	}
	cfg.Fingerprint = Fingerprint(apiKey)
	sig := cfg.Endpoint + " " + createRate.String() + " " + linkRate.String()

	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.clients[cfg.Ref]; b != nil && b.sig == sig && b.fingerprint == cfg.Fingerprint {
		cfg.API = b.api
		return cfg, nil
	}
	o := r.ClientOptions
	if r.Observers != nil {
		o.ObserveRequest, o.ObserveRateLimited = r.Observers(cfg.Ref.String())
	}
	o.BaseURL, o.Key = cfg.Endpoint, fifteenth.StaticKey(apiKey)
	o.AccountCreateRate, o.LoginLinkRate = createRate, linkRate
	o.AccountCreateLimiter = r.Limiters.Creations(cfg.Fingerprint, createRate)
	o.LoginLinkLimiter = r.Limiters.LoginLinks(cfg.Endpoint, linkRate)
	c, err := fifteenth.New(o)
	if err != nil {
		if cfg.Tenant {
			return nil, errorf(partnersv1.ReasonAPIURLNotAllowed, "%v", err)
		}
		return nil, errorf(partnersv1.ReasonAPIURLNotAllowed, "ClusterPartnerConfig %q: spec.apiURL must be https (plain http only to a loopback host)", cfg.Ref.Name)
	}
	r.clients[cfg.Ref] = &built{sig: sig, fingerprint: cfg.Fingerprint, api: c}
	cfg.API = c
	return cfg, nil
}

// Forget drops the cached client of a config that was deleted.
func (r *Resolver) Forget(ref Ref) {
	r.setup()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clients, ref)
}

func parseRate(s, field string) (fifteenth.Rate, error) {
	if strings.TrimSpace(s) == "" {
		return fifteenth.Rate{}, nil // the client's default
	}
	rate, err := fifteenth.ParseRate(s)
	if err != nil {
		return fifteenth.Rate{}, errorf(partnersv1.ReasonPartnerConfigNotReady, "%s: %v", field, err)
	}
	return rate, nil
}

// key reads the API key from the Secret, through the TTL cache; where names it in messages.
func (r *Resolver) key(ctx context.Context, secret types.NamespacedName, key, where string) (string, error) {
	data, found, err := r.readSecret(ctx, secret)
	if err != nil {
		return "", err
	}
	if !found {
		return "", errorf(partnersv1.ReasonSecretNotFound, "%s: the Secret does not exist", where)
	}
	raw, ok := data[key]
	if !ok {
		return "", errorf(partnersv1.ReasonSecretNotFound, "%s: the Secret has no such key", where)
	}
	apiKey := strings.TrimSpace(string(raw))
	if e := validateKey(apiKey); e != nil {
		return "", errorf(e.Reason, "%s: %s", where, e.Message)
	}
	return apiKey, nil
}

// readSecret returns a Secret's data, read live at most once per TTL.
func (r *Resolver) readSecret(ctx context.Context, name types.NamespacedName) (map[string][]byte, bool, error) {
	now := r.Now()
	r.mu.Lock()
	if s := r.secrets[name]; s != nil && now.Sub(s.at) < r.TTL() && !now.Before(s.at) {
		r.mu.Unlock()
		return s.data, s.found, nil
	}
	r.mu.Unlock()

	r.secretReads.Add(1)
	sec := &corev1.Secret{}
	read := &secretRead{at: now}
	if err := r.SecretReader.Get(ctx, name, sec); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, false, fmt.Errorf("cannot read the key Secret: %w", err)
		}
	} else {
		read.found, read.data = true, sec.Data
	}
	r.mu.Lock()
	r.secrets[name] = read
	r.mu.Unlock()
	return read.data, read.found, nil
}

// Package partnerconfig resolves the PartnerConfig or ClusterPartnerConfig an object uses into
// an API client: which endpoint, which key, which limits, and which namespaces it serves.
package partnerconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// KeyPrefix starts every partner API key.
const KeyPrefix = "15th_"

// Ref identifies a config: Kind PartnerConfig (with its Namespace) or ClusterPartnerConfig.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

// String is Kind/name or Kind/namespace/name.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// DefaultRef is the config of objects that name none.
var DefaultRef = Ref{Kind: partnersv1.KindClusterPartnerConfig, Name: partnersv1.DefaultPartnerConfigName}

// Error says why a config cannot serve an object. Reason is one of the API's reasons
// (partnersv1.ReasonPartnerConfigNotPermitted, ReasonAPIURLNotAllowed, ReasonSecretNotFound,
// ReasonKeyInvalid, ReasonPartnerConfigNotReady); Message is fit for the object's condition:
// it names no object of another namespace and never holds the key. Such an error is settled
// until the config, its Secret or the namespace changes; any other error of the resolver is
// transient (the API server could not be read).
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// ReasonOf returns the reason of an *Error in err's chain.
func ReasonOf(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

func errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Access is a set of namespaces: all of them, some by name, or those a selector matches.
type Access struct {
	All        bool
	Namespaces []string
	// Selector, when not nil, adds the namespaces whose labels match.
	Selector labels.Selector
}

// Includes reports whether ns is in the set. A nil namespace is in no set but All.
func (a Access) Includes(ns *corev1.Namespace) bool {
	if a.All {
		return true
	}
	if ns == nil {
		return false
	}
	if slices.Contains(a.Namespaces, ns.Name) {
		return true
	}
	return a.Selector != nil && a.Selector.Matches(labels.Set(ns.Labels))
}

// NeedsLabels reports whether Includes may look at a namespace's labels, i.e. whether the
// caller must read the Namespace rather than only know its name.
func (a Access) NeedsLabels() bool { return !a.All && a.Selector != nil }

// ParseAccountAccess reads the --account-access-namespaces flag: a comma list of namespaces,
// `*` for all of them, empty for none.
func ParseAccountAccess(list string) Access {
	var a Access
	for _, ns := range strings.Split(list, ",") {
		switch ns = strings.TrimSpace(ns); ns {
		case "":
		case "*":
			a.All = true
		default:
			a.Namespaces = append(a.Namespaces, ns)
		}
	}
	return a
}

// accessOf builds an Access from names and a selector; both empty means all when
// emptyMeansAll, else none.
func accessOf(names []string, sel *metav1.LabelSelector, emptyMeansAll bool, field string) (Access, error) {
	if len(names) == 0 && sel == nil {
		return Access{All: emptyMeansAll}, nil
	}
	a := Access{Namespaces: names}
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return Access{}, errorf(partnersv1.ReasonPartnerConfigNotReady, "%s is not a valid label selector: %v", field, err)
		}
		a.Selector = s
	}
	return a, nil
}

// Config is the effective config of an object: the client to call the API with and what the
// config allows.
type Config struct {
	// Ref is the config object (DefaultRef for the flag-built default).
	Ref Ref
	// API calls the config's endpoint with its key.
	API fifteenth.API
	// Endpoint is the normalised API base URL (see NormalizeURL). Claims, elections and the
	// per-account link budget are per (Endpoint, account): two configs pointing at one API
	// share them, two APIs never interfere.
	Endpoint string
	// Fingerprint is a short hash of the key (see Fingerprint), never the key.
	Fingerprint string
	// Name labels metrics: the ClusterPartnerConfig's name, or namespace/name of a
	// PartnerConfig ("default" for the flag-built default).
	Name string
	// Tenant is true for a namespaced PartnerConfig: the tenant's own key, whose namespace may
	// use every account the key reaches without a grant.
	Tenant bool
	// AccountAccess grants the use of accounts that no PartnerAccount here manages (adoption
	// by spec.accountID, links by accountID): ClusterPartnerConfig.spec.accountAccess, or the
	// flag --account-access-namespaces for the default. Default: nobody.
	AccountAccess Access
}

// Grants reports whether objects of namespace ns may adopt or link accounts that no
// PartnerAccount here manages with this config. A PartnerConfig grants its own namespace.
// ns needs its labels only when AccountAccess.NeedsLabels().
func (c *Config) Grants(ns *corev1.Namespace) bool {
	if c == nil || ns == nil {
		return false
	}
	if c.Tenant {
		return ns.Name == c.Ref.Namespace
	}
	return c.AccountAccess.Includes(ns)
}

// NewDefault is the config the manager's flags make (used when no ClusterPartnerConfig named
// "default" exists): api built from --api-url and the flag key, its endpoint (NormalizeURL of
// --api-url), the key's fingerprint, and the --account-access-namespaces list.
func NewDefault(api fifteenth.API, endpoint, fingerprint, accountAccess string) *Config {
	return &Config{Ref: DefaultRef, API: api, Endpoint: endpoint, Fingerprint: fingerprint,
		Name: partnersv1.DefaultPartnerConfigName, AccountAccess: ParseAccountAccess(accountAccess)}
}

// NormalizeURL returns the API base URL in the form that identifies an endpoint: scheme and
// host in lower case, no trailing slash, no default port. It refuses URLs that are not
// absolute http(s) URLs or that carry credentials, a query or a fragment.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("api url %q is not an absolute URL", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("api url %q: scheme must be https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("api url %q must not carry credentials, a query or a fragment", raw)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// ParseAllowedAPIURLs reads the --allowed-api-urls flag, a comma list of API base URLs that a
// namespaced PartnerConfig may use, normalised. Empty means the public API only.
func ParseAllowedAPIURLs(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := NormalizeURL(s)
		if err != nil {
			return nil, fmt.Errorf("--allowed-api-urls: %w", err)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		out = []string{fifteenth.DefaultBaseURL}
	}
	return out, nil
}

// Fingerprint is the first 12 hex digits of the key's SHA-256: enough to tell keys apart in
// a status, useless to recover the key.
func Fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:12]
}

// ValidateKey checks that key (already trimmed of surrounding white space) looks like a
// partner key: not empty, starting with KeyPrefix, and without white space or control
// characters. The error (an *Error with reason KeyInvalid) never quotes the key.
func ValidateKey(key string) error {
	if e := validateKey(key); e != nil {
		return e
	}
	return nil
}

func validateKey(key string) *Error {
	switch {
	case key == "":
		return errorf(partnersv1.ReasonKeyInvalid, "the key is empty")
	case !strings.HasPrefix(key, KeyPrefix) || len(key) == len(KeyPrefix):
		return errorf(partnersv1.ReasonKeyInvalid, "the key is not a partner API key (those start with %s)", KeyPrefix)
	case strings.IndexFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return errorf(partnersv1.ReasonKeyInvalid, "the key contains white space or control characters")
	}
	return nil
}

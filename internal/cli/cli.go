// Package cli is the kubectl plugin `kubectl fifteenth` (binary kubectl-fifteenth): the status
// of a PartnerAccount or LoginLink, renewal requests, and the version. It never reads a Secret's
// data: Secrets are read as metadata only, so no link can reach its output.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Options are where the command writes, and its clock (time.Now when nil).
type Options struct {
	// Out receives the command's output, ErrOut its warnings.
	Out, ErrOut io.Writer
	// Now is the clock: relative times, the renewal request's time and the hourly budget.
	Now func() time.Time
	// WrapTransport, when set, wraps the HTTP transport to the API server (tests record
	// what the plugin receives with it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// env is what every subcommand uses: the output, the clock and the cluster's client config.
type env struct {
	out, errOut io.Writer
	now         func() time.Time
	wrap        func(http.RoundTripper) http.RoundTripper
	config      clientcmd.ClientConfig
}

// NewCommand returns the root command, kubectl-fifteenth, with the kubectl flags that choose a
// cluster and namespace (--kubeconfig, --context, -n...).
func NewCommand(o Options) *cobra.Command {
	e := &env{out: o.Out, errOut: o.ErrOut, now: o.Now, wrap: o.WrapTransport}
	if e.now == nil {
		e.now = time.Now
	}
	root := &cobra.Command{
		Use:   "kubectl-fifteenth",
		Short: "Inspect and renew fifteenth-operator's PartnerAccounts and LoginLinks",
		Long: `kubectl fifteenth shows what fifteenth-operator does with a PartnerAccount or a LoginLink
(the account, its users, who holds each user, each link's Secret, expiry and renewal, the
Events, what to do about a failure) and asks it to renew links. It never prints a link: it
reads Secrets' metadata only.`,
		SilenceUsage: true,
		// kubectl runs the plugin kubectl-fifteenth as `kubectl fifteenth`: help says so.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl fifteenth"},
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.DefaultClientConfig = &clientcmd.DefaultClientConfig
	overrides := &clientcmd.ConfigOverrides{}
	flags := root.PersistentFlags()
	flags.StringVar(&rules.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file to use")
	clientcmd.BindOverrideFlags(overrides, flags, clientcmd.RecommendedConfigOverrideFlags(""))
	e.config = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	root.AddCommand(newStatusCommand(e), newRenewCommand(e), newVersionCommand(e))
	return root
}

// restConfig is the cluster's client configuration.
func (e *env) restConfig() (*rest.Config, error) {
	cfg, err := e.config.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cannot load the kubeconfig: %w", err)
	}
	if e.wrap != nil {
		cfg.Wrap(e.wrap)
	}
	return cfg, nil
}

// client returns a client for the cluster and the namespace that -n or the kubeconfig chose.
func (e *env) client() (client.Client, string, error) {
	cfg, err := e.restConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := e.config.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("cannot tell the namespace: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := partnersv1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("cannot reach the cluster: %w", err)
	}
	return c, ns, nil
}

// Kinds the commands accept.
const (
	kindPartnerAccount = "PartnerAccount"
	kindLoginLink      = "LoginLink"
)

// errKind says which kinds are accepted.
var errKind = errors.New("the kind must be partneraccount (pa) or loginlink (ll)")

// parseKind accepts kubectl's spellings of the two kinds: singular, plural, short name, any
// case, optionally with the group.
func parseKind(s string) (string, error) {
	k := strings.ToLower(s)
	k = strings.TrimSuffix(k, "."+partnersv1.GroupVersion.Group)
	switch k {
	case "partneraccount", "partneraccounts", "pa":
		return kindPartnerAccount, nil
	case "loginlink", "loginlinks", "ll":
		return kindLoginLink, nil
	}
	return "", fmt.Errorf("%q: %w", s, errKind)
}

// splitRef parses "kind/name" (ok false when s has no slash).
func splitRef(s string) (kind, name string, ok bool, err error) {
	k, n, found := strings.Cut(s, "/")
	if !found {
		return "", "", false, nil
	}
	if kind, err = parseKind(k); err != nil {
		return "", "", true, err
	}
	if n == "" {
		return "", "", true, fmt.Errorf("%q: no name after the slash", s)
	}
	return kind, n, true, nil
}

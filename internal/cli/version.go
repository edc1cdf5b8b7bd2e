package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/fifteenth/fifteenth-operator/internal/cli.Version=v1.2.3" (make build
// sets it from git describe). Empty: the module version or VCS revision Go recorded.
var Version = ""

// versionTimeout bounds the questions version asks the cluster.
const versionTimeout = 10 * time.Second

// pluginVersion is Version, else what the build info says.
func pluginVersion() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}

// crdNames are the operator's CustomResourceDefinitions.
var crdNames = []string{"clusterpartnerconfigs", "loginlinks", "partneraccounts", "partnerconfigs"}

func newVersionCommand(e *env) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and, when the cluster answers, its version and the operator's API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(e.out, "kubectl-fifteenth: %s (%s)\n", pluginVersion(), runtime.Version())
			if clientOnly {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), versionTimeout)
			defer cancel()
			if err := e.serverVersion(ctx); err != nil {
				fmt.Fprintf(e.errOut, "Warning: cluster not reachable: %v\n", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "Print the plugin's version only")
	return cmd
}

// serverVersion prints the cluster's version, whether it serves the operator's API, and the
// controller-gen version of each CRD (as far as the user may read them).
func (e *env) serverVersion(ctx context.Context) error {
	cfg, err := e.restConfig()
	if err != nil {
		return err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = versionTimeout
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	sv, err := dc.ServerVersion()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Kubernetes: %s\n", sv.GitVersion)
	gv := partnersv1.GroupVersion.String()
	res, err := dc.ServerResourcesForGroupVersion(gv)
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(e.out, "%s: not served (the CRDs are not installed: make install, or the Helm chart)\n", gv)
		return nil
	case err != nil:
		fmt.Fprintf(e.out, "%s: unknown (%v)\n", gv, err)
		return nil
	}
	var kinds []string
	for _, r := range res.APIResources {
		if !strings.Contains(r.Name, "/") {
			kinds = append(kinds, r.Kind)
		}
	}
	slices.Sort(kinds)
	fmt.Fprintf(e.out, "%s: served (%s)\n", gv, strings.Join(kinds, ", "))
	c, _, err := e.client()
	if err != nil {
		return err
	}
	for _, name := range crdNames {
		crd := &metav1.PartialObjectMetadata{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		full := name + "." + partnersv1.GroupVersion.Group
		if err := c.Get(ctx, client.ObjectKey{Name: full}, crd); err != nil {
			fmt.Fprintf(e.out, "CRD %s: cannot read (%s)\n", full, reasonOf(err))
			continue
		}
		fmt.Fprintf(e.out, "CRD %s: controller-gen %s\n", full, orDash(crd.Annotations["controller-gen.kubebuilder.io/version"]))
	}
	return nil
}

// Package testenv starts the test control plane (etcd and kube-apiserver built by
// hack/setup-envtest.sh, and optionally kube-controller-manager) with the operator's CRDs
// installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the version of the test control plane.
const K8sVersion = "1.34.4"

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns KUBEBUILDER_ASSETS, or the directory hack/setup-envtest.sh builds into.
func AssetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin", "k8s", fmt.Sprintf("%s-%s-%s", K8sVersion, runtime.GOOS, runtime.GOARCH))
}

// Start starts a control plane with the CRDs of config/crd/bases, without
// kube-controller-manager. Stop it with env.Stop() (or Stop(env)).
func Start() (*envtest.Environment, *rest.Config, error) {
	return StartWith(Options{CRDs: true})
}

// Options tune StartWith.
type Options struct {
	// CRDs installs the CRDs of config/crd/bases.
	CRDs bool
	// ControllerManager runs kube-controller-manager (ControllerManagerControllers: the garbage
	// collector, namespace deletion, Deployments and ReplicaSets...) against the control plane,
	// as a real cluster does; StartWith returns once its garbage collector works. Stop it with
	// the control plane through Stop(env).
	ControllerManager bool
	// AdmissionPlugins are enabled in kube-apiserver besides its defaults
	// (--enable-admission-plugins), e.g. OwnerReferencesPermissionEnforcement.
	AdmissionPlugins []string
}

// StartWith starts a control plane. Stop it with Stop(env) (env.Stop() when
// o.ControllerManager is false will do).
func StartWith(o Options) (*envtest.Environment, *rest.Config, error) {
	assets := AssetsDir()
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest` (or hack/setup-envtest.sh) first", assets)
	}
	// kube-apiserver drains its watches before it exits; envtest's default of 20 s is short
	// when a manager holds many (the fault suite restarts the API server).
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStopTimeout: 2 * time.Minute}
	if o.CRDs {
		env.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
	if len(o.AdmissionPlugins) > 0 {
		env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", strings.Join(o.AdmissionPlugins, ","))
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, err
	}
	if o.ControllerManager {
		if err := startControllerManager(env, cfg, assets); err != nil {
			_ = env.Stop()
			return nil, nil, err
		}
	}
	// Tests create many objects quickly; the default client limits would throttle them.
	cfg.QPS, cfg.Burst = 500, 1000
	return env, cfg, nil
}

// WriteAdminKubeconfig provisions a cluster-admin user and writes its kubeconfig to path,
// atomically: a reader polling for the file never sees half of it.
func WriteAdminKubeconfig(env *envtest.Environment, path string) error {
	u, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, kc, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteTokenKubeconfig writes to path a kubeconfig for the cluster of the admin kubeconfig
// that authenticates with token (a ServiceAccount's: RBAC then applies to its user).
func WriteTokenKubeconfig(admin, path, token string) error {
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return err
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		return fmt.Errorf("%s: no current context", admin)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters["c"] = cfg.Clusters[ctx.Cluster]
	out.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	out.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	out.CurrentContext = "sa"
	return clientcmd.WriteToFile(*out, path)
}

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControllerManagerControllers are the kube-controller-manager controllers StartWith runs
// when Options.ControllerManager is set: garbage collection (ownerReferences, background and
// foreground deletion), namespace deletion, Deployments and their ReplicaSets, default
// ServiceAccounts and their tokens, and the aggregation of ClusterRoles.
var ControllerManagerControllers = []string{
	"garbage-collector-controller",
	"namespace-controller",
	"deployment-controller",
	"replicaset-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"clusterrole-aggregation-controller",
}

// controllerManagerReady bounds the wait for kube-controller-manager's garbage collector to
// act the first time (it starts after its discovery of every resource).
const controllerManagerReady = 2 * time.Minute

// controllerManager is a kube-controller-manager child process.
type controllerManager struct {
	cmd  *exec.Cmd
	dir  string
	log  string
	done chan struct{}
	err  error // the process's exit, once done is closed
}

var (
	kcmMu sync.Mutex
	kcms  = map[*envtest.Environment]*controllerManager{}
)

// Stop stops what StartWith started for env: kube-controller-manager first (when
// Options.ControllerManager was set), then the control plane. Prefer it to env.Stop(), which
// leaves kube-controller-manager running until the process exits.
func Stop(env *envtest.Environment) error {
	kcmMu.Lock()
	kcm := kcms[env]
	delete(kcms, env)
	kcmMu.Unlock()
	var errs []error
	if kcm != nil {
		errs = append(errs, kcm.stop())
	}
	errs = append(errs, env.Stop())
	return errors.Join(errs...)
}

// ControllerManagerLog returns what env's kube-controller-manager logged so far ("" when it
// runs none), for a failing test to show.
func ControllerManagerLog(env *envtest.Environment) string {
	kcmMu.Lock()
	kcm := kcms[env]
	kcmMu.Unlock()
	if kcm == nil {
		return ""
	}
	b, _ := os.ReadFile(kcm.log)
	return string(b)
}

// startControllerManager runs kube-controller-manager from assets against env with an admin
// kubeconfig, and waits until its garbage collector deletes a probe object.
func startControllerManager(env *envtest.Environment, cfg *rest.Config, assets string) error {
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no kube-controller-manager in %s: run `make envtest` (or hack/setup-envtest.sh) first", assets)
	}
	dir, err := os.MkdirTemp("", "kube-controller-manager")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := WriteAdminKubeconfig(env, kubeconfig); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	rootCA := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(rootCA, cfg.CAData, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(ControllerManagerControllers, ","),
		"--leader-elect=false",
		// No serving port: readiness is proven by the garbage collector at work instead.
		"--secure-port=0",
		// The ServiceAccount tokens are signed with the key kube-apiserver verifies them with.
		"--service-account-private-key-file=" + filepath.Join(env.ControlPlane.APIServer.CertDir, "sa-signer.key"),
		"--root-ca-file=" + rootCA,
		"--v=2",
	}
	logPath := filepath.Join(dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath) //nolint:gosec // in our own temporary directory
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	cmd := exec.CommandContext(context.Background(), bin, args...) //nolint:gosec // the binary hack/setup-envtest.sh built
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Never outlive the test binary, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		_ = os.RemoveAll(dir)
		return fmt.Errorf("cannot start kube-controller-manager: %w", err)
	}
	kcm := &controllerManager{cmd: cmd, dir: dir, log: logPath, done: make(chan struct{})}
	go func() {
		kcm.err = cmd.Wait()
		_ = logFile.Close()
		close(kcm.done)
	}()
	if err := kcm.waitReady(cfg); err != nil {
		b, _ := os.ReadFile(logPath) //nolint:gosec // in our own temporary directory
		_ = kcm.stop()
		return fmt.Errorf("kube-controller-manager: %w; its log:\n%s", err, tail(string(b), 60))
	}
	kcmMu.Lock()
	kcms[env] = kcm
	kcmMu.Unlock()
	return nil
}

// waitReady creates a ConfigMap owned by another, deletes the owner, and waits until the
// garbage collector deleted the dependent: then the controllers have synced their caches.
func (k *controllerManager) waitReady(cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), controllerManagerReady)
	defer cancel()
	name := "kcm-probe-" + rand.String(6)
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault}}
	if err := c.Create(ctx, owner); err != nil {
		return err
	}
	dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-dependent", Namespace: metav1.NamespaceDefault,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}}}}
	if err := c.Create(ctx, dependent); err != nil {
		return err
	}
	if err := c.Delete(ctx, owner, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.Get(ctx, client.ObjectKeyFromObject(dependent), &corev1.ConfigMap{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-k.done:
			if k.err == nil {
				return errors.New("exited with status 0 before it was ready")
			}
			return fmt.Errorf("exited before it was ready: %w", k.err)
		case <-ctx.Done():
			return fmt.Errorf("its garbage collector did not delete a dependent within %s (last read: %w)", controllerManagerReady, err)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, and SIGKILL when the process has not exited after 10 s.
func (k *controllerManager) stop() error {
	defer func() { _ = os.RemoveAll(k.dir) }()
	select {
	case <-k.done:
		return nil // exited already (the test control plane went away first)
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	_ = k.cmd.Process.Signal(syscall.SIGCONT) // in case a test left it paused
	select {
	case <-k.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = k.cmd.Process.Kill()
	<-k.done
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PauseControllerManager suspends env's kube-controller-manager (SIGSTOP) until resume is
// called: a test sees the cluster as it is before a controller acts, e.g. a namespace
// Terminating whose content the namespace controller did not delete yet. resume is safe to
// call more than once.
func PauseControllerManager(env *envtest.Environment) (resume func(), err error) {
	kcmMu.Lock()
	kcm := kcms[env]
	kcmMu.Unlock()
	if kcm == nil {
		return nil, errors.New("no kube-controller-manager runs for this control plane (Options.ControllerManager)")
	}
	if err := kcm.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { _ = kcm.cmd.Process.Signal(syscall.SIGCONT) }) }, nil
}

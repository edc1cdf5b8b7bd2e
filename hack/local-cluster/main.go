// Command local-cluster runs the test control plane (etcd, kube-apiserver and
// kube-controller-manager built by hack/setup-envtest.sh) on loopback with the operator's
// CRDs, writes an admin kubeconfig, and stays up until SIGINT or SIGTERM.
// hack/local-cluster.sh drives it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

func main() {
	dir := flag.String("dir", ".demo/cluster", "directory for the kubeconfig")
	crds := flag.Bool("crds", true, "install the operator's CRDs")
	kcm := flag.Bool("controller-manager", true,
		"run kube-controller-manager (garbage collector, namespace deletion, Deployments...), as a real cluster does")
	flag.Parse()
	if err := run(*dir, testenv.Options{CRDs: *crds, ControllerManager: *kcm}); err != nil {
		fmt.Fprintln(os.Stderr, "local-cluster:", err)
		os.Exit(1)
	}
}

func run(dir string, o testenv.Options) error {
	env, _, err := testenv.StartWith(o)
	if err != nil {
		return err
	}
	defer func() { _ = testenv.Stop(env) }()
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return err
	}
	if err := testenv.WriteAdminKubeconfig(env, path); err != nil {
		return err
	}
	fmt.Println("kubeconfig", path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = os.Remove(path)
	return nil
}

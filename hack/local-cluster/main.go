// Command local-cluster runs the test control plane (etcd and kube-apiserver built by
// hack/setup-envtest.sh) on loopback with the operator's CRDs, writes an admin kubeconfig,
// and stays up until SIGINT or SIGTERM. hack/local-cluster.sh drives it.
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
	flag.Parse()
	if err := run(*dir, *crds); err != nil {
		fmt.Fprintln(os.Stderr, "local-cluster:", err)
		os.Exit(1)
	}
}

func run(dir string, crds bool) error {
	env, _, err := testenv.StartWith(testenv.Options{CRDs: crds})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
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

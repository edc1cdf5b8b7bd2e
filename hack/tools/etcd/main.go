// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 so that
// envtest has an etcd binary on machines that cannot download one.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }

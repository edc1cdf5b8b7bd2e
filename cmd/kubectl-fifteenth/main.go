// Command kubectl-fifteenth is the kubectl plugin `kubectl fifteenth`: the status of a
// PartnerAccount or LoginLink, renewal requests, and the version. The logic is in internal/cli.
package main

import (
	"os"

	"github.com/fifteenth/fifteenth-operator/internal/cli"
)

func main() {
	if err := cli.NewCommand(cli.Options{Out: os.Stdout, ErrOut: os.Stderr}).Execute(); err != nil {
		os.Exit(1)
	}
}

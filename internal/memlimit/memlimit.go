// Package memlimit gives the Go runtime a soft memory limit below the container's, so that
// the garbage collector works harder before the kernel's OOM killer acts (GOMEMLIMIT).
//
// The limit comes, in this order, from GOMEMLIMIT (applied by the runtime itself, left
// alone), from the MEMORY_LIMIT environment variable (the container's limits.memory in
// bytes, set by the downward API in config/manager and the chart), or from the cgroup's
// memory.max. The soft limit is Ratio of it. The rest is headroom: for what the runtime does
// not count (the binary's text, about 10 MiB above the soft limit in the benchmark), and so
// that a cache larger than planned makes the collector work harder, visibly (CPU, the
// go_gc_* metrics), well before the kernel kills the container.
package memlimit

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Ratio is the share of the container's limit given to the Go runtime: 179 MiB of 256 MiB.
const Ratio = 0.7

// EnvLimit names the variable holding the container's memory limit in bytes.
const EnvLimit = "MEMORY_LIMIT"

// cgroupMax is cgroup v2's memory limit of the container.
const cgroupMax = "/sys/fs/cgroup/memory.max"

// Source says where a limit came from.
type Source string

// The sources of a limit.
const (
	SourceNone       Source = ""
	SourceGOMEMLIMIT Source = "GOMEMLIMIT"
	SourceEnv        Source = EnvLimit
	SourceCgroup     Source = "cgroup"
)

// Decide returns the soft limit in bytes to set (0: none) and where the container's limit
// came from. getenv and readFile are os.Getenv and os.ReadFile outside tests.
func Decide(getenv func(string) string, readFile func(string) ([]byte, error)) (int64, Source, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, SourceGOMEMLIMIT, nil
	}
	if v := strings.TrimSpace(getenv(EnvLimit)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, SourceEnv, fmt.Errorf("%s=%q is not a positive number of bytes", EnvLimit, v)
		}
		return soft(n), SourceEnv, nil
	}
	b, err := readFile(cgroupMax)
	if err != nil {
		return 0, SourceNone, nil // not in a cgroup v2 container: no limit to follow
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, SourceNone, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, SourceCgroup, fmt.Errorf("%s holds %q", cgroupMax, v)
	}
	return soft(n), SourceCgroup, nil
}

func soft(limit int64) int64 { return int64(float64(limit) * Ratio) }

// Apply sets the runtime's soft memory limit from the container's, and returns what it set
// (0: nothing) and where the limit came from.
func Apply() (int64, Source, error) {
	n, src, err := Decide(os.Getenv, os.ReadFile)
	if err != nil || n == 0 {
		return 0, src, err
	}
	debug.SetMemoryLimit(n)
	return n, src, nil
}

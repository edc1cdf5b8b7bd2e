// Command fifteenth-sim serves the Fifteenth Partner API simulator (internal/fifteenth/sim).
// The first line it prints on stdout is "listening on http://HOST:PORT".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fifteenth-sim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fifteenth-sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address; 127.0.0.1:0 picks a free port")
	var keys []string
	fs.Func("api-key", "accepted partner API key (repeatable); default: any key starting with 15th_", func(s string) error {
		keys = append(keys, s)
		return nil
	})
	domains := fs.String("permitted-domains", strings.Join(sim.DefaultPermittedDomains, ","), "comma-separated redirect URL domains (subdomains included)")
	linkBase := fs.String("link-base-url", sim.DefaultLinkBaseURL, "base URL of generated login links")
	scale := fs.Float64("time-scale", 1, "API seconds that pass per real second (link expiry, rate windows, resets)")
	accountRate := fifteenth.DefaultAccountCreateRate
	linkRate := fifteenth.DefaultLoginLinkRate
	fs.Var(&accountRate, "account-rate", "account creations per key, in API time")
	fs.Var(&linkRate, "link-rate", "login links per account, in API time")
	latency := fs.Duration("latency", 0, "delay added to API answers (after their effect)")
	latencyRate := fs.Float64("latency-rate", 1, "fraction of API requests delayed by --latency")
	failRate := fs.Float64("fail-rate", 0, "fraction of API requests answered 500 before any effect")
	failAfter := fs.Float64("fail-after-commit-rate", 0, "fraction of API requests whose effect happens but whose answer is a 500")
	seed := fs.Uint64("seed", 0, "seed for fault injection (0: random)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for name, v := range map[string]float64{"fail-rate": *failRate, "fail-after-commit-rate": *failAfter, "latency-rate": *latencyRate} {
		if v < 0 || v > 1 {
			return fmt.Errorf("--%s must be between 0 and 1", name)
		}
	}
	if *scale <= 0 {
		return errors.New("--time-scale must be positive")
	}
	var permitted []string
	for _, d := range strings.Split(*domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			permitted = append(permitted, d)
		}
	}

	srv := sim.New(sim.Config{
		APIKeys: keys, PermittedDomains: permitted, LinkBaseURL: *linkBase, TimeScale: *scale,
		AccountRate: accountRate, LinkRate: linkRate, Seed: *seed,
		Faults: sim.Faults{FailRate: *failRate, FailAfterCommitRate: *failAfter,
			Latency: sim.Duration(*latency), LatencyRate: *latencyRate},
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	log.Printf("fifteenth-sim: time-scale %g, account-rate %s, link-rate %s, permitted domains %s",
		*scale, accountRate, linkRate, strings.Join(permitted, ","))

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

// Package metrics defines the operator's Prometheus metrics, registered in controller-runtime's
// registry. No label ever carries a link, a token, a key or an email.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// APIRequests counts calls to the Fifteenth API by route and HTTP status ("0": no answer).
	APIRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fifteenth_api_requests_total",
		Help: "Requests to the Fifteenth API by route and status code (0 when no answer arrived).",
	}, []string{"config", "route", "code"})
	// APIRequestDuration observes how long calls take.
	APIRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fifteenth_api_request_duration_seconds",
		Help:    "Duration of requests to the Fifteenth API by route.",
		Buckets: prometheus.DefBuckets,
	}, []string{"config", "route"})
	// RateLimitWait sums the time calls were held back by rate limits.
	RateLimitWait = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fifteenth_rate_limit_wait_seconds_total",
		Help: "Seconds calls were held back by a rate limit (client-side or a 429), by scope.",
	}, []string{"config", "scope"})
	// RolloutRestarts counts the restarts of LoginLinks' rollout restart targets, and the
	// attempts that failed, by namespace, kind and result (restarted, not_found, forbidden,
	// failed). No workload or LoginLink name: the namespace says where to look.
	RolloutRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fifteenth_rollout_restarts_total",
		Help: "Restarts of LoginLinks' rollout restart targets after a new link, and failed attempts, by namespace, kind and result.",
	}, []string{"namespace", "kind", "result"})
	// RateLimited counts calls held back by rate limits.
	RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fifteenth_rate_limited_total",
		Help: "Calls held back by a rate limit (client-side or a 429), by scope.",
	}, []string{"config", "scope"})
)

func init() {
	metrics.Registry.MustRegister(
		APIRequests, APIRequestDuration, RateLimitWait, RateLimited, RolloutRestarts)
}

// DefaultConfig is the config label of the flag-built default config's calls.
const DefaultConfig = "default"

// RequestObserver records the API exchanges of one partner config (its name, e.g.
// "ClusterPartnerConfig/default" or "PartnerConfig/team-a/key"); it fits
// fifteenth.Options.ObserveRequest.
func RequestObserver(config string) func(route string, code int, d time.Duration) {
	return func(route string, code int, d time.Duration) {
		APIRequests.WithLabelValues(config, route, strconv.Itoa(code)).Inc()
		APIRequestDuration.WithLabelValues(config, route).Observe(d.Seconds())
	}
}

// RateLimitObserver records the calls of one partner config held back by a rate limit; it
// fits fifteenth.Options.ObserveRateLimited.
func RateLimitObserver(config string) func(scope string, wait time.Duration) {
	return func(scope string, wait time.Duration) {
		RateLimited.WithLabelValues(config, scope).Inc()
		if wait > 0 {
			RateLimitWait.WithLabelValues(config, scope).Add(wait.Seconds())
		}
	}
}

// ObserveRequest records one API exchange of the default config.
func ObserveRequest(route string, code int, d time.Duration) {
	RequestObserver(DefaultConfig)(route, code, d)
}

// ObserveRateLimited records a call of the default config held back by a rate limit.
func ObserveRateLimited(scope string, wait time.Duration) {
	RateLimitObserver(DefaultConfig)(scope, wait)
}

// ObserveRolloutRestart counts one restart (result "restarted") or failed attempt of a
// rollout restart target.
func ObserveRolloutRestart(namespace, kind, result string) {
	RolloutRestarts.WithLabelValues(namespace, kind, result).Inc()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

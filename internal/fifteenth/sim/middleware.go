package sim

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// statusRecorder captures the status code for /_sim/stats.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// counted counts each request by route pattern and status code.
func (s *Server) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "/" || route == "" {
			route = "other"
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stats[route] == nil {
			s.stats[route] = map[int]int{}
		}
		s.stats[route][rec.code]++
	})
}

// buffer holds an answer so that faults can replace it after the effect happened.
type buffer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *buffer) Header() http.Header { return b.header }
func (b *buffer) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *buffer) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

type fault int

const (
	faultNone fault = iota
	faultRateLimit
	faultFail
	faultFailAfterCommit
)

// decide draws the faults of one API request.
func (s *Server) decide() (fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	var delay time.Duration
	if f.Latency > 0 && (f.LatencyRate <= 0 || s.rnd.Float64() < f.LatencyRate) {
		delay = time.Duration(f.Latency)
	}
	switch {
	case f.RateLimitNext > 0:
		s.faults.RateLimitNext--
		s.counts.FaultsInjected++
		return faultRateLimit, delay
	case f.FailRate > 0 && s.rnd.Float64() < f.FailRate:
		s.counts.FaultsInjected++
		return faultFail, delay
	case f.FailAfterCommitRate > 0 && s.rnd.Float64() < f.FailAfterCommitRate:
		s.counts.FaultsInjected++
		return faultFailAfterCommit, delay
	}
	return faultNone, delay
}

// authorized checks the bearer key and returns it.
func (s *Server) authorized(r *http.Request) (string, bool) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return "", false
	}
	s.mu.Lock()
	keys := s.keys
	s.mu.Unlock()
	if len(keys) > 0 {
		return key, slices.Contains(keys, key)
	}
	return key, strings.HasPrefix(key, KeyPrefix) && len(key) > len(KeyPrefix)
}

// apiCall is what the API middleware tells a handler about its request.
type apiCall struct {
	// key is the partner key that authenticated the request.
	key string
	// failAfterCommit is set when the answer will be replaced by a 500 after the effect: a
	// handler whose limit counts only successful requests must not count this one.
	failAfterCommit bool
}

// injectedRateLimitWait is how long an injected 429 asks the client to wait.
const injectedRateLimitWait = 2 * time.Second

// api wraps an API handler with stats, authentication and fault injection. limit names the
// route's rate limit, whose documented details an injected 429 carries.
func (s *Server) api(limit rateLimit, h func(http.ResponseWriter, *http.Request, apiCall)) http.Handler {
	return s.counted(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := s.authorized(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, fifteenth.CodeUnauthorized, "Missing or invalid API key", nil)
			return
		}
		f, delay := s.decide()
		switch f {
		case faultRateLimit:
			now := s.cfg.Now()
			s.rateLimited(w, limit, now, now.Add(injectedRateLimitWait))
			return
		case faultFail:
			internalError(w)
			return
		}
		buf := &buffer{header: http.Header{}}
		h(buf, r, apiCall{key: key, failAfterCommit: f == faultFailAfterCommit})
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f == faultFailAfterCommit {
			internalError(w)
			return
		}
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.code)
		_, _ = w.Write(buf.body.Bytes())
	}))
}

func internalError(w http.ResponseWriter) {
	writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "An internal error occurred", nil)
}

// retryAfter formats a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string { return strconv.Itoa(max(1, ceilSeconds(d))) }

// rateLimit names the limit of a route, for the details of its 429 answers.
type rateLimit int

const (
	limitNone          rateLimit = iota // undocumented: a 429 carries reset_at only
	limitAccountCreate                  // {limit, window_seconds, reset_at}
	limitLoginLink                      // {limit, window_minutes, reset_at}
)

// rateLimited answers 429 RATE_LIMIT_EXCEEDED with the documented message and details of the
// limit (from the configured rate), reset_at rounded up, so that a client waiting until then
// finds a free slot, and a Retry-After header that agrees with it. Real and injected 429s both
// use it.
func (s *Server) rateLimited(w http.ResponseWriter, limit rateLimit, now, reset time.Time) {
	reset = s.stampUp(reset)
	w.Header().Set("Retry-After", retryAfter(reset.Sub(now)))
	switch limit {
	case limitAccountCreate:
		secs := int(s.cfg.AccountRate.Per.Seconds())
		writeError(w, http.StatusTooManyRequests, fifteenth.CodeRateLimitExceeded,
			fmt.Sprintf("Rate limit exceeded. Please retry after %d seconds.", secs),
			map[string]any{"limit": s.cfg.AccountRate.N, "window_seconds": secs, "reset_at": Timestamp(reset)})
	case limitLoginLink:
		writeError(w, http.StatusTooManyRequests, fifteenth.CodeRateLimitExceeded, "Too many login link generation requests",
			map[string]any{"limit": s.cfg.LinkRate.N, "window_minutes": int(s.cfg.LinkRate.Per.Minutes()), "reset_at": Timestamp(reset)})
	default:
		writeError(w, http.StatusTooManyRequests, fifteenth.CodeRateLimitExceeded, "Rate limit exceeded",
			map[string]any{"reset_at": Timestamp(reset)})
	}
}

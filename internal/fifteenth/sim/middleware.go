package sim

import (
	"bytes"
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

// api wraps an API handler with stats, authentication and fault injection.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return s.counted(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := s.authorized(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, fifteenth.CodeUnauthorized, "Missing or invalid API key", nil)
			return
		}
		f, delay := s.decide()
		switch f {
		case faultRateLimit:
			reset := s.cfg.Now().Add(2 * time.Second)
			w.Header().Set("Retry-After", "2")
			writeError(w, http.StatusTooManyRequests, fifteenth.CodeRateLimitExceeded, "Rate limit exceeded (injected)",
				map[string]any{"reset_at": Timestamp(s.stamp(reset))})
			return
		case faultFail:
			internalError(w)
			return
		}
		buf := &buffer{header: http.Header{}}
		h(buf, r, key)
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

package sim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// User is a user of an account, as /_sim/accounts lists it.
type User struct {
	Email string `json:"email"`
	Role  string `json:"role"` // holder, spouse or user
	// ValidLinks counts the user's links that are valid now (the API keeps at most one).
	ValidLinks int `json:"valid_links"`
}

// Account is an account as /_sim/accounts lists it: no links, only their counts by state.
type Account struct {
	accountJSON
	Users []User         `json:"users"`
	Links map[string]int `json:"links"`
}

// LinkState is a link's state as /_sim/links/{token} reports it, without the token.
type LinkState struct {
	State       string    `json:"state"`
	AccountID   int64     `json:"account_id"`
	UserEmail   string    `json:"user_email"`
	Purpose     string    `json:"purpose"`
	RedirectURL string    `json:"redirect_url,omitempty"`
	CreatedAt   Timestamp `json:"created_at"`
	ExpiresAt   Timestamp `json:"expires_at"`
}

// Stats is what /_sim/stats reports.
type Stats struct {
	// Requests counts requests by route pattern (e.g. "POST /v1beta/accounts") and status code.
	Requests map[string]map[string]int `json:"requests"`
	counters
	Accounts int `json:"accounts"`
	Links    int `json:"links"`
}

func (s *Server) simAccounts(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	linkStates := map[int64]map[string]int{}
	valid := map[int64]map[string]int{} // by account and lower-cased user email
	for _, l := range s.links {
		if linkStates[l.AccountID] == nil {
			linkStates[l.AccountID] = map[string]int{}
			valid[l.AccountID] = map[string]int{}
		}
		st := l.state(now)
		linkStates[l.AccountID][st]++
		if st == StateValid {
			valid[l.AccountID][strings.ToLower(l.UserEmail)]++
		}
	}
	out := make([]Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		sa := Account{accountJSON: a.json(), Links: linkStates[a.ID], Users: []User{{Email: a.Email, Role: "holder"}}}
		if sa.Links == nil {
			sa.Links = map[string]int{}
		}
		if a.Spouse != nil {
			sa.Users = append(sa.Users, User{Email: a.Spouse.Email, Role: "spouse"})
		}
		for _, u := range a.Users {
			sa.Users = append(sa.Users, User{Email: u, Role: "user"})
		}
		for i := range sa.Users {
			sa.Users[i].ValidLinks = valid[a.ID][strings.ToLower(sa.Users[i].Email)]
		}
		out = append(out, sa)
	}
	slices.SortFunc(out, func(a, b Account) int { return int(a.ID - b.ID) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) simSetStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		a, ok := s.lookup(r)
		if !ok {
			accountNotFound(w, r)
			return
		}
		a.Status = status
		writeJSON(w, http.StatusOK, a.json())
	}
}

func (s *Server) simAddUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email *string `json:"email"`
	}
	if err := decodeBody(r, &req); err != nil {
		badJSON(w)
		return
	}
	fe := fieldErrors{}
	checkEmail(fe, "email", req.Email)
	if len(fe) > 0 {
		writeError(w, http.StatusBadRequest, fifteenth.CodeValidation, "Invalid request data", fe)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.lookup(r)
	if !ok {
		accountNotFound(w, r)
		return
	}
	if id, taken := s.byEmail[strings.ToLower(*req.Email)]; taken {
		writeError(w, http.StatusConflict, fifteenth.CodeDuplicateEmail, "An account with this email already exists",
			map[string]any{"email": *req.Email, "existing_account_id": id})
		return
	}
	a.Users = append(a.Users, *req.Email)
	s.byEmail[strings.ToLower(*req.Email)] = a.ID
	writeJSON(w, http.StatusCreated, map[string]any{"account_id": a.ID, "email": *req.Email})
}

func (s *Server) simLink(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[r.PathValue("token")]
	if !ok {
		writeError(w, http.StatusNotFound, "LINK_NOT_FOUND", "Login link not found", nil)
		return
	}
	writeJSON(w, http.StatusOK, LinkState{State: l.state(s.cfg.Now()), AccountID: l.AccountID, UserEmail: l.UserEmail,
		Purpose: l.Purpose, RedirectURL: l.RedirectURL, CreatedAt: Timestamp(l.CreatedAt), ExpiresAt: Timestamp(l.ExpiresAt)})
}

func (s *Server) simStats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: map[string]map[string]int{}, counters: s.counts, Accounts: len(s.accounts), Links: len(s.links)}
	for route, codes := range s.stats {
		st.Requests[route] = map[string]int{}
		for code, n := range codes {
			st.Requests[route][strconv.Itoa(code)] = n
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) simOutbox(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, append([]OutboxEntry{}, s.outbox...))
}

func (s *Server) simGetFaults(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.faults)
}

// simSetKeys replaces the accepted API keys at run time (a key rotation: the partner's old
// key stops working). An empty list accepts any key starting with 15th_.
func (s *Server) simSetKeys(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keys []string `json:"keys"`
	}
	if err := decodeBody(r, &req); err != nil {
		badJSON(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = req.Keys
	writeJSON(w, http.StatusOK, map[string]int{"keys": len(req.Keys)})
}

// simSetFaults replaces the fault settings at run time (fault suites use it for 429 bursts).
func (s *Server) simSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeBody(r, &f); err != nil || f.FailRate < 0 || f.FailRate > 1 ||
		f.FailAfterCommitRate < 0 || f.FailAfterCommitRate > 1 || f.LatencyRate < 0 || f.LatencyRate > 1 ||
		f.Latency < 0 || time.Duration(f.Latency) > time.Hour || f.RateLimitNext < 0 {
		badJSON(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	writeJSON(w, http.StatusOK, s.faults)
}

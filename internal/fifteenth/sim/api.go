package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

const maxNameLen = 50

type spouseJSON struct {
	ID                 int64      `json:"id"`
	Email              string     `json:"email"`
	FirstName          string     `json:"first_name"`
	LastName           string     `json:"last_name"`
	LoginLink          string     `json:"login_link,omitempty"`
	LoginLinkExpiresAt *Timestamp `json:"login_link_expires_at,omitempty"`
	Status             string     `json:"status"`
}

type accountJSON struct {
	ID                 int64       `json:"id"`
	Email              string      `json:"email"`
	FirstName          string      `json:"first_name"`
	LastName           string      `json:"last_name"`
	Status             string      `json:"status"`
	LoginLink          string      `json:"login_link,omitempty"`
	LoginLinkExpiresAt *Timestamp  `json:"login_link_expires_at,omitempty"`
	Spouse             *spouseJSON `json:"spouse,omitempty"`
	CreatedAt          Timestamp   `json:"created_at"`
}

func (a *account) json() accountJSON {
	out := accountJSON{ID: a.ID, Email: a.Email, FirstName: a.FirstName, LastName: a.LastName,
		Status: a.Status, CreatedAt: Timestamp(a.CreatedAt)}
	if a.Spouse != nil {
		out.Spouse = &spouseJSON{ID: a.Spouse.ID, Email: a.Spouse.Email, FirstName: a.Spouse.FirstName,
			LastName: a.Spouse.LastName, Status: a.Spouse.Status}
	}
	return out
}

type createRequest struct {
	Email     *string `json:"email"`
	FirstName *string `json:"first_name"`
	LastName  *string `json:"last_name"`
	Spouse    *struct {
		Email          *string `json:"email"`
		FirstName      *string `json:"first_name"`
		LastName       *string `json:"last_name"`
		SendInvitation *bool   `json:"send_invitation"`
	} `json:"spouse"`
}

// fieldErrors collects VALIDATION_ERROR details.
type fieldErrors map[string][]string

func (fe fieldErrors) add(field, msg string) { fe[field] = append(fe[field], msg) }

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	_, domain, ok := strings.Cut(s, "@")
	return ok && strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".")
}

func checkEmail(fe fieldErrors, field string, v *string) {
	switch {
	case v == nil || *v == "":
		fe.add(field, "This field is required")
	case !validEmail(*v):
		fe.add(field, "Invalid email format")
	}
}

func checkName(fe fieldErrors, field string, v *string) {
	switch {
	case v == nil || strings.TrimSpace(*v) == "":
		fe.add(field, "This field is required")
	case utf8.RuneCountInString(*v) > maxNameLen:
		fe.add(field, fmt.Sprintf("Must be at most %d characters", maxNameLen))
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		if err.Error() == "EOF" {
			return nil // an empty body is an empty object
		}
		return err
	}
	return nil
}

func badJSON(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, fifteenth.CodeValidation, "Invalid request data",
		map[string]any{"body": []string{"Must be a JSON object with fields of the documented types"}})
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, call apiCall) {
	apiKey := call.key
	var req createRequest
	if err := decodeBody(r, &req); err != nil {
		badJSON(w)
		return
	}
	fe := fieldErrors{}
	checkEmail(fe, "email", req.Email)
	checkName(fe, "first_name", req.FirstName)
	checkName(fe, "last_name", req.LastName)
	if sp := req.Spouse; sp != nil {
		checkEmail(fe, "spouse.email", sp.Email)
		checkName(fe, "spouse.first_name", sp.FirstName)
		checkName(fe, "spouse.last_name", sp.LastName)
		if sp.Email != nil && req.Email != nil && strings.EqualFold(*sp.Email, *req.Email) {
			fe.add("spouse.email", "Must differ from the primary account holder's email")
		}
	}
	if len(fe) > 0 {
		writeError(w, http.StatusBadRequest, fifteenth.CodeValidation, "Invalid request data", fe)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	per := s.apiDuration(s.cfg.AccountRate.Per)
	events := window(s.creates[apiKey], now, per)
	s.creates[apiKey] = events
	if len(events) >= s.cfg.AccountRate.N {
		s.rateLimited(w, limitAccountCreate, now, events[0].Add(per))
		return
	}
	emails := []string{*req.Email}
	if req.Spouse != nil {
		emails = append(emails, *req.Spouse.Email)
	}
	for _, e := range emails {
		if id, taken := s.byEmail[strings.ToLower(e)]; taken {
			writeError(w, http.StatusConflict, fifteenth.CodeDuplicateEmail, "An account with this email already exists",
				map[string]any{"email": e, "existing_account_id": id})
			return
		}
	}

	created := s.stamp(now)
	a := &account{ID: s.nextID, Email: *req.Email, FirstName: *req.FirstName, LastName: *req.LastName,
		Status: fifteenth.AccountActive, CreatedAt: created}
	s.nextID++
	s.accounts[a.ID] = a
	s.byEmail[strings.ToLower(a.Email)] = a.ID
	// CONTRACT.md does not say which creations count against the limit; the simulator counts
	// those that took effect (a 409 or a 400 created nothing). The client counts every request,
	// so it never counts fewer.
	s.creates[apiKey] = append(events, now)
	s.counts.AccountsCreated++

	expires := s.stamp(now.Add(s.apiDuration(accountLinkHours * time.Hour)))
	out := a.json()
	hl := s.newLink("partner-login", a.ID, a.Email, "initial_access", "", created, expires)
	out.LoginLink = s.linkURL(hl)
	out.LoginLinkExpiresAt = ptr(Timestamp(expires))
	if sp := req.Spouse; sp != nil {
		invite := sp.SendInvitation == nil || *sp.SendInvitation
		a.Spouse = &spouse{ID: s.nextID, Email: *sp.Email, FirstName: *sp.FirstName, LastName: *sp.LastName, Status: "pending"}
		s.nextID++
		if invite {
			a.Spouse.Status = "invited"
			s.outbox = append(s.outbox, OutboxEntry{Kind: "spouse_invitation", Recipient: a.Spouse.Email,
				Subject: "You have been invited to a Fifteenth account", AccountID: a.ID, SentAt: now.UTC()})
		}
		s.byEmail[strings.ToLower(a.Spouse.Email)] = a.ID
		sl := s.newLink("user-login", a.ID, a.Spouse.Email, "initial_access", "", created, expires)
		out.Spouse = a.json().Spouse
		out.Spouse.LoginLink = s.linkURL(sl)
		out.Spouse.LoginLinkExpiresAt = ptr(Timestamp(expires))
	}
	writeJSON(w, http.StatusCreated, out)
}

func ptr[T any](v T) *T { return &v }

// newLink records a link. Callers hold s.mu.
func (s *Server) newLink(kind string, accountID int64, user, purpose, redirect string, created, expires time.Time) *link {
	l := &link{Token: newToken(), Kind: kind, AccountID: accountID, UserEmail: user, Purpose: purpose,
		RedirectURL: redirect, CreatedAt: created, ExpiresAt: expires}
	s.links[l.Token] = l
	return l
}

func (s *Server) linkURL(l *link) string {
	return s.cfg.LinkBaseURL + "/auth/" + l.Kind + "/" + l.Token
}

// lookup finds the account named by the {id} path value. Callers hold s.mu.
func (s *Server) lookup(r *http.Request) (*account, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, false
	}
	a, ok := s.accounts[id]
	return a, ok
}

func accountNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fifteenth.CodeAccountNotFound, "Account not found",
		map[string]any{"account_id": r.PathValue("id")})
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, _ apiCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.lookup(r)
	if !ok {
		accountNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, a.json())
}

type linkRequest struct {
	UserEmail            *string          `json:"user_email"`
	ExpiryHours          *json.Number     `json:"expiry_hours"`
	Purpose              *string          `json:"purpose"`
	RedirectURL          *string          `json:"redirect_url"`
	SendNotification     *bool            `json:"send_notification"`
	NotificationSettings *json.RawMessage `json:"notification_settings"`
}

type notificationSettings struct {
	PartnerBranded      *bool   `json:"partner_branded"`
	CustomSubject       *string `json:"custom_subject"`
	CustomMessage       *string `json:"custom_message"`
	IncludeInstructions *bool   `json:"include_instructions"`
}

type linkJSON struct {
	LoginLink                string    `json:"login_link"`
	UserEmail                string    `json:"user_email"`
	ExpiresAt                Timestamp `json:"expires_at"`
	ExpiresInHours           int       `json:"expires_in_hours"`
	Purpose                  string    `json:"purpose"`
	RedirectURL              *string   `json:"redirect_url"`
	NotificationSent         bool      `json:"notification_sent"`
	PreviousLinksInvalidated int       `json:"previous_links_invalidated"`
	CreatedAt                Timestamp `json:"created_at"`
	AccountID                int64     `json:"account_id"`
}

// permitted reports whether u is an https URL on a permitted domain or a subdomain of one.
func (s *Server) permitted(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil {
		return false
	}
	host := strings.ToLower(p.Hostname())
	for _, d := range s.cfg.PermittedDomains {
		d = strings.ToLower(d)
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func (s *Server) generateLoginLink(w http.ResponseWriter, r *http.Request, call apiCall) {
	var req linkRequest
	var settings notificationSettings
	bodyErr := decodeBody(r, &req)
	if bodyErr == nil && req.NotificationSettings != nil {
		bodyErr = json.Unmarshal(*req.NotificationSettings, &settings)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.lookup(r)
	if !ok {
		accountNotFound(w, r)
		return
	}
	if bodyErr != nil {
		badJSON(w)
		return
	}
	if a.Status == fifteenth.AccountSuspended {
		writeError(w, http.StatusForbidden, fifteenth.CodeAccountSuspended, "Cannot generate login links for suspended accounts",
			map[string]any{"account_id": strconv.FormatInt(a.ID, 10), "status": a.Status, "contact_support": true})
		return
	}
	hours := fifteenth.DefaultExpiryHours
	if req.ExpiryHours != nil {
		n, err := req.ExpiryHours.Int64()
		if err != nil {
			writeError(w, http.StatusBadRequest, fifteenth.CodeValidation, "Invalid request data",
				map[string]any{"expiry_hours": []string{"Must be an integer"}})
			return
		}
		if n < fifteenth.MinExpiryHours || n > fifteenth.MaxExpiryHours {
			writeError(w, http.StatusBadRequest, fifteenth.CodeInvalidExpiry, "Expiry hours must be between 1 and 168",
				map[string]any{"provided_hours": n, "min_hours": fifteenth.MinExpiryHours, "max_hours": fifteenth.MaxExpiryHours})
			return
		}
		hours = int(n)
	}
	purpose := fifteenth.DefaultPurpose
	if req.Purpose != nil {
		if !slices.Contains(fifteenth.Purposes, *req.Purpose) {
			writeError(w, http.StatusBadRequest, fifteenth.CodeValidation, "Invalid request data",
				map[string]any{"purpose": []string{"Must be one of: " + strings.Join(fifteenth.Purposes, ", ")}})
			return
		}
		purpose = *req.Purpose
	}
	var redirect *string
	if req.RedirectURL != nil && *req.RedirectURL != "" {
		if !s.permitted(*req.RedirectURL) {
			writeError(w, http.StatusBadRequest, fifteenth.CodeInvalidRedirectURL, "Redirect URL is not permitted for your partner account",
				map[string]any{"provided_url": *req.RedirectURL, "permitted_domains": s.cfg.PermittedDomains})
			return
		}
		redirect = req.RedirectURL
	}
	user := a.Email
	if req.UserEmail != nil && *req.UserEmail != "" {
		u, found := a.user(*req.UserEmail)
		if !found {
			writeError(w, http.StatusNotFound, fifteenth.CodeUserNotFound, "User email not found on this account",
				map[string]any{"user_email": *req.UserEmail, "account_id": strconv.FormatInt(a.ID, 10)})
			return
		}
		user = u
	}
	now := s.cfg.Now()
	per := s.apiDuration(s.cfg.LinkRate.Per)
	events := window(s.linkGen[a.ID], now, per)
	s.linkGen[a.ID] = events
	if len(events) >= s.cfg.LinkRate.N {
		s.rateLimited(w, limitLoginLink, now, events[0].Add(per))
		return
	}

	invalidated := 0
	for _, l := range s.links {
		if l.AccountID == a.ID && strings.EqualFold(l.UserEmail, user) && l.state(now) == StateValid {
			l.Invalidated = true
			invalidated++
		}
	}
	created := s.stamp(now)
	expires := s.stamp(now.Add(s.apiDuration(time.Duration(hours) * time.Hour)))
	rd := ""
	if redirect != nil {
		rd = *redirect
	}
	l := s.newLink("partner-login", a.ID, user, purpose, rd, created, expires)
	// Only successful generations count against the link limit (CONTRACT.md): a refused
	// request (4xx, 429) returned above, a failed one (5xx) uses no slot. A generation that
	// takes effect but is answered 500 (--fail-after-commit-rate) is a failed one for the
	// partner, who cannot tell it from a 500 before any effect: it uses no slot either, so the
	// client, which gives a 5xx's slot back, keeps the same count as the simulator. The link
	// exists all the same, and earlier links were invalidated.
	if !call.failAfterCommit {
		s.linkGen[a.ID] = append(events, now)
	}
	s.counts.LinksGenerated++
	notify := req.SendNotification == nil || *req.SendNotification
	if notify {
		subject := "Your Fifteenth login link"
		if settings.CustomSubject != nil && *settings.CustomSubject != "" {
			subject = *settings.CustomSubject
		}
		s.outbox = append(s.outbox, OutboxEntry{Kind: "login_link", Recipient: user, Subject: subject,
			Purpose: purpose, AccountID: a.ID, SentAt: now.UTC()})
	}
	writeJSON(w, http.StatusOK, linkJSON{
		LoginLink: s.linkURL(l), UserEmail: user, ExpiresAt: Timestamp(expires), ExpiresInHours: hours,
		Purpose: purpose, RedirectURL: redirect, NotificationSent: notify,
		PreviousLinksInvalidated: invalidated, CreatedAt: Timestamp(created), AccountID: a.ID,
	})
}

// user returns the account's user with that email (holder, spouse or added user).
func (a *account) user(email string) (string, bool) {
	if strings.EqualFold(email, a.Email) {
		return a.Email, true
	}
	if a.Spouse != nil && strings.EqualFold(email, a.Spouse.Email) {
		return a.Spouse.Email, true
	}
	for _, u := range a.Users {
		if strings.EqualFold(email, u) {
			return u, true
		}
	}
	return "", false
}

// useLink serves a login: 200 (or 302 to the redirect URL) on first use, 410 afterwards.
func (s *Server) useLink(kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		l, ok := s.links[r.PathValue("token")]
		if !ok || l.Kind != kind {
			writeError(w, http.StatusNotFound, "LINK_NOT_FOUND", "Login link not found", nil)
			return
		}
		switch l.state(s.cfg.Now()) {
		case StateUsed:
			writeError(w, http.StatusGone, "LINK_USED", "This login link has already been used", nil)
			return
		case StateInvalidated:
			writeError(w, http.StatusGone, "LINK_INVALIDATED", "This login link was replaced by a newer one", nil)
			return
		case StateExpired:
			writeError(w, http.StatusGone, "LINK_EXPIRED", "This login link has expired", nil)
			return
		}
		l.Used = true
		s.counts.LinksUsed++
		if l.RedirectURL != "" {
			http.Redirect(w, r, l.RedirectURL, http.StatusFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "logged_in", "account_id": l.AccountID, "user_email": l.UserEmail})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string, details any) {
	if details == nil {
		details = map[string]any{}
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": errCode, "message": msg, "details": details}})
}

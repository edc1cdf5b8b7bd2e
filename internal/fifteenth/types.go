// Package fifteenth is a client for the Fifteenth Partner API (see shared/api/CONTRACT.md).
//
// It never logs, and it never puts a login link, a token or the API key into an error message:
// callers may log its errors and put them into Kubernetes conditions and Events.
package fifteenth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// AccountID is a Fifteenth account identifier. The API documents it as a number but one
// documented response carries it as a string ("12345"), so it decodes from both.
type AccountID int64

// UnmarshalJSON accepts a JSON number or a JSON string holding a decimal integer.
func (id *AccountID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errors.New("account id is not an integer")
	}
	*id = AccountID(n)
	return nil
}

// String returns the decimal form used in URLs.
func (id AccountID) String() string { return strconv.FormatInt(int64(id), 10) }

// Purposes are the values the API accepts for a login link's purpose: the five documented
// options plus the two the vendor's own examples use.
var Purposes = []string{
	"initial_access", "expired_link", "lost_credentials", "additional_user", "support_request",
	"manual_delivery", "automated_renewal",
}

// DefaultPurpose is the purpose the API assumes when none is given.
const DefaultPurpose = "expired_link"

// Expiry limits of a generated login link, in hours.
const (
	MinExpiryHours     = 1
	MaxExpiryHours     = 168
	DefaultExpiryHours = 168
)

// SpouseInput is the optional spouse of a new account.
type SpouseInput struct {
	Email          string `json:"email"`
	FirstName      string `json:"first_name"`
	LastName       string `json:"last_name"`
	SendInvitation *bool  `json:"send_invitation,omitempty"`
}

// CreateAccountRequest is the body of POST /v1beta/accounts.
type CreateAccountRequest struct {
	Email     string       `json:"email"`
	FirstName string       `json:"first_name"`
	LastName  string       `json:"last_name"`
	Spouse    *SpouseInput `json:"spouse,omitempty"`
}

// Spouse is the spouse part of an account. LoginLink and LoginLinkExpiresAt are set only in
// the answer to account creation.
type Spouse struct {
	ID                 AccountID `json:"id"`
	Email              string    `json:"email"`
	FirstName          string    `json:"first_name"`
	LastName           string    `json:"last_name"`
	LoginLink          string    `json:"login_link,omitempty"`
	LoginLinkExpiresAt time.Time `json:"login_link_expires_at,omitzero"`
	Status             string    `json:"status"`
}

// Account is the answer of account creation and of Retrieve Account. The login link fields are
// set only in the answer to creation.
type Account struct {
	ID                 AccountID `json:"id"`
	Email              string    `json:"email"`
	FirstName          string    `json:"first_name"`
	LastName           string    `json:"last_name"`
	Status             string    `json:"status"`
	LoginLink          string    `json:"login_link,omitempty"`
	LoginLinkExpiresAt time.Time `json:"login_link_expires_at,omitzero"`
	Spouse             *Spouse   `json:"spouse,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
}

// Account statuses.
const (
	AccountActive    = "active"
	AccountSuspended = "suspended"
)

// NotificationSettings customise the email the API sends with a new link.
type NotificationSettings struct {
	PartnerBranded      *bool  `json:"partner_branded,omitempty"`
	CustomSubject       string `json:"custom_subject,omitempty"`
	CustomMessage       string `json:"custom_message,omitempty"`
	IncludeInstructions *bool  `json:"include_instructions,omitempty"`
}

// LoginLinkRequest is the body of POST /v1beta/accounts/{id}/login-link. Every field is
// optional; zero values are left out so that the API applies its own defaults.
type LoginLinkRequest struct {
	UserEmail            string                `json:"user_email,omitempty"`
	ExpiryHours          int                   `json:"expiry_hours,omitempty"`
	Purpose              string                `json:"purpose,omitempty"`
	RedirectURL          string                `json:"redirect_url,omitempty"`
	SendNotification     *bool                 `json:"send_notification,omitempty"`
	NotificationSettings *NotificationSettings `json:"notification_settings,omitempty"`
}

// LoginLink is the answer of POST /v1beta/accounts/{id}/login-link.
type LoginLink struct {
	LoginLink                string    `json:"login_link"`
	UserEmail                string    `json:"user_email"`
	ExpiresAt                time.Time `json:"expires_at"`
	ExpiresInHours           int       `json:"expires_in_hours"`
	Purpose                  string    `json:"purpose"`
	RedirectURL              *string   `json:"redirect_url"`
	NotificationSent         bool      `json:"notification_sent"`
	PreviousLinksInvalidated int       `json:"previous_links_invalidated"`
	CreatedAt                time.Time `json:"created_at"`
	AccountID                AccountID `json:"account_id"`
}

// String never prints the link itself, so that a LoginLink passed to a logger or fmt is safe.
func (l LoginLink) String() string {
	return fmt.Sprintf("LoginLink{account:%s user:%s expires:%s}", l.AccountID, l.UserEmail,
		l.ExpiresAt.Format(time.RFC3339))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// String never prints the login links, so that an Account passed to a logger or fmt is safe.
func (a Account) String() string {
	s := fmt.Sprintf("Account{id:%s email:%s status:%s", a.ID, a.Email, a.Status)
	if a.Spouse != nil {
		s += " spouse:" + a.Spouse.String()
	}
	return s + "}"
}

// String never prints the login link.
func (s Spouse) String() string {
	return fmt.Sprintf("Spouse{id:%s email:%s status:%s}", s.ID, s.Email, s.Status)
}

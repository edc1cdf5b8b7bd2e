package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// Annotations the operator keeps on a link Secret. The Secret, not the status, is the record
// of the current link: a restart, a lost status or a second replica reads it and calls nothing.
const (
	// annGeneratedAt is when the API issued the link (its created_at), RFC 3339.
	annGeneratedAt = "partners.fifteenth.com/generated-at"
	// annStoredAt is when the operator stored the link, RFC 3339 to the nanosecond. The API's
	// created_at is to the second, so two links generated in one second (a PartnerAccount's
	// holder and spouse renewed together, a spec change right after a generation) share it;
	// the rollout restarts tell them apart by this time. Not in the checksum: Secrets written
	// before it existed stay valid (their restarts use generated-at).
	annStoredAt = "partners.fifteenth.com/stored-at"
	// annSpecHash is the hash of the parameters the link was generated with.
	annSpecHash = "partners.fifteenth.com/spec-hash"
	// annChecksum detects a Secret edited by hand.
	annChecksum = "partners.fifteenth.com/checksum"
	// annGenerating is written before a generation call and removed after the new link is
	// stored. Found on start, it means the call may have invalidated the stored link.
	annGenerating = "partners.fifteenth.com/generating-since"
	// annRenewRequest records the renew-requested-at value the link satisfied, so that one
	// request causes one renewal whatever the clocks say.
	annRenewRequest = "partners.fifteenth.com/renew-request-handled"
)

// linkParams are the inputs that shape a generated link. A change of any of them means a new link.
type linkParams struct {
	AccountID        int64                            `json:"accountID"`
	UserEmail        string                           `json:"userEmail,omitempty"` // as in the spec, lower-cased; "" for the primary holder
	ExpiryHours      int32                            `json:"expiryHours"`
	Purpose          string                           `json:"purpose"`
	RedirectURL      string                           `json:"redirectURL,omitempty"`
	SendNotification bool                             `json:"sendNotification"`
	Notification     *partnersv1.NotificationSettings `json:"notification,omitempty"`
}

// paramsFor returns the effective parameters of a LoginLink for an account.
func paramsFor(spec *partnersv1.LoginLinkSpec, accountID int64) linkParams {
	p := linkParams{
		AccountID:        accountID,
		UserEmail:        strings.ToLower(spec.UserEmail),
		ExpiryHours:      fifteenth.DefaultExpiryHours,
		Purpose:          fifteenth.DefaultPurpose,
		RedirectURL:      spec.RedirectURL,
		SendNotification: true,
		Notification:     spec.NotificationSettings,
	}
	if spec.ExpiryHours != nil {
		p.ExpiryHours = *spec.ExpiryHours
	}
	if spec.Purpose != "" {
		p.Purpose = spec.Purpose
	}
	if spec.SendNotification != nil {
		p.SendNotification = *spec.SendNotification
	}
	return p
}

// hash is a short, stable digest of the parameters.
func (p linkParams) hash() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// request is the API request for these parameters; userEmail is the resolved user.
func (p linkParams) request(userEmail string) fifteenth.LoginLinkRequest {
	req := fifteenth.LoginLinkRequest{
		UserEmail:        userEmail,
		ExpiryHours:      int(p.ExpiryHours),
		Purpose:          p.Purpose,
		RedirectURL:      p.RedirectURL,
		SendNotification: &p.SendNotification,
	}
	if n := p.Notification; n != nil && p.SendNotification {
		req.NotificationSettings = &fifteenth.NotificationSettings{PartnerBranded: n.PartnerBranded,
			CustomSubject: n.CustomSubject, CustomMessage: n.CustomMessage, IncludeInstructions: n.IncludeInstructions}
	}
	return req
}

// storedLink is the link a Secret holds. URL is the secret part: it never leaves the Secret.
type storedLink struct {
	URL         string
	UserEmail   string
	AccountID   int64
	ExpiresAt   time.Time
	GeneratedAt time.Time
	// StoredAt is when the operator stored this link (zero for Secrets written before
	// stored-at existed): see annStoredAt.
	StoredAt time.Time
	SpecHash string
	// RenewRequest is the renew-requested-at value this link satisfied.
	RenewRequest string
}

// secretState classifies what a Secret holds.
type secretState int

const (
	secretMissing     secretState = iota // no Secret
	secretAltered                        // keys missing or edited by hand
	secretInterrupted                    // a generation started and did not finish
	secretHandedOver                     // its link was removed: another LoginLink held the user
	secretOK
)

func checksum(data map[string][]byte, generatedAt, specHash string) string {
	h := sha256.New()
	for _, k := range []string{partnersv1.SecretKeyLoginLink, partnersv1.SecretKeyExpiresAt,
		partnersv1.SecretKeyUserEmail, partnersv1.SecretKeyAccountID} {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(data[k])
		h.Write([]byte{0})
	}
	h.Write([]byte(generatedAt + "\x00" + specHash))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// restartTime is the time a link's rollout restarts carry: when it was stored, or (a Secret
// written before stored-at existed) when the API generated it.
func (l storedLink) restartTime() time.Time {
	if !l.StoredAt.IsZero() {
		return l.StoredAt
	}
	return l.GeneratedAt
}

// readSecret reads the link a Secret holds and classifies it.
func readSecret(s *corev1.Secret) (storedLink, secretState) {
	if s == nil {
		return storedLink{}, secretMissing
	}
	ann := s.Annotations
	var l storedLink
	l.URL = string(s.Data[partnersv1.SecretKeyLoginLink])
	l.UserEmail = string(s.Data[partnersv1.SecretKeyUserEmail])
	l.SpecHash = ann[annSpecHash]
	l.RenewRequest = ann[annRenewRequest]
	id, errID := strconv.ParseInt(string(s.Data[partnersv1.SecretKeyAccountID]), 10, 64)
	exp, errExp := time.Parse(time.RFC3339Nano, string(s.Data[partnersv1.SecretKeyExpiresAt]))
	gen, errGen := time.Parse(time.RFC3339Nano, ann[annGeneratedAt])
	l.AccountID, l.ExpiresAt, l.GeneratedAt = id, exp, gen
	if at, err := time.Parse(time.RFC3339Nano, ann[annStoredAt]); err == nil {
		l.StoredAt = at
	}
	if _, handedOver := ann[partnersv1.AnnotationHeldBy]; handedOver && l.URL == "" {
		return l, secretHandedOver
	}
	if l.URL == "" || errID != nil || errExp != nil || errGen != nil ||
		ann[annChecksum] != checksum(s.Data, ann[annGeneratedAt], l.SpecHash) {
		return l, secretAltered
	}
	if _, ok := ann[annGenerating]; ok {
		return l, secretInterrupted
	}
	return l, secretOK
}

// fillSecret writes a link into s: data, the operator's label and annotations, and the
// template's labels and annotations (the operator's own keys win).
func fillSecret(s *corev1.Secret, l storedLink, tmpl *partnersv1.SecretTemplate) {
	s.Type = corev1.SecretTypeOpaque
	s.Data = map[string][]byte{
		partnersv1.SecretKeyLoginLink: []byte(l.URL),
		partnersv1.SecretKeyExpiresAt: []byte(l.ExpiresAt.UTC().Format(time.RFC3339Nano)),
		partnersv1.SecretKeyUserEmail: []byte(l.UserEmail),
		partnersv1.SecretKeyAccountID: []byte(strconv.FormatInt(l.AccountID, 10)),
	}
	s.StringData = nil
	generatedAt := l.GeneratedAt.UTC().Format(time.RFC3339Nano)
	setSecretMeta(s, tmpl)
	s.Annotations[annGeneratedAt] = generatedAt
	if l.StoredAt.IsZero() {
		delete(s.Annotations, annStoredAt)
	} else {
		s.Annotations[annStoredAt] = l.StoredAt.UTC().Format(time.RFC3339Nano)
	}
	s.Annotations[annSpecHash] = l.SpecHash
	s.Annotations[annChecksum] = checksum(s.Data, generatedAt, l.SpecHash)
	if l.RenewRequest != "" {
		s.Annotations[annRenewRequest] = l.RenewRequest
	} else {
		delete(s.Annotations, annRenewRequest)
	}
	delete(s.Annotations, annGenerating)
	delete(s.Annotations, partnersv1.AnnotationHeldBy)
}

// setSecretMeta overlays the template's labels and annotations and the managed-by label on
// what the Secret has. Keys other tools added are kept, so the operator never fights them (a
// key removed from the template therefore stays until the Secret is recreated).
func setSecretMeta(s *corev1.Secret, tmpl *partnersv1.SecretTemplate) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	if tmpl != nil {
		maps.Copy(s.Labels, tmpl.Labels)
		for k, v := range tmpl.Annotations {
			if !strings.HasPrefix(k, "partners.fifteenth.com/") {
				s.Annotations[k] = v
			}
		}
	}
	s.Labels[partnersv1.LabelManagedBy] = partnersv1.ManagedByValue
}

// secretMetaDrifted reports whether the Secret's labels or annotations differ from the template.
func secretMetaDrifted(s *corev1.Secret, tmpl *partnersv1.SecretTemplate) bool {
	want := s.DeepCopy()
	setSecretMeta(want, tmpl)
	return !maps.Equal(want.Labels, s.Labels) || !maps.Equal(want.Annotations, s.Annotations)
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SpouseSpec is the account's one spouse.
type SpouseSpec struct {
	// Email of the spouse; must differ from the holder's.
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	Email string `json:"email"`
	// FirstName as on tax documents, 1 to 50 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	FirstName string `json:"firstName"`
	// LastName as on tax documents, 1 to 50 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	LastName string `json:"lastName"`
	// SendInvitation makes the API email the spouse an invitation. Default true, as in the API.
	// +optional
	SendInvitation *bool `json:"sendInvitation,omitempty"`
}

// AccountLoginLinkSpec says how the holder's (and the spouse's) links are kept.
type AccountLoginLinkSpec struct {
	// SecretName is the holder's Secret. Default <name>-login-link; the spouse's is
	// <name>-spouse-login-link.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`
	// ExpiryHours of renewed links, 1 to 168. Default 168.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=168
	ExpiryHours *int32 `json:"expiryHours,omitempty"`
	// Renewal says when links are replaced before they expire.
	// +optional
	Renewal *Renewal `json:"renewal,omitempty"`
	// SendNotification makes the API email renewed links. Default false: the partner delivers
	// from the Secret.
	// +optional
	SendNotification *bool `json:"sendNotification,omitempty"`
	// RedirectURL is where users land after login: https, on a permitted domain.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="redirectURL must be an https URL, e.g. https://yourplatform.com/tax-dashboard"
	RedirectURL string `json:"redirectURL,omitempty"`
	// RolloutRestartTargets are workloads of this namespace restarted once after each new link
	// of the holder or the spouse; copied to both LoginLinks.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=10
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
}

// PartnerAccountSpec is a client's Fifteenth account. The API cannot change an account, so
// the client's identity is immutable.
// +kubebuilder:validation:XValidation:rule="!has(self.spouse) || self.spouse.email.lowerAscii() != self.email.lowerAscii()",message="spouse.email must differ from email"
// +kubebuilder:validation:XValidation:rule="has(self.spouse) == has(oldSelf.spouse)",message="spouse cannot be added or removed: the Fifteenth API cannot change an account; create a new PartnerAccount"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.accountID) || (has(self.accountID) && self.accountID == oldSelf.accountID)",message="accountID is immutable once set"
// +kubebuilder:validation:XValidation:rule="has(self.partnerConfigRef) == has(oldSelf.partnerConfigRef)",message="partnerConfigRef is immutable: the account lives at that config's API; create a new PartnerAccount"
type PartnerAccountSpec struct {
	// Email of the primary account holder.
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="email is immutable: the Fifteenth API cannot change it; create a new PartnerAccount"
	Email string `json:"email"`
	// FirstName as on tax documents, 1 to 50 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="firstName is immutable: the Fifteenth API cannot change it; create a new PartnerAccount"
	FirstName string `json:"firstName"`
	// LastName as on tax documents, 1 to 50 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="lastName is immutable: the Fifteenth API cannot change it; create a new PartnerAccount"
	LastName string `json:"lastName"`
	// Spouse is the account's optional spouse.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spouse is immutable: the Fifteenth API cannot change it; create a new PartnerAccount"
	Spouse *SpouseSpec `json:"spouse,omitempty"`
	// AccountID adopts an existing account instead of creating one. Added later, it must
	// equal status.accountID (to pin the account this PartnerAccount already manages); once
	// set it cannot change.
	// +optional
	// +kubebuilder:validation:Minimum=1
	AccountID *int64 `json:"accountID,omitempty"`
	// LoginLink says how the holder's and the spouse's links are kept.
	// +optional
	LoginLink *AccountLoginLinkSpec `json:"loginLink,omitempty"`
	// PartnerConfigRef names the partner key and API to use: a PartnerConfig in this
	// namespace or a ClusterPartnerConfig. Default: ClusterPartnerConfig "default" (or the
	// manager's flags when none of that name exists). Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="partnerConfigRef is immutable: the account lives at that config's API; create a new PartnerAccount"
	PartnerConfigRef *PartnerConfigReference `json:"partnerConfigRef,omitempty"`
}

// SpouseStatus is the spouse as the API reports it.
type SpouseStatus struct {
	// ID of the spouse user.
	// +optional
	ID int64 `json:"id,omitempty"`
	// Email of the spouse.
	// +optional
	Email string `json:"email,omitempty"`
	// Status is invited or pending.
	// +optional
	Status string `json:"status,omitempty"`
}

// AccountUserStatus says which LoginLink holds one user of the account.
type AccountUserStatus struct {
	// Email of the user.
	Email string `json:"email"`
	// Role is holder or spouse.
	Role string `json:"role"`
	// HeldBy is the LoginLink in this namespace that holds the user's link (the newest one
	// for the user that can keep a link); empty when none does.
	// +optional
	HeldBy string `json:"heldBy,omitempty"`
}

// PartnerAccountStatus is the observed state of a PartnerAccount. It never holds a link.
type PartnerAccountStatus struct {
	// AccountID is the Fifteenth account.
	// +optional
	AccountID int64 `json:"accountID,omitempty"`
	// ExistingAccountID is the account the API reported as already holding spec.email (a 409,
	// e.g. after an answer to the creation was lost). It is adopted once verified, without
	// trying to create the account again.
	// +optional
	ExistingAccountID int64 `json:"existingAccountID,omitempty"`
	// CreateAttemptedAt is when this PartnerAccount first tried to create its account without
	// learning the outcome (recorded before the call, cleared when the API answered that it
	// created nothing). A 409 is adopted as this PartnerAccount's own only when such an
	// attempt exists and the account was created after it.
	// +optional
	CreateAttemptedAt *metav1.Time `json:"createAttemptedAt,omitempty"`
	// AccountStatus is active or suspended.
	// +optional
	AccountStatus string `json:"accountStatus,omitempty"`
	// CreatedAt is when the account was created.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// Spouse as the API reports it.
	// +optional
	Spouse *SpouseStatus `json:"spouse,omitempty"`
	// LoginLinkSecretName is the holder's Secret.
	// +optional
	LoginLinkSecretName string `json:"loginLinkSecretName,omitempty"`
	// SpouseLoginLinkSecretName is the spouse's Secret.
	// +optional
	SpouseLoginLinkSecretName string `json:"spouseLoginLinkSecretName,omitempty"`
	// LoginLinkExpiresAt is when the holder's current link expires.
	// +optional
	LoginLinkExpiresAt *metav1.Time `json:"loginLinkExpiresAt,omitempty"`
	// Users are the account's users (holder, spouse) and the LoginLink that holds each.
	// +optional
	// +listType=map
	// +listMapKey=email
	Users []AccountUserStatus `json:"users,omitempty"`
	// LastSyncTime is when the account was last read from the API.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pa,categories=fifteenth
// +kubebuilder:printcolumn:name="Account-ID",type=integer,JSONPath=`.status.accountID`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.accountStatus`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Link-Expires",type=string,JSONPath=`.status.loginLinkExpiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1

// +kubebuilder:validation:XValidation:rule="!has(self.spec.accountID) || has(oldSelf.spec.accountID) || (has(self.status) && has(self.status.accountID) && self.status.accountID == self.spec.accountID)",message="spec.accountID can be added only with the value of status.accountID, the account this PartnerAccount already manages; to adopt another account, create a new PartnerAccount"
// PartnerAccount is a client's Fifteenth account, created exactly once, with the holder's
// (and the spouse's) login links kept in Secrets.
type PartnerAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PartnerAccountSpec   `json:"spec"`
	Status PartnerAccountStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// PartnerAccountList is a list of PartnerAccounts.
type PartnerAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PartnerAccount `json:"items"`
}

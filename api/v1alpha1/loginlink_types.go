package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NotificationSettings customise the email the API sends with a new link.
type NotificationSettings struct {
	// PartnerBranded brands the email with the partner's branding.
	// +optional
	PartnerBranded *bool `json:"partnerBranded,omitempty"`
	// CustomSubject replaces the email's subject.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	CustomSubject string `json:"customSubject,omitempty"`
	// CustomMessage is added to the email.
	// +optional
	// +kubebuilder:validation:MaxLength=2000
	CustomMessage string `json:"customMessage,omitempty"`
	// IncludeInstructions adds login instructions to the email.
	// +optional
	IncludeInstructions *bool `json:"includeInstructions,omitempty"`
}

// Renewal says when a link is replaced before it expires.
type Renewal struct {
	// Policy is RenewBefore (default: renew before expiry) or Disabled (let the link expire).
	// +optional
	Policy RenewalPolicy `json:"policy,omitempty"`
	// RenewBefore is how long before expiry to renew, e.g. 24h. Default: a third of the link's
	// actual lifetime. A value not shorter than the lifetime falls back to the default.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewBefore must be a positive duration such as 24h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// SecretTemplate adds labels and annotations to the Secret the operator writes.
type SecretTemplate struct {
	// Labels added to the Secret.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations added to the Secret.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RolloutRestartTarget is a workload in the LoginLink's namespace that reads the link and is
// restarted (as by kubectl rollout restart) once after each new link.
// +kubebuilder:validation:XValidation:rule="!has(self.__namespace__)",message="rolloutRestartTargets are in the LoginLink's namespace; namespace must not be set"
type RolloutRestartTarget struct {
	// Kind of the workload: Deployment, StatefulSet or DaemonSet (group apps).
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	Kind string `json:"kind"`
	// Name of the workload in the LoginLink's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// Namespace must not be set: a target is always in the LoginLink's namespace. The field
	// exists only so that a manifest setting it is refused with a clear message instead of
	// having it silently dropped.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// LoginLinkSpec is one login link for one user of one Fifteenth account.
// +kubebuilder:validation:XValidation:rule="has(self.accountRef) != has(self.accountID)",message="exactly one of spec.accountRef and spec.accountID must be set"
// +kubebuilder:validation:XValidation:rule="has(self.partnerConfigRef) == has(oldSelf.partnerConfigRef)",message="partnerConfigRef is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.accountRef) || !has(self.partnerConfigRef)",message="partnerConfigRef goes with spec.accountID; with spec.accountRef the PartnerAccount's config is used"
type LoginLinkSpec struct {
	// AccountRef names a PartnerAccount in the same namespace.
	// +optional
	AccountRef *LocalObjectReference `json:"accountRef,omitempty"`
	// AccountID is a Fifteenth account not managed by a PartnerAccount here.
	// +optional
	// +kubebuilder:validation:Minimum=1
	AccountID *int64 `json:"accountID,omitempty"`
	// UserEmail is the user the link is for. Default: the account's primary holder.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	UserEmail string `json:"userEmail,omitempty"`
	// ExpiryHours is the lifetime of each link, 1 to 168 hours. Default 168.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=168
	ExpiryHours *int32 `json:"expiryHours,omitempty"`
	// Purpose is recorded by the API for audit. Default expired_link.
	// +optional
	// +kubebuilder:validation:Enum=initial_access;expired_link;lost_credentials;additional_user;support_request;manual_delivery;automated_renewal
	Purpose string `json:"purpose,omitempty"`
	// RedirectURL is where the user lands after login: an https URL on one of the partner's
	// permitted domains.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="redirectURL must be an https URL, e.g. https://yourplatform.com/tax-dashboard"
	RedirectURL string `json:"redirectURL,omitempty"`
	// SendNotification makes the API email the link to the user. Default true, as in the API.
	// +optional
	SendNotification *bool `json:"sendNotification,omitempty"`
	// NotificationSettings customise that email.
	// +optional
	NotificationSettings *NotificationSettings `json:"notificationSettings,omitempty"`
	// Renewal says when the link is replaced before it expires.
	// +optional
	Renewal *Renewal `json:"renewal,omitempty"`
	// SecretName is the Secret that holds the link. Default: the LoginLink's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`
	// SecretTemplate adds labels and annotations to the Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`
	// RolloutRestartTargets are workloads of this namespace restarted once after each new link
	// (generation or renewal): their pod template's partners.fifteenth.com/restartedAt
	// annotation is set to the link's generation time, and only ever moves forward.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=10
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
	// PartnerConfigRef names the partner key and API to use for spec.accountID: a
	// PartnerConfig in this namespace or a ClusterPartnerConfig. Default: ClusterPartnerConfig
	// "default" (or the manager's flags). With spec.accountRef the PartnerAccount's config is
	// used and this must be unset. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="partnerConfigRef is immutable"
	PartnerConfigRef *PartnerConfigReference `json:"partnerConfigRef,omitempty"`
}

// LoginLinkStatus is the observed state of a LoginLink. It never holds the link itself.
type LoginLinkStatus struct {
	// AccountID is the account the link is for.
	// +optional
	AccountID int64 `json:"accountID,omitempty"`
	// UserEmail is the user the link is for, as the API reported it.
	// +optional
	UserEmail string `json:"userEmail,omitempty"`
	// SecretName is the Secret that holds the link.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// GeneratedAt is when the current link was generated.
	// +optional
	GeneratedAt *metav1.Time `json:"generatedAt,omitempty"`
	// ExpiresAt is when the current link expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// RenewalTime is when the link will be renewed.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`
	// RenewBefore is the effective renewal margin.
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
	// PreviousLinksInvalidated is what the API reported for the last generation.
	// +optional
	PreviousLinksInvalidated int32 `json:"previousLinksInvalidated,omitempty"`
	// NotificationSent is whether the API emailed the last link.
	// +optional
	NotificationSent *bool `json:"notificationSent,omitempty"`
	// LastFailureTime is when the last generation failed. A terminal failure is not retried
	// until the spec changes or a renewal is requested after it.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
	// RenewRequestHandled is the renew-requested-at annotation that the last failed attempt
	// acted on: a terminal failure is tried again once per new value of the annotation.
	// +optional
	RenewRequestHandled string `json:"renewRequestHandled,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, and RolloutRestarted when spec.rolloutRestartTargets is set.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ll,categories=fifteenth
// +kubebuilder:printcolumn:name="Account",type=integer,JSONPath=`.status.accountID`
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.status.userEmail`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Renews",type=string,JSONPath=`.status.renewalTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1

// LoginLink keeps a valid login link for one user of one Fifteenth account in a Secret, and
// renews it before it expires.
type LoginLink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LoginLinkSpec   `json:"spec"`
	Status LoginLinkStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LoginLinkList is a list of LoginLinks.
type LoginLinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LoginLink `json:"items"`
}

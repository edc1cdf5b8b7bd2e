package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds a PartnerConfigReference may name.
const (
	KindPartnerConfig        = "PartnerConfig"
	KindClusterPartnerConfig = "ClusterPartnerConfig"
)

// DefaultPartnerConfigName is the ClusterPartnerConfig used when an object names none. When no
// ClusterPartnerConfig of that name exists, the manager's flags make it.
const DefaultPartnerConfigName = "default"

// PartnerConfigReference names the PartnerConfig (in the object's own namespace) or the
// ClusterPartnerConfig whose API URL and key an object uses.
type PartnerConfigReference struct {
	// Kind is PartnerConfig or ClusterPartnerConfig.
	// +kubebuilder:validation:Enum=PartnerConfig;ClusterPartnerConfig
	Kind string `json:"kind"`
	// Name of the config.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names a key of a Secret in the PartnerConfig's own namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key of the Secret's data that holds the partner API key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// NamespacedSecretKeyReference names a key of a Secret in a given namespace.
type NamespacedSecretKeyReference struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key of the Secret's data that holds the partner API key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// PartnerConfigLimits are the client-side rate limits of a config, in the `N/DURATION` syntax
// of the manager's flags (e.g. `100/1m`, `10/1h`, `10/h`).
type PartnerConfigLimits struct {
	// AccountCreateLimit limits account creations per key. Default 100/1m.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]*[1-9][0-9]*/(ns|us|µs|μs|ms|s|m|h|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="self.matches('/.*[1-9]') || !self.matches('/.*[0-9]')",message="the window must be a positive duration, e.g. 100/1m"
	AccountCreateLimit string `json:"accountCreateLimit,omitempty"`
	// LoginLinkLimit limits login links per account (a sliding window). Default 10/1h. The
	// budget of an account is shared by every config that points at the same API.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]*[1-9][0-9]*/(ns|us|µs|μs|ms|s|m|h|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="self.matches('/.*[1-9]') || !self.matches('/.*[0-9]')",message="the window must be a positive duration, e.g. 10/1h"
	LoginLinkLimit string `json:"loginLinkLimit,omitempty"`
}

// PartnerConfigSpec is a tenant's own partner key and API.
type PartnerConfigSpec struct {
	// APIURL is the API root, e.g. https://api.fifteenth.com (the default). It must be on the
	// manager's allow-list (--allowed-api-urls); others are refused without any request.
	// +optional
	// +kubebuilder:default="https://api.fifteenth.com"
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != '' && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="apiURL must be an https URL (plain http only to a loopback host)"
	APIURL string `json:"apiURL,omitempty"`
	// APIKeySecretRef names the Secret key, in this namespace, holding the partner API key.
	APIKeySecretRef SecretKeyReference `json:"apiKeySecretRef"`

	PartnerConfigLimits `json:",inline"`
}

// AccountAccess grants namespaces the use of accounts that no PartnerAccount here manages:
// adopting them (PartnerAccount spec.accountID) and linking them (LoginLink spec.accountID).
type AccountAccess struct {
	// Namespaces granted by name.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector grants the namespaces whose labels match.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// ClusterPartnerConfigSpec is an administrator's partner key and API, usable from the
// namespaces it names.
type ClusterPartnerConfigSpec struct {
	// APIURL is the API root, e.g. https://api.fifteenth.com (the default). Any https URL;
	// plain http only to a loopback host.
	// +optional
	// +kubebuilder:default="https://api.fifteenth.com"
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != '' && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="apiURL must be an https URL (plain http only to a loopback host)"
	APIURL string `json:"apiURL,omitempty"`
	// APIKeySecretRef names the Secret key holding the partner API key, and its namespace.
	APIKeySecretRef NamespacedSecretKeyReference `json:"apiKeySecretRef"`

	PartnerConfigLimits `json:",inline"`

	// Namespaces that may use this config. With NamespaceSelector also empty, every namespace
	// may.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector selects more namespaces that may use this config.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// AccountAccess says which namespaces may adopt or link accounts that no PartnerAccount
	// here manages. Default: none.
	// +optional
	AccountAccess *AccountAccess `json:"accountAccess,omitempty"`
}

// PartnerConfigStatus is the observed state of a config. It never holds the key.
type PartnerConfigStatus struct {
	// KeyFingerprint is a short SHA-256 hash (hex) of the key in use, never the key.
	// +optional
	KeyFingerprint string `json:"keyFingerprint,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (reasons Valid, SecretNotFound, KeyInvalid, APIURLNotAllowed,
	// Unauthorized).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pc,categories=fifteenth
// +kubebuilder:printcolumn:name="API URL",type=string,JSONPath=`.spec.apiURL`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Fingerprint",type=string,JSONPath=`.status.keyFingerprint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1

// PartnerConfig is a namespace's own partner API key: objects of this namespace that name it
// call the API with it.
type PartnerConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PartnerConfigSpec   `json:"spec"`
	Status PartnerConfigStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// PartnerConfigList is a list of PartnerConfigs.
type PartnerConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PartnerConfig `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cpc,categories=fifteenth
// +kubebuilder:printcolumn:name="API URL",type=string,JSONPath=`.spec.apiURL`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Fingerprint",type=string,JSONPath=`.status.keyFingerprint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1

// ClusterPartnerConfig is an administrator's partner API key, usable from the namespaces it
// names. The one named "default" serves objects that name no config.
type ClusterPartnerConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterPartnerConfigSpec `json:"spec"`
	Status PartnerConfigStatus      `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterPartnerConfigList is a list of ClusterPartnerConfigs.
type ClusterPartnerConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterPartnerConfig `json:"items"`
}

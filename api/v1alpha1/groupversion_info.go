// Package v1alpha1 contains the API types of the partners.fifteenth.com group.
// +kubebuilder:object:generate=true
// +groupName=partners.fifteenth.com
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "partners.fifteenth.com", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group-version to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PartnerAccount{}, &PartnerAccountList{}, &LoginLink{}, &LoginLinkList{},
		&PartnerConfig{}, &PartnerConfigList{}, &ClusterPartnerConfig{}, &ClusterPartnerConfigList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

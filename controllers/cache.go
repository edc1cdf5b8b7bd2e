package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// lastApplied is client-side apply's copy of the whole object, kept in an annotation.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// CacheTransform trims what the manager's cache keeps of each object: the managedFields
// (server-side apply's bookkeeping, often larger than the object itself) of every kind, and
// the last-applied-configuration annotation (a copy of the spec) of the operator's own kinds.
// Neither is read by a pass. Both stay on the server: a PartnerAccount or LoginLink is never
// written from the cache except its status (a patch of the difference), and an update with
// no managedFields leaves the server's as they are. Secrets keep their annotations: they are
// updated whole.
func CacheTransform() toolscache.TransformFunc {
	return func(in any) (any, error) {
		obj, err := meta.Accessor(in)
		if err != nil {
			return in, nil // a DeletedFinalStateUnknown tombstone: passed as it is
		}
		if obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		switch in.(type) {
		case *partnersv1.PartnerAccount, *partnersv1.LoginLink, *partnersv1.PartnerConfig, *partnersv1.ClusterPartnerConfig:
			delete(obj.GetAnnotations(), lastApplied)
		}
		return in, nil
	}
}

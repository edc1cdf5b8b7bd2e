package controllers

import (
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// requestAnnotationsChanged lets a change of the annotations a PartnerAccount acts on
// (renew-requested-at, paused) wake it, whose watch otherwise reacts to spec changes only.
// Other annotations (kubectl's last-applied-configuration, Argo CD's tracking id) do not.
var requestAnnotationsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		for _, k := range []string{partnersv1.AnnotationRenewRequestedAt, partnersv1.AnnotationPaused} {
			if e.ObjectOld.GetAnnotations()[k] != e.ObjectNew.GetAnnotations()[k] {
				return true
			}
		}
		return false
	},
}

// futureSkew is how far in the future a PartnerAccount's renewal request may be dated (a
// client's clock ahead) and still be copied.
const futureSkew = 5 * time.Minute

// propagateRenewRequest copies a PartnerAccount's renew-requested-at annotation to a LoginLink
// it owns when it is later than the LoginLink's own: the LoginLink then generates once, as if
// it had been annotated itself. An older or malformed request is left out, and so is one dated
// more than futureSkew after now. A LoginLink's own value dated after now bounds nothing: a
// request from a clock ahead must not make the next correct ones do nothing until its time.
func propagateRenewRequest(pa *partnersv1.PartnerAccount, ll *partnersv1.LoginLink, now time.Time) {
	v := pa.Annotations[partnersv1.AnnotationRenewRequestedAt]
	if v == ll.Annotations[partnersv1.AnnotationRenewRequestedAt] || !laterRenewRequest(v, ll.Annotations[partnersv1.AnnotationRenewRequestedAt], now) {
		return
	}
	if ll.Annotations == nil {
		ll.Annotations = map[string]string{}
	}
	ll.Annotations[partnersv1.AnnotationRenewRequestedAt] = v
}

// laterRenewRequest reports whether v is an RFC 3339 time, not after now+futureSkew, later
// than than (or than is not one, or is after now).
func laterRenewRequest(v, than string, now time.Time) bool {
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || at.After(now.Add(futureSkew)) {
		return false
	}
	prev, err := time.Parse(time.RFC3339Nano, than)
	return err != nil || prev.After(now) || at.After(prev)
}

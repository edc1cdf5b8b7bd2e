package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// kindPartnerAccount is the kind of a LoginLink's owner PartnerAccount.
const kindPartnerAccount = "PartnerAccount"

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// namespaceGoing reports whether the namespace is Terminating, read through reader: the
// namespace controller removes everything in it, so nothing there is created, linked or
// called for. A namespace reader does not find is not reported (its objects are gone too, or
// the cache has not seen it yet).
func namespaceGoing(ctx context.Context, reader client.Reader, name string) (bool, error) {
	ns := &corev1.Namespace{}
	if err := reader.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("cannot get Namespace %s: %w", name, err)
	}
	return !ns.DeletionTimestamp.IsZero(), nil
}

// loginLinkGoing reports why a LoginLink goes with its namespace or its owner PartnerAccount
// ("" when it does not), read through reader. The garbage collector (or the namespace
// controller) removes it and its Secret: a link generated for it would be lost with them,
// still valid, and would invalidate the user's other link.
func loginLinkGoing(ctx context.Context, reader client.Reader, ll *partnersv1.LoginLink) (string, error) {
	if going, err := namespaceGoing(ctx, reader, ll.Namespace); err != nil || going {
		if going {
			return fmt.Sprintf("namespace %s is Terminating", ll.Namespace), nil
		}
		return "", err
	}
	ref := metav1.GetControllerOf(ll)
	if ref == nil || ref.Kind != kindPartnerAccount || ref.APIVersion != partnersv1.GroupVersion.String() {
		return "", nil
	}
	pa := &partnersv1.PartnerAccount{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: ref.Name}, pa); err != nil {
		// Gone: the LoginLink's accountRef names it, and reconcileTarget reports it.
		return "", client.IgnoreNotFound(err)
	}
	switch {
	case pa.UID != ref.UID:
		return fmt.Sprintf("its owner PartnerAccount %s was deleted", ref.Name), nil
	case !pa.DeletionTimestamp.IsZero():
		return fmt.Sprintf("its owner PartnerAccount %s is being deleted", ref.Name), nil
	}
	return "", nil
}

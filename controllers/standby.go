package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/partnerconfig"
	"github.com/fifteenth/fifteenth-operator/internal/renewal"
)

// A standby (--read-only) manager runs where the same manifests are applied as on the active
// cluster. It never calls Create Account or Generate Login Link and never writes a Secret: a
// second cluster that generated would invalidate the active cluster's links, since the API
// keeps one valid link per user. It still creates the LoginLinks a PartnerAccount owns (plain
// Kubernetes objects from the same manifests), so that it reports per user, and it reads the
// accounts it may adopt (spec.accountID) at the account sync period. Its report is the Ready
// condition: False, reason Standby, saying what an active manager would do.

// standbyPrefix starts every Standby message.
const standbyPrefix = "standby (--read-only): "

// reconcileStandby ends the pass of every LoginLink of a standby manager: it reports what an
// active manager would do, from the cache, and calls and writes nothing but its status.
func (r *LoginLinkReconciler) reconcileStandby(ctx context.Context, s *linkScope) (ctrl.Result, bool, error) {
	if !r.ReadOnly {
		return ctrl.Result{}, false, nil
	}
	ll := s.ll
	user, account := ll.Spec.UserEmail, int64(0)
	if ref := ll.Spec.AccountRef; ref != nil {
		pa := &partnersv1.PartnerAccount{}
		err := r.Get(ctx, types.NamespacedName{Namespace: ll.Namespace, Name: ref.Name}, pa)
		if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, true, err
		}
		if err == nil {
			account = pa.Status.AccountID
			if user == "" {
				user = pa.Spec.Email
			}
		}
	} else if ll.Spec.AccountID != nil {
		account = *ll.Spec.AccountID
	}
	if user == "" && account != 0 && ll.Status.AccountID == account {
		user = ll.Status.UserEmail
	}
	if user == "" {
		user = "the account's primary holder"
	}
	name := ll.Spec.SecretName
	if name == "" {
		name = ll.Name
	}
	secret, err := r.secret(ctx, r.Client, ll.Namespace, name)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	link, state := readSecret(secret)
	var msg string
	switch {
	case secret != nil && state == secretOK && s.now.Before(link.ExpiresAt):
		msg = fmt.Sprintf("the link in Secret %s expires at %s; an active cluster renews it", name, link.ExpiresAt.UTC().Format(time.RFC3339))
	case account == 0:
		msg = fmt.Sprintf("would generate a link for %s once its PartnerAccount has an account", user)
	default:
		msg = fmt.Sprintf("would generate a link for %s on account %d and store it in Secret %s", user, account, name)
	}
	r.setReady(ll, false, partnersv1.ReasonStandby, standbyPrefix+msg)
	return ctrl.Result{}, true, nil
}

// standby is the pass of a PartnerAccount on a standby manager, once its LoginLinks exist and
// its config resolved: without an account ID it reports the creation it would make (the ID
// exists only once an account is created); with spec.accountID it adopts the account by
// Retrieve Account, with the checks of an active manager; it reads the account at the sync
// period.
func (r *PartnerAccountReconciler) standby(ctx context.Context, pa *partnersv1.PartnerAccount, cfg *partnerconfig.Config) (ctrl.Result, error) {
	if pa.Status.AccountID == 0 {
		id := pa.Spec.AccountID
		if id == nil {
			r.setReady(pa, false, partnersv1.ReasonStandby, fmt.Sprintf(standbyPrefix+
				"would create the account for %s; its ID is known only once an active cluster created it (a failover adopts it after the 409)",
				pa.Spec.Email))
			return ctrl.Result{}, nil
		}
		if res, done, err := r.adopt(ctx, pa, cfg, *id, nil); done || err != nil {
			why := "it cannot be read now"
			if c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady); c != nil {
				why = c.Reason + ": " + c.Message
			}
			r.setReady(pa, false, partnersv1.ReasonStandby, fmt.Sprintf(standbyPrefix+"would adopt account %d, which is not possible now (%s)", *id, why))
			return res, err
		}
	}
	next := r.observe(ctx, pa, cfg)
	status := pa.Status.AccountStatus
	if status == "" {
		status = "not read yet"
	}
	r.setReady(pa, false, partnersv1.ReasonStandby, fmt.Sprintf(standbyPrefix+
		"account %d is %s; an active cluster keeps its users' links", pa.Status.AccountID, status))
	return ctrl.Result{RequeueAfter: renewal.RequeueAfter(r.now(), next, minRequeue)}, nil
}

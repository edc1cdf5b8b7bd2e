package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/metrics"
)

// objectMetrics exports the per-object series (fifteenth_login_link_*,
// fifteenth_partner_account_ready) from the objects' status in the cache when Prometheus
// scrapes, once this manager leads: a replica that does not lead exports none, so that two
// replicas never both report (and alert on) the same LoginLink.
type objectMetrics struct {
	c       client.Reader
	elected <-chan struct{}
}

// scrapeTimeout bounds a scrape's wait for a cache that has not synced yet.
const scrapeTimeout = 5 * time.Second

func (m objectMetrics) EachObject(link func(metrics.LinkState), account func(metrics.AccountState)) error {
	select {
	case <-m.elected:
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	// Read only: the cache's objects are not copied, but a List copies each struct into its
	// Items: one bucket (indexBucket) at a time keeps that a 32nd of the objects. Each List has
	// a list of its own: the cache of several namespaces deep-copies the list it is given.
	for _, b := range bucketNames {
		var lls partnersv1.LoginLinkList
		if err := m.c.List(ctx, &lls, client.MatchingFields{indexBucket: b}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range lls.Items {
			ll := &lls.Items[i]
			c := meta.FindStatusCondition(ll.Status.Conditions, partnersv1.ConditionReady)
			if intended(c) {
				continue // paused or a standby: not Ready on purpose, nothing renewed: no series, no alert
			}
			s := metrics.LinkState{Namespace: ll.Namespace, Name: ll.Name,
				Ready:      c != nil && c.Status == metav1.ConditionTrue,
				Superseded: c != nil && c.Status == metav1.ConditionFalse && c.Reason == partnersv1.ReasonSuperseded}
			if ll.Status.ExpiresAt != nil {
				s.Expires = ll.Status.ExpiresAt.Time
			}
			if ll.Status.RenewalTime != nil {
				s.Renews = ll.Status.RenewalTime.Time
			}
			link(s)
		}
	}
	for _, b := range bucketNames {
		var pas partnersv1.PartnerAccountList
		if err := m.c.List(ctx, &pas, client.MatchingFields{indexBucket: b}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range pas.Items {
			pa := &pas.Items[i]
			c := meta.FindStatusCondition(pa.Status.Conditions, partnersv1.ConditionReady)
			if intended(c) {
				continue
			}
			account(metrics.AccountState{Namespace: pa.Namespace, Name: pa.Name, Ready: c != nil && c.Status == metav1.ConditionTrue})
		}
	}
	return nil
}

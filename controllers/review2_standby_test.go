package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// A standby manager: Standby objects compute InProgress (reference.md), generate nothing, and
// write their status once, not at every sync period.
func TestReview2StandbyKstatusAndSteadyState(t *testing.T) {
	h := newHarness(t, harnessOpts{readOnly: true, syncPeriod: 300 * time.Millisecond})
	g := h.g
	id := h.createAccount("standby@example.com")
	h.create(linkFor("ll", id))
	h.create(account("new", "new@example.com", withSpouse("newspouse@example.com")))
	h.create(account("adopt", "standby@example.com", func(s *partnersv1.PartnerAccountSpec) { s.AccountID = ptr.To(id) }))
	h.expectLinkReason("ll", metav1.ConditionFalse, partnersv1.ReasonStandby)
	h.expectAccountReason("new", metav1.ConditionFalse, partnersv1.ReasonStandby)
	h.expectAccountReason("adopt", metav1.ConditionFalse, partnersv1.ReasonStandby)
	h.expectLinkReason("new-holder", metav1.ConditionFalse, partnersv1.ReasonStandby)
	h.expectLinkReason("adopt-holder", metav1.ConditionFalse, partnersv1.ReasonStandby)
	for _, o := range [][2]string{{"LoginLink", "ll"}, {"PartnerAccount", "new"}, {"PartnerAccount", "adopt"}, {"LoginLink", "adopt-holder"}} {
		g.Expect(h.kstatus(o[0], o[1]).Status).To(Equal(status.InProgressStatus), o[1])
	}
	time.Sleep(time.Second)
	rvs := func() map[string]string {
		return map[string]string{"ll": h.loginLink("ll").ResourceVersion, "new": h.partnerAccount("new").ResourceVersion,
			"new-holder": h.loginLink("new-holder").ResourceVersion, "adopt-holder": h.loginLink("adopt-holder").ResourceVersion,
			"new-spouse": h.loginLink("new-spouse").ResourceVersion}
	}
	before := rvs()
	g.Consistently(rvs).WithTimeout(3*time.Second).Should(Equal(before), "standby status rewritten at resyncs")
	g.Expect(total(h.linkCalls())).To(BeZero())
	g.Expect(h.stats().Accounts).To(Equal(1), "only the test's account")
}

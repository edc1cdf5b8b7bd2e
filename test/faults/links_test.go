//go:build faults

package faults

import (
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// loginLinkConfig is the configKey of the config a LoginLink uses: its PartnerAccount's with
// spec.accountRef, else its own.
func loginLinkConfig(ll *partnersv1.LoginLink, pas map[string]*partnersv1.PartnerAccount) string {
	if ll.Spec.AccountRef != nil {
		if pa := pas[ll.Spec.AccountRef.Name]; pa != nil {
			return configKey(pa.Spec.PartnerConfigRef)
		}
	}
	return configKey(ll.Spec.PartnerConfigRef)
}

// checkLinks compares what the cluster says of the objects of sm's config (the LoginLinks that
// use it, the Secrets of those LoginLinks; a Secret of no known LoginLink is the default
// config's) with what the simulator sm knows (see testenv.CheckLinks).
func (w *world) checkLinks(sm *simAPI) (testenv.LinkReport, error) {
	var paList partnersv1.PartnerAccountList
	if err := k8s.List(ctx, &paList, client.InNamespace(w.ns)); err != nil {
		return testenv.LinkReport{}, err
	}
	pas := map[string]*partnersv1.PartnerAccount{}
	for i := range paList.Items {
		pas[paList.Items[i].Name] = &paList.Items[i]
	}
	mine := func(ll *partnersv1.LoginLink) bool {
		if ll == nil {
			return configKey(sm.ref) == ""
		}
		return loginLinkConfig(ll, pas) == configKey(sm.ref)
	}
	return testenv.CheckLinks(ctx, k8s, w.ns, sm.url, mine)
}

// requireLinks runs checkLinks(s) until it finds no problem or for settle at most (a renewal
// in flight may briefly show a Secret behind the simulator), logs the figures, and fails the
// test on the problems of the last run.
func (w *world) requireLinks(s *simAPI, g Gomega, settle time.Duration) testenv.LinkReport {
	w.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		r, err := w.checkLinks(s)
		g.Expect(err).NotTo(HaveOccurred())
		if len(r.Problems) == 0 || time.Now().After(deadline) {
			w.t.Logf("%s%s", w.label(s), r)
			for _, p := range r.Problems {
				w.t.Logf("  %s", p)
			}
			g.Expect(len(r.Problems)).To(BeZero(), "problems with the links (listed above)")
			return r
		}
		time.Sleep(time.Second)
	}
}

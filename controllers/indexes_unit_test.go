package controllers

import (
	"slices"
	"testing"

	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// The indexes leave out what no list asks for: each value costs the cache about half a
// kilobyte at 10,000 accounts.
func TestUnitIndexesLeaveOutWhatNoOneLists(t *testing.T) {
	pa := &partnersv1.PartnerAccount{Spec: partnersv1.PartnerAccountSpec{Email: "A@x.example", AccountID: ptr.To(int64(7))}}
	if got := wantedKeys(pa); !slices.Equal(got, []string{"email:a@x.example", "7"}) {
		t.Errorf("waiting PartnerAccount: %v", got)
	}
	pa.Status.ExistingAccountID = 8
	if got := wantedKeys(pa); !slices.Equal(got, []string{"email:a@x.example", "7", "8"}) {
		t.Errorf("PartnerAccount that met an existing account: %v", got)
	}
	pa.Status.AccountID = 7
	if got := wantedKeys(pa); got != nil {
		t.Errorf("a PartnerAccount with its account waits for nothing, indexed as %v", got)
	}

	for _, tc := range []struct {
		name   string
		spec   *int64
		status int64
		want   []string
	}{
		{"never acted", ptr.To(int64(5)), 0, nil},
		{"acted on its spec's account: indexAccountID has it", ptr.To(int64(5)), 5, nil},
		{"acted on another account than its spec's", ptr.To(int64(5)), 6, []string{"6"}},
		{"by accountRef", nil, 6, []string{"6"}},
	} {
		ll := &partnersv1.LoginLink{Spec: partnersv1.LoginLinkSpec{AccountID: tc.spec}, Status: partnersv1.LoginLinkStatus{AccountID: tc.status}}
		if got := statusAccountKeys(ll); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

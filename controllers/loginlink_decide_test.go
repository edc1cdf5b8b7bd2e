package controllers

import (
	"testing"
	"time"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

func TestDecideLink(t *testing.T) {
	gen := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	link := storedLink{URL: "x", GeneratedAt: gen, ExpiresAt: gen.Add(24 * time.Hour), SpecHash: "h1"}
	base := linkInput{Now: gen.Add(time.Hour), Link: link, State: secretOK, SpecHash: "h1", Current: true}
	with := func(f func(*linkInput)) linkInput { in := base; f(&in); return in }

	tests := []struct {
		name    string
		in      linkInput
		action  linkAction
		renewal bool
		renewAt time.Time
	}{
		{"fresh link waits for its renewal time", base, actionWait, false, gen.Add(16 * time.Hour)},
		{"restart or resync with a current link calls nothing", with(func(in *linkInput) { in.Now = gen.Add(15 * time.Hour) }), actionWait, false, gen.Add(16 * time.Hour)},
		{"no Secret", with(func(in *linkInput) { in.State = secretMissing }), actionGenerate, false, time.Time{}},
		{"altered Secret", with(func(in *linkInput) { in.State = secretAltered }), actionGenerate, false, time.Time{}},
		{"interrupted generation", with(func(in *linkInput) { in.State = secretInterrupted }), actionGenerate, false, time.Time{}},
		{"spec changed", with(func(in *linkInput) { in.SpecHash = "h2" }), actionGenerate, false, time.Time{}},
		{"renewal due", with(func(in *linkInput) { in.Now = gen.Add(16 * time.Hour) }), actionGenerate, true, time.Time{}},
		{"explicit renewBefore", with(func(in *linkInput) { in.RenewBefore = 2 * time.Hour }), actionWait, false, gen.Add(22 * time.Hour)},
		{"expired", with(func(in *linkInput) { in.Now = gen.Add(25 * time.Hour) }), actionGenerate, true, time.Time{}},
		{"renewal disabled, not expired", with(func(in *linkInput) { in.Policy = partnersv1.RenewalPolicyDisabled; in.Now = gen.Add(20 * time.Hour) }), actionWait, false, time.Time{}},
		{"renewal disabled, expired", with(func(in *linkInput) { in.Policy = partnersv1.RenewalPolicyDisabled; in.Now = gen.Add(24 * time.Hour) }), actionExpired, false, time.Time{}},
		{"renew requested after generation", with(func(in *linkInput) { in.RenewRequest = gen.Add(time.Minute).Format(time.RFC3339) }), actionGenerate, true, time.Time{}},
		{"renew requested before generation", with(func(in *linkInput) { in.RenewRequest = gen.Add(-time.Minute).Format(time.RFC3339) }), actionWait, false, gen.Add(16 * time.Hour)},
		{"renew request already satisfied", with(func(in *linkInput) {
			in.RenewRequest = gen.Add(time.Hour).Format(time.RFC3339)
			in.Link.RenewRequest = in.RenewRequest
		}), actionWait, false, gen.Add(16 * time.Hour)},
		{"a later generation for the user invalidated the link", with(func(in *linkInput) { in.Current = false }), actionGenerate, false, time.Time{}},
		{"a Secret handed over to another LoginLink", with(func(in *linkInput) { in.State = secretHandedOver }), actionGenerate, false, time.Time{}},
		{"malformed renew request is ignored", with(func(in *linkInput) { in.RenewRequest = "soon" }), actionWait, false, gen.Add(16 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideLink(tt.in)
			if d.Action != tt.action || d.Renewal != tt.renewal {
				t.Fatalf("decision %+v, want action %v renewal %v", d, tt.action, tt.renewal)
			}
			if !tt.renewAt.IsZero() && !d.RenewAt.Equal(tt.renewAt) {
				t.Fatalf("renew at %v, want %v", d.RenewAt, tt.renewAt)
			}
		})
	}
}

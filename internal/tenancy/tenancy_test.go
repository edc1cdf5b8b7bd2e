package tenancy

import (
	"strings"
	"testing"
)

func TestPermit(t *testing.T) {
	tests := []struct {
		name  string
		a     Access
		allow bool
	}{
		{"the account's own namespace", Access{Namespace: "team-a", AccountID: 1, Home: "team-a"}, true},
		{"another namespace's account", Access{Namespace: "team-b", AccountID: 1, Home: "team-a"}, false},
		{"another namespace's account, even with a grant", Access{Namespace: "team-b", AccountID: 1, Home: "team-a", Granted: true}, false},
		{"an unclaimed account without a grant", Access{Namespace: "team-b", AccountID: 2}, false},
		{"an unclaimed account with a grant", Access{Namespace: "team-b", AccountID: 2, Granted: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Permit(tt.a)
			if d.Allowed != tt.allow {
				t.Fatalf("Allowed = %v, want %v (%s)", d.Allowed, tt.allow, d.Message)
			}
			if !d.Allowed && (d.Reason != ReasonAccountNotPermitted || strings.Contains(d.Message, "team-a")) {
				t.Fatalf("a refusal must say AccountNotPermitted and never name another namespace: %q %q", d.Reason, d.Message)
			}
		})
	}
}

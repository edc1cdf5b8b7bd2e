package cli

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

func TestRelative(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "now"},
		{400 * time.Millisecond, "now"},
		{10 * time.Minute, "in 10m"},
		{-10 * time.Minute, "10m ago"},
		{-26 * time.Hour, "26h ago"},
		{168*time.Hour - 10*time.Minute, "in 6d23h"},
		{-72 * time.Hour, "3d ago"},
		{90 * time.Second, "in 90s"},
	} {
		got := relative(now, now.Add(tc.d))
		if got != tc.want {
			t.Errorf("relative(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	g := NewWithT(t)
	g.Expect(when(now, nil)).To(Equal("-"))
	g.Expect(when(now, &metav1.Time{Time: now.Add(time.Hour).In(time.FixedZone("x", 3600))})).To(Equal("2026-12-01T13:00:00Z (in 60m)"))
	g.Expect(short(now, &metav1.Time{})).To(Equal("-"))
}

// reasonConstants reads every Reason* constant of api/v1alpha1/common.go (Ready's and the other conditions'), by name.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	reasons, err := testenv.Reasons()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range reasons {
		out[r.Name] = r.Value
	}
	return out
}

// Every reason of a not-Ready condition has its hint, and every hint is for a reason of the API.
func TestHintsCoverEveryReason(t *testing.T) {
	reasons := reasonConstants(t)
	known := map[string]bool{}
	for name, v := range reasons {
		known[v] = true
		if !okReasons[v] && hints[v] == "" {
			t.Errorf("%s (%q) has no hint in format.go's table", name, v)
		}
	}
	for r := range hints {
		if !known[r] {
			t.Errorf("hint for %q, which is not a reason of api/v1alpha1/common.go", r)
		}
	}
	g := NewWithT(t)
	g.Expect(hint(&metav1.Condition{Status: metav1.ConditionTrue, Reason: partnersv1.ReasonUserNotFound})).To(BeEmpty())
	g.Expect(hint(&metav1.Condition{Status: metav1.ConditionFalse, Reason: partnersv1.ReasonUserNotFound})).To(ContainSubstring("userEmail"))
	g.Expect(hint(nil)).To(BeEmpty())
}

func TestParseKind(t *testing.T) {
	g := NewWithT(t)
	for _, s := range []string{"pa", "PA", "partneraccount", "PartnerAccounts", "partneraccounts.partners.fifteenth.com"} {
		g.Expect(parseKind(s)).To(Equal(kindPartnerAccount), s)
	}
	for _, s := range []string{"ll", "loginlink", "LoginLinks", "loginlink.partners.fifteenth.com"} {
		g.Expect(parseKind(s)).To(Equal(kindLoginLink), s)
	}
	for _, s := range []string{"secret", "p", "", "loginlink.example.com"} {
		_, err := parseKind(s)
		g.Expect(err).To(MatchError(errKind), s)
	}
	_, _, ok, err := splitRef("jane")
	g.Expect(ok).To(BeFalse())
	g.Expect(err).NotTo(HaveOccurred())
	_, _, _, err = splitRef("pa/")
	g.Expect(err).To(HaveOccurred())
}

func TestRenewFlags(t *testing.T) {
	for _, tc := range []struct {
		f    renewFlags
		args []string
		ok   bool
	}{
		{renewFlags{}, []string{"a"}, true},
		{renewFlags{all: true}, nil, true},
		{renewFlags{all: true, allNamespaces: true}, nil, true},
		{renewFlags{selector: "a=b", allNamespaces: true}, nil, true},
		{renewFlags{}, nil, false},
		{renewFlags{allNamespaces: true}, nil, false},
		{renewFlags{allNamespaces: true}, []string{"a"}, false},
		{renewFlags{all: true}, []string{"a"}, false},
		{renewFlags{all: true, selector: "a=b"}, nil, false},
	} {
		if err := tc.f.validate(tc.args); (err == nil) != tc.ok {
			t.Errorf("%+v %v: error %v, want ok=%v", tc.f, tc.args, err, tc.ok)
		}
	}
}

func link(name string, id int64, generated *time.Time, reason string) partnersv1.LoginLink {
	ll := partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ll.Status.AccountID = id
	if generated != nil {
		ll.Status.GeneratedAt = &metav1.Time{Time: *generated}
	}
	if reason != "" {
		ll.Status.Conditions = []metav1.Condition{{Type: partnersv1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason}}
	}
	return ll
}

// The hourly estimate counts generations within the last hour (not one older, not one in the
// future) per account, and requested LoginLinks that would generate (not superseded ones, not
// ones whose account is unknown).
func TestEstimate(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { return ptr.To(now.Add(d)) }
	all := []partnersv1.LoginLink{
		link("a", 1, at(-time.Minute), ""),
		link("b", 1, at(-59*time.Minute), ""),
		link("c", 1, at(-time.Hour), ""),
		link("d", 1, at(time.Minute), ""),
		link("e", 1, nil, partnersv1.ReasonSuperseded),
		link("f", 2, at(-time.Minute), ""),
		link("g", 0, at(-time.Minute), ""),
	}
	got := estimate(all, []partnersv1.LoginLink{all[2], all[4], all[6]}, now)
	g.Expect(got).To(Equal([]budget{{account: 1, recent: 2, requested: 1}}))
	g.Expect(got[0].over()).To(BeFalse())
	g.Expect(budget{recent: 9, requested: 2}.over()).To(BeTrue())
	g.Expect(budget{recent: 8, requested: 2}.over()).To(BeFalse())
}

// Who holds a user, from the PartnerAccount's status.users, the Secret's held-by annotation and
// the LoginLink's own condition.
func TestElection(t *testing.T) {
	g := NewWithT(t)
	pa := &partnersv1.PartnerAccount{Status: partnersv1.PartnerAccountStatus{Users: []partnersv1.AccountUserStatus{
		{Email: "Jane@example.com", Role: "holder", HeldBy: "jane-holder"}, {Email: "john@example.com", Role: "spouse"}}}}
	mk := func(name, user, reason string, status metav1.ConditionStatus) *partnersv1.LoginLink {
		ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: name}}
		ll.Status.UserEmail = user
		if reason != "" {
			ll.Status.Conditions = []metav1.Condition{{Type: partnersv1.ConditionReady, Status: status, Reason: reason}}
		}
		return ll
	}
	heldBy := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{partnersv1.AnnotationHeldBy: "newer"}}}
	for _, tc := range []struct {
		ll     *partnersv1.LoginLink
		pa     *partnersv1.PartnerAccount
		secret *metav1.PartialObjectMetadata
		short  string
	}{
		{mk("jane-holder", "jane@example.com", partnersv1.ReasonLinkValid, metav1.ConditionTrue), pa, nil, "holds"},
		{mk("jane-old", "jane@example.com", partnersv1.ReasonSuperseded, metav1.ConditionFalse), pa, nil, "superseded by jane-holder"},
		{mk("x", "x@example.com", partnersv1.ReasonSuperseded, metav1.ConditionFalse), nil, heldBy, "superseded by newer"},
		{mk("x", "x@example.com", partnersv1.ReasonSuperseded, metav1.ConditionFalse), nil, nil, "superseded"},
		{mk("jane-new", "jane@example.com", "", ""), pa, nil, "held by jane-holder"},
		{mk("x", "x@example.com", "", ""), nil, nil, "-"},
		{mk("jane-spouse", "john@example.com", partnersv1.ReasonUserNotFound, metav1.ConditionFalse), pa, nil, "cannot hold"},
		{mk("x", "x@example.com", partnersv1.ReasonRateLimited, metav1.ConditionFalse), nil, nil, "holds"},
	} {
		short, long := election(tc.ll, tc.pa, tc.secret)
		g.Expect(short).To(Equal(tc.short), "%s %v", tc.ll.Name, tc.ll.Status.Conditions)
		g.Expect(long).NotTo(BeEmpty())
	}
	// A renewal request not acted on yet makes a terminal failure eligible again.
	ll := mk("jane-spouse", "john@example.com", partnersv1.ReasonUserNotFound, metav1.ConditionFalse)
	ll.Annotations = map[string]string{partnersv1.AnnotationRenewRequestedAt: "2026-12-01T12:00:00Z"}
	short, _ := election(ll, pa, nil)
	g.Expect(short).To(Equal("holds"))
}

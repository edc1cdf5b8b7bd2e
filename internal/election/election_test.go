package election

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func cand(id string, age time.Duration, eligible bool) Candidate {
	return Candidate{ID: id, UID: types.UID("uid-" + id), Created: t0.Add(-age), Eligible: eligible}
}

func TestHolder(t *testing.T) {
	old := cand("ns/old", 2*time.Hour, true)
	mid := cand("ns/mid", time.Hour, true)
	young := cand("ns/young", 0, true)
	youngBroken := cand("ns/young", 0, false)
	sameSecondA := cand("ns/a", time.Minute, true)
	sameSecondB := cand("ns/b", time.Minute, true)
	pausedOld := cand("ns/old", 2*time.Hour, true)
	pausedOld.Pinned = true
	pausedBroken := cand("ns/mid", time.Hour, false)
	pausedBroken.Pinned = true
	tests := []struct {
		name  string
		cands []Candidate
		want  string
	}{
		{"the newest holds", []Candidate{old, young, mid}, "ns/young"},
		{"an ineligible newcomer does not", []Candidate{old, youngBroken, mid}, "ns/mid"},
		{"created in the same second: the greater name", []Candidate{sameSecondB, sameSecondA}, "ns/b"},
		{"nobody eligible", []Candidate{youngBroken}, ""},
		{"a paused holder keeps the user against a newer one", []Candidate{young, pausedOld, mid}, "ns/old"},
		{"an ineligible paused one does not", []Candidate{pausedBroken, old}, "ns/old"},
		{"nobody", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := Holder(tt.cands)
			if got := map[bool]string{true: h.ID, false: ""}[ok]; got != tt.want {
				t.Fatalf("Holder = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecordCurrent(t *testing.T) {
	const at = "2026-11-01T10:00:00.123Z"
	tests := []struct {
		name string
		rec  *Record
		uid  types.UID
		at   string
		want bool
	}{
		{"no Lease: nobody generated since (a link of account creation)", nil, "me", at, true},
		{"a Lease that recorded no generation yet", &Record{Holder: Candidate{UID: "other"}}, "me", at, true},
		{"my own last generation", &Record{GeneratedBy: "me", GeneratedAt: at}, "me", at, true},
		{"an older link of mine", &Record{GeneratedBy: "me", GeneratedAt: "2026-11-01T11:00:00Z"}, "me", at, false},
		{"somebody generated after me", &Record{GeneratedBy: "other", GeneratedAt: at}, "me", at, false},
		{"a call of unknown outcome after my link", &Record{GeneratedBy: "me", GeneratedAt: ""}, "me", at, false},
		{"a Secret without a link is never current", &Record{GeneratedBy: "me", GeneratedAt: ""}, "me", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.Current(tt.uid, tt.at); got != tt.want {
				t.Fatalf("Current = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	me := cand("ns/me", time.Hour, true)
	newer := cand("ns/newer", 0, true)
	older := cand("ns/older", 2*time.Hour, true)
	now := t0
	tests := []struct {
		name  string
		rec   *Record
		want  Verdict
		until time.Time
	}{
		{"no Lease: create it", nil, Proceed, time.Time{}},
		{"mine", &Record{Holder: me}, Proceed, time.Time{}},
		{"held by an older LoginLink: take it", &Record{Holder: older}, Proceed, time.Time{}},
		{"held by a newer one: ask whether it may keep it", &Record{Holder: newer}, CheckHolder, time.Time{}},
		{"a generation in flight: wait for it", &Record{Holder: older, InFlightSince: now.Add(-time.Second), InFlightFor: 35 * time.Second},
			Wait, now.Add(34 * time.Second)},
		{"my own generation in flight (a crash): wait for it too", &Record{Holder: me, InFlightSince: now, InFlightFor: 35 * time.Second},
			Wait, now.Add(35 * time.Second)},
		{"an in-flight mark that expired", &Record{Holder: newer, InFlightSince: now.Add(-time.Minute), InFlightFor: 35 * time.Second},
			CheckHolder, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.rec, me, now)
			if d.Verdict != tt.want || !d.Until.Equal(tt.until) {
				t.Fatalf("Decide = %+v, want %v until %v", d, tt.want, tt.until)
			}
		})
	}
}

func TestKey(t *testing.T) {
	a := NewKey("https://api.fifteenth.com", 12345, "John.Doe@Example.com")
	b := NewKey("https://api.fifteenth.com", 12345, "john.doe@example.com")
	if a != b || a.LeaseName() != b.LeaseName() {
		t.Fatalf("emails must compare case-insensitively: %v %v", a, b)
	}
	if c := NewKey("http://127.0.0.1:8089", 12345, "john.doe@example.com"); c.LeaseName() == a.LeaseName() {
		t.Fatal("two API endpoints must never share an election")
	}
	if got := a.String(); got != "12345/john.doe@example.com" {
		t.Fatalf("String = %q", got)
	}
	if n := len(a.LeaseName()); n > 63 {
		t.Fatalf("Lease name too long: %d", n)
	}
}

package election

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func elector(c client.Client, clk *clocktesting.FakePassiveClock) *Elector {
	return &Elector{Client: c, Cache: c, Reader: c, Namespace: "ops", InFlight: 35 * time.Second, Clock: clk,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "fifteenth-operator"}}
}

func newClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).Build()
}

func never(context.Context, Candidate) (bool, error)  { return false, nil }
func always(context.Context, Candidate) (bool, error) { return true, nil }

// Two managers (two Electors on one API server) racing for one user: exactly one proceeds,
// the other waits for its generation; after Finish the record names the winner's link.
func TestBeginIsExclusiveAcrossManagers(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	clk := clocktesting.NewFakePassiveClock(t0)
	k := NewKey("https://api.fifteenth.com", 7, "a@example.com")
	for round := range 20 {
		a, b := cand("ns/a", time.Hour, true), cand("ns/b", time.Hour, true)
		a.UID, b.UID = a.UID+typesSuffix(round), b.UID+typesSuffix(round)
		// Both decided on the same Lease (two managers' fresh reads before either Begin).
		basis, err := elector(c, clk).Live(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]Result, 2)
		for i, me := range []Candidate{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := elector(c, clk).Begin(ctx, k, me, basis, never)
				if err != nil {
					t.Errorf("round %d: %v", round, err)
				}
				results[i] = r
			}()
		}
		wg.Wait()
		proceeded := 0
		for _, r := range results {
			if r.Verdict == Proceed {
				proceeded++
			} else if r.Verdict != Changed {
				t.Fatalf("round %d: verdict %v, want Proceed or Changed (decide again)", round, r.Verdict)
			}
		}
		if proceeded != 1 {
			t.Fatalf("round %d: %d generations may run at once, want exactly 1", round, proceeded)
		}
		winner := a
		if results[1].Verdict == Proceed {
			winner = b
		}
		if err := elector(c, clk).Finish(ctx, k, winner, Generated, "2026-11-01T10:00:00Z"); err != nil {
			t.Fatal(err)
		}
		rec, err := elector(c, clk).Live(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Current(winner.UID, "2026-11-01T10:00:00Z") || !rec.InFlightSince.IsZero() {
			t.Fatalf("round %d: record %+v does not name the winner's link as current", round, rec)
		}
		clk.SetTime(clk.Now().Add(time.Minute))
	}
}

// An older LoginLink never takes the Lease from a newer eligible holder; it does from one
// that is gone or ineligible, and a call whose outcome is unknown makes every stored link stale.
func TestBeginRespectsTheHolder(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	clk := clocktesting.NewFakePassiveClock(t0)
	e := elector(c, clk)
	k := NewKey("https://api.fifteenth.com", 7, "a@example.com")
	older, newer := cand("ns/older", time.Hour, true), cand("ns/newer", 0, true)
	begin := func(me Candidate, holderEligible func(context.Context, Candidate) (bool, error)) Result {
		t.Helper()
		basis, err := e.Live(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.Begin(ctx, k, me, basis, holderEligible)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	if r := begin(newer, never); r.Verdict != Proceed {
		t.Fatalf("first Begin: %+v", r)
	}
	if err := e.Finish(ctx, k, newer, Generated, "g1"); err != nil {
		t.Fatal(err)
	}
	if r := begin(older, always); r.Verdict != CheckHolder || r.Holder.UID != newer.UID {
		t.Fatalf("an older LoginLink took the Lease from an eligible newer holder: %+v", r)
	}
	if r := begin(older, never); r.Verdict != Proceed {
		t.Fatalf("an older LoginLink could not take over from an ineligible holder: %+v", r)
	}
	// While a generation is in flight its outcome is unknown: no stored link is current.
	if rec, _ := e.Live(ctx, k); rec.Current(newer.UID, "g1") {
		t.Fatal("a link stayed current while a generation that may invalidate it is in flight")
	}
	if err := e.Finish(ctx, k, older, Unknown, ""); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.Live(ctx, k)
	if rec.Current(newer.UID, "g1") || rec.Current(older.UID, "g1") {
		t.Fatal("after a call of unknown outcome no stored link is current")
	}
	// A refused call (NoEffect) keeps the record as it was.
	if r := begin(older, never); r.Verdict != Proceed {
		t.Fatalf("holder could not begin again: %+v", r)
	}
	if err := e.Finish(ctx, k, older, Generated, "g2"); err != nil {
		t.Fatal(err)
	}
	if r := begin(older, never); r.Verdict != Proceed {
		t.Fatalf("holder could not begin again: %+v", r)
	}
	if err := e.Finish(ctx, k, older, NoEffect, ""); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.Live(ctx, k); !rec.Current(older.UID, "g2") {
		t.Fatal("a refused call made the stored link stale")
	}
	// A decision made on a Lease that changed since is refused: decide again.
	stale, _ := e.Live(ctx, k)
	if r := begin(older, never); r.Verdict != Proceed {
		t.Fatal("holder could not begin")
	}
	if err := e.Finish(ctx, k, older, Generated, "g3"); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.Begin(ctx, k, older, stale, never); r.Verdict != Changed {
		t.Fatalf("Begin on a stale decision: %+v, want Changed", r)
	}
	// A generation that outlived its fence is not recorded over a newer holder's.
	if r := begin(older, never); r.Verdict != Proceed {
		t.Fatal("holder could not begin")
	}
	clk.SetTime(clk.Now().Add(time.Minute))
	if r := begin(newer, never); r.Verdict != Proceed {
		t.Fatalf("the newer LoginLink could not take over after the fence expired: %+v", r)
	}
	if err := e.Finish(ctx, k, older, Generated, "late"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.Live(ctx, k); rec.Current(older.UID, "late") || rec.Holder.UID != newer.UID {
		t.Fatalf("a late Finish overwrote the new holder's record: %+v", rec)
	}
}

func typesSuffix(i int) types.UID { return types.UID(fmt.Sprintf("-%d", i)) }

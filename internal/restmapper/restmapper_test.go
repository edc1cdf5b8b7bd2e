package restmapper

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	linkGV  = schema.GroupVersion{Group: "partners.fifteenth.com", Version: "v1alpha1"}
	linkGK  = schema.GroupKind{Group: linkGV.Group, Kind: "LoginLink"}
	otherGK = schema.GroupKind{Group: "other.example.com", Kind: "Thing"}
)

// counting is a RESTMapper that counts the RESTMapping questions it answers.
type counting struct {
	meta.RESTMapper
	asked, resets int
}

func (c *counting) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	c.asked++
	return c.RESTMapper.RESTMapping(gk, versions...)
}

func (c *counting) Reset() { c.resets++ }

// manyGroups is a PriorityRESTMapper over many groups, as the dynamic mapper builds one: each
// group the question is not about answers with an error.
func manyGroups() meta.RESTMapper {
	var mappers meta.MultiRESTMapper
	for _, g := range []string{"", "apps", "batch", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io", "policy", linkGV.Group} {
		gv := schema.GroupVersion{Group: g, Version: "v1"}
		if g == linkGV.Group {
			gv = linkGV
		}
		d := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
		for _, k := range []string{"Alpha", "Beta", "Gamma", "LoginLink"} {
			d.Add(gv.WithKind(k), meta.RESTScopeNamespace)
		}
		mappers = append(mappers, d)
	}
	return meta.PriorityRESTMapper{Delegate: mappers}
}

func TestMemoizeAsksOnceAndCopies(t *testing.T) {
	inner := &counting{RESTMapper: manyGroups()}
	m := Memoize(inner)
	first, err := m.RESTMapping(linkGK, linkGV.Version)
	if err != nil {
		t.Fatal(err)
	}
	first.Resource.Resource = "changed by a caller"
	for range 3 {
		got, err := m.RESTMapping(linkGK, linkGV.Version)
		if err != nil {
			t.Fatal(err)
		}
		if got.Resource.Resource != "loginlinks" || got.Scope.Name() != meta.RESTScopeNameNamespace {
			t.Fatalf("kept answer = %v %v, want loginlinks, namespaced", got.Resource, got.Scope.Name())
		}
	}
	if inner.asked != 1 {
		t.Fatalf("the mapper was asked %d times, want 1", inner.asked)
	}
	// Another version, or no version, is another question.
	if _, err := m.RESTMapping(linkGK); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RESTMapping(linkGK, "v1"); err == nil {
		t.Fatal("an unknown version was answered")
	}
	if inner.asked != 3 {
		t.Fatalf("the mapper was asked %d times, want 3", inner.asked)
	}
}

func TestMemoizeDoesNotKeepErrors(t *testing.T) {
	inner := &counting{RESTMapper: manyGroups()}
	m := Memoize(inner)
	for range 2 {
		if _, err := m.RESTMapping(otherGK, "v1"); !meta.IsNoMatchError(err) {
			t.Fatalf("err = %v, want a no-match error", err)
		}
	}
	if inner.asked != 2 {
		t.Fatalf("the mapper was asked %d times, want 2 (an unknown kind is asked again)", inner.asked)
	}
}

func TestMemoizeResetForgets(t *testing.T) {
	inner := &counting{RESTMapper: manyGroups()}
	m := Memoize(inner)
	if _, err := m.RESTMapping(linkGK, linkGV.Version); err != nil {
		t.Fatal(err)
	}
	m.(meta.ResettableRESTMapper).Reset()
	if _, err := m.RESTMapping(linkGK, linkGV.Version); err != nil {
		t.Fatal(err)
	}
	if inner.asked != 2 || inner.resets != 1 {
		t.Fatalf("asked %d, resets %d; want 2 and 1", inner.asked, inner.resets)
	}
}

// The point of the package: a kept answer costs two small allocations (the caller's variadic
// versions, which escape through the interface call, and the caller's copy), where the mapper's
// answer allocates an error per group it is not about.
func TestMemoizeAllocatesOneCopy(t *testing.T) {
	inner := manyGroups()
	m := Memoize(inner)
	ask := func(rm meta.RESTMapper) func() {
		return func() {
			if _, err := rm.RESTMapping(linkGK, linkGV.Version); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := testing.AllocsPerRun(100, ask(inner))
	after := testing.AllocsPerRun(100, ask(m))
	t.Logf("allocations per answer: mapper %.0f, memoized %.0f", before, after)
	if after > 2 {
		t.Fatalf("a kept answer allocates %.0f times, want 2", after)
	}
	if before <= after {
		t.Fatalf("the mapper allocates %.0f times per answer, no more than the memo's %.0f: the test's mapper is not the dynamic mapper's shape", before, after)
	}
}

// blocking answers once released: a question asked before a Reset and answered after it.
type blocking struct {
	meta.RESTMapper
	asked   chan struct{}
	release chan struct{}
}

func (b *blocking) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	b.asked <- struct{}{}
	<-b.release
	return b.RESTMapper.RESTMapping(gk, versions...)
}

// An answer asked for before a Reset is not kept after it; the preferred version ("") is
// never kept.
func TestMemoizeResetWinsOverAnAnswerInFlight(t *testing.T) {
	inner := &blocking{RESTMapper: manyGroups(), asked: make(chan struct{}), release: make(chan struct{})}
	m := Memoize(inner)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := m.RESTMapping(linkGK, linkGV.Version); err != nil {
			t.Error(err)
		}
	}()
	<-inner.asked
	m.(meta.ResettableRESTMapper).Reset()
	close(inner.release)
	<-done
	if n := len(m.(*memo).mappings); n != 0 {
		t.Fatalf("%d answers kept from before the Reset", n)
	}
	inner.asked = make(chan struct{}, 10)
	if _, err := m.RESTMapping(linkGK, ""); err == nil {
		if n := len(m.(*memo).mappings); n != 0 {
			t.Fatalf("the preferred version's answer was kept")
		}
	}
}

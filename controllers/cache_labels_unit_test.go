package controllers

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// The table of shared label sets stays bounded: when full, a set seen once makes room, and the
// sets many objects carry stay shared.
func TestUnitSharedLabelsStayBounded(t *testing.T) {
	s := newSharedLabels(3)
	ptrOf := func(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }
	common := s.share("u1", map[string]string{"a": "1"})
	if got := s.share("u2", map[string]string{"a": "1"}); ptrOf(got) != ptrOf(common) {
		t.Fatal("the second object with a set did not get the shared map")
	}
	for i := range 100 {
		own := map[string]string{"a": "1", "id": fmt.Sprint(i)}
		if got := s.share(types.UID(fmt.Sprint("own-", i)), own); ptrOf(got) != ptrOf(own) {
			t.Fatalf("a set seen for the first time came back as another map")
		}
		if len(s.sets) > 3 {
			t.Fatalf("%d sets kept, at most 3", len(s.sets))
		}
	}
	if got := s.share("u3", map[string]string{"a": "1"}); ptrOf(got) != ptrOf(common) {
		t.Fatal("sets seen once pushed out the common set")
	}
	// Full of sets each carried by two objects: a new set is not kept, and is handed back as it is.
	full := newSharedLabels(1)
	full.share("u1", map[string]string{"a": "1"})
	full.share("u2", map[string]string{"a": "1"})
	own := map[string]string{"b": "2"}
	if got := full.share("u3", own); ptrOf(got) != ptrOf(own) || len(full.sets) != 1 {
		t.Fatalf("full table: got %v, %d sets", got, len(full.sets))
	}
	// Keys and values are told apart: {"ab": "c"} is not {"a": "bc"}.
	if labelKey(map[string]string{"ab": "c"}) == labelKey(map[string]string{"a": "bc"}) {
		t.Fatal("two label sets have one key")
	}
}

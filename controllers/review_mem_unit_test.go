package controllers

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// Review (memory): sharedLabels counted calls, not objects, so a set carried by ONE object was
// "seen" again each time that object was transformed again (every watch update, every relist).
// Once maxLabelSets such one-object sets had each been updated once, none could be evicted and
// no label set that appeared later was shared, however many objects carried it (e.g. the labels
// of a secretTemplate added after the manager started).
func TestUnitReviewSharedLabelsFrozenByUpdatesOfOneObject(t *testing.T) {
	s := newSharedLabels(maxLabelSets)
	ptrOf := func(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }
	// maxLabelSets objects with labels of their own (a Namespace's kubernetes.io/metadata.name,
	// a PartnerAccount's client label), each received twice (added, then one status update).
	for i := range maxLabelSets {
		for range 2 {
			s.share(types.UID(fmt.Sprint("ns-uid-", i)), map[string]string{"kubernetes.io/metadata.name": fmt.Sprint("ns-", i)})
		}
	}
	// Later, 100 Secrets with the same template labels.
	first := s.share("secret-0", map[string]string{"app": "billing", "partners.fifteenth.com/managed-by": "fifteenth-operator"})
	shared := 0
	for i := range 99 {
		got := s.share(types.UID(fmt.Sprint("secret-", i+1)), map[string]string{"app": "billing", "partners.fifteenth.com/managed-by": "fifteenth-operator"})
		if ptrOf(got) == ptrOf(first) {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("100 objects with one label set hold 100 maps: the table is full of sets each carried by one object (seen twice by its own updates)")
	}
}

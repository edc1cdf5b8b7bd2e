package recorder

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// recurs records the victim's Warning, then five more times a minute apart (within the
// series window), and returns how many Events about the victim exist.
func recurs(t *testing.T, r *Recorder, cs *fake.Clientset, clk *clocktesting.FakeClock) int {
	t.Helper()
	for i := range 6 {
		if i > 0 {
			clk.Step(time.Minute)
		}
		r.Eventf(pod("victim"), nil, corev1.EventTypeWarning, "CreateFailed", "Create", "boom")
		drain(r)
	}
	n := 0
	for _, ev := range eventsIn(t, cs) {
		if ev.Regarding.Name == "victim" {
			n++
		}
	}
	return n
}

// An Event dropped because the queue was full was still remembered as sent: every repeat of it
// within SeriesWindow (and each repeat moves the window) was a series patch of an Event that
// does not exist, which send swallowed on NotFound. client-go creates the Event when the patch
// finds none (recordEvent: IsKeyNotFoundError -> Create). A Warning that recurs every few
// minutes was thus never shown.
func TestReviewDroppedEventNeverAppearsWhileItRecurs(t *testing.T) {
	r, cs, clk := newRecorder(t)
	for i := range QueueSize { // the queue full: the victim's first Warning is dropped
		r.Eventf(pod(fmt.Sprintf("filler-%d", i)), nil, corev1.EventTypeNormal, "Filler", "Fill", "x")
	}
	if recurs(t, r, cs, clk) == 0 {
		t.Fatalf("the Warning recurred 5 more times within the window, but no Event about it exists")
	}
}

// Same with a Create that failed on a short API server outage (5 retriable failures): the
// repeats patched a non-existent Event forever.
func TestReviewFailedCreateNeverAppearsWhileItRecurs(t *testing.T) {
	r, cs, clk := newRecorder(t)
	r.retryAfter = time.Millisecond
	failures := tries
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return false, nil, nil
	})
	if recurs(t, r, cs, clk) == 0 {
		t.Fatalf("the API server is back and the Warning recurred 5 times, but no Event about it exists")
	}
}

// The note is cut at byte 1024, possibly inside a UTF-8 sequence. encoding/json then sends
// U+FFFD (3 bytes) for the broken bytes: the API server sees more than 1024 bytes and rejects
// the Event as Invalid (not retried): the truncation meant to keep a long note fails.
func TestReviewNoteTruncationKeepsValidUTF8(t *testing.T) {
	r, _, _ := newRecorder(t)
	note := strings.Repeat("a", maxNote-1) + "é" // 1025 bytes
	r.Eventf(pod("a"), nil, corev1.EventTypeWarning, "CreateFailed", "Create", "%s", note)
	ev := (<-r.queue).event
	if !utf8.ValidString(ev.Note) {
		t.Errorf("the truncated note is not valid UTF-8")
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var wire eventsv1.Event
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire.Note) > maxNote {
		t.Fatalf("the note on the wire has %d bytes, over the API's %d: the Event would be rejected", len(wire.Note), maxNote)
	}
}

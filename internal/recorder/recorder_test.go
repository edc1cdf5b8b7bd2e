package recorder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID("uid-" + name)}}
}

func newRecorder(t *testing.T) (*Recorder, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return New(cs.EventsV1(), s, "fifteenth-operator", "pod-1", clk), cs, clk
}

// drain sends what is queued (what Start does), without a goroutine.
func drain(r *Recorder) {
	for {
		select {
		case it := <-r.queue:
			r.send(context.Background(), it)
		default:
			return
		}
	}
}

func eventsIn(t *testing.T, cs *fake.Clientset) []eventsv1.Event {
	t.Helper()
	l, err := cs.EventsV1().Events("team-a").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestEventIsWritten(t *testing.T) {
	r, cs, _ := newRecorder(t)
	r.Eventf(pod("a"), pod("b"), corev1.EventTypeNormal, "Generated", "Generate", "generated a link for %s", "a@example.com")
	drain(r)
	evs := eventsIn(t, cs)
	if len(evs) != 1 {
		t.Fatalf("%d Events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Reason != "Generated" || ev.Action != "Generate" || ev.Type != corev1.EventTypeNormal ||
		ev.Note != "generated a link for a@example.com" || ev.Regarding.Name != "a" || ev.Regarding.Kind != "Pod" ||
		ev.Related == nil || ev.Related.Name != "b" || ev.ReportingController != "fifteenth-operator" ||
		ev.ReportingInstance != "pod-1" || !ev.EventTime.Time.Equal(t0) || ev.Series != nil || !strings.HasPrefix(ev.Name, "a.") {
		t.Fatalf("Event = %+v", ev)
	}
}

// A repeat within the window counts into the first Event's series (client-go's behaviour);
// after the window it is a new Event.
func TestRepeatsMakeASeries(t *testing.T) {
	r, cs, clk := newRecorder(t)
	for range 3 {
		r.Eventf(pod("a"), nil, corev1.EventTypeWarning, "GenerationFailed", "Generate", "failed")
		clk.Step(time.Minute)
	}
	drain(r)
	evs := eventsIn(t, cs)
	if len(evs) != 1 || evs[0].Series == nil || evs[0].Series.Count != 3 ||
		!evs[0].Series.LastObservedTime.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Events after three repeats = %+v", evs)
	}
	clk.Step(SeriesWindow)
	r.Eventf(pod("a"), nil, corev1.EventTypeWarning, "GenerationFailed", "Generate", "failed")
	drain(r)
	if evs := eventsIn(t, cs); len(evs) != 2 {
		t.Fatalf("a repeat after the window: %d Events, want 2", len(evs))
	}
	// Another reason is another Event.
	r.Eventf(pod("a"), nil, corev1.EventTypeNormal, "Generated", "Generate", "ok")
	drain(r)
	if evs := eventsIn(t, cs); len(evs) != 3 {
		t.Fatalf("another reason: %d Events, want 3", len(evs))
	}
}

// What is remembered is bounded: beyond Recent distinct Events the least recent is forgotten
// (its repeat becomes a new Event), and a full queue drops instead of blocking.
func TestMemoryIsBounded(t *testing.T) {
	r, cs, _ := newRecorder(t)
	for i := range Recent + 10 {
		r.Eventf(pod(fmt.Sprint("p", i)), nil, corev1.EventTypeNormal, "Created", "Create", "created")
		if i%100 == 0 {
			drain(r)
		}
	}
	drain(r)
	if len(r.recent) != Recent || r.order.Len() != Recent {
		t.Fatalf("remembers %d (%d in order), want %d", len(r.recent), r.order.Len(), Recent)
	}
	r.Eventf(pod("p0"), nil, corev1.EventTypeNormal, "Created", "Create", "created")
	drain(r)
	if n := len(eventsIn(t, cs)); n != Recent+11 {
		t.Fatalf("%d Events, want %d (the forgotten one's repeat is a new Event)", n, Recent+11)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range QueueSize + 5 {
			r.Eventf(pod(fmt.Sprint("q", i)), nil, corev1.EventTypeNormal, "Created", "Create", "created")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventf blocked on a full queue")
	}
	if len(r.queue) != QueueSize || r.dropped != 5 {
		t.Fatalf("queue %d, dropped %d; want %d and 5", len(r.queue), r.dropped, QueueSize)
	}
}

// A failure the API server may recover from is tried again; one it will refuse again is not.
func TestSendRetries(t *testing.T) {
	r, cs, _ := newRecorder(t)
	r.retryAfter = time.Millisecond
	failures := 2
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("etcd is away")
		}
		return false, nil, nil
	})
	r.Eventf(pod("a"), nil, corev1.EventTypeNormal, "Created", "Create", "created")
	drain(r)
	if n := len(eventsIn(t, cs)); n != 1 || failures != 0 {
		t.Fatalf("%d Events after two failures, %d failures left", n, failures)
	}

	refused := 0
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		refused++
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "x", errors.New("no"))
	})
	r.Eventf(pod("b"), nil, corev1.EventTypeNormal, "Created", "Create", "created")
	drain(r)
	if refused != 1 {
		t.Fatalf("a refused Event was tried %d times, want 1", refused)
	}
}

func TestBadEventsAreNotSent(t *testing.T) {
	r, cs, _ := newRecorder(t)
	r.Eventf(pod("a"), nil, "Loud", "Created", "Create", "created")
	r.Eventf(&unregistered{}, nil, corev1.EventTypeNormal, "Created", "Create", "created")
	long := strings.Repeat("x", 2000)
	r.Eventf(pod("b"), nil, corev1.EventTypeNormal, "Created", "Create", "%s", long)
	drain(r)
	evs := eventsIn(t, cs)
	if len(evs) != 1 || len(evs[0].Note) != maxNote {
		t.Fatalf("Events = %d (note %d bytes)", len(evs), len(evs[0].Note))
	}
}

type unregistered struct{ corev1.Pod }

func (u *unregistered) DeepCopyObject() runtime.Object { return u }

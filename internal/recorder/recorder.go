// Package recorder records the controllers' Kubernetes Events (events.k8s.io/v1) in memory
// bounded by a constant.
//
// client-go's events/v1 broadcaster, which controller-runtime's GetEventRecorder returns, keeps
// a copy of every distinct Event it recorded for 6 to 12 minutes (to count repeats into a
// series), and starts a goroutine per Event. At 10,000 accounts that held 12.5 of the manager's
// 113 MB of heap halfway through the benchmark, and grows with the rate of Events, not with
// anything the operator keeps. This recorder keeps the same series bookkeeping for the last
// Recent distinct Events only, and sends through one goroutine from a queue of QueueSize:
// when the API server cannot keep up, Events are dropped (and counted in the log), never the
// manager's memory.
package recorder

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	// Recent is how many distinct Events are remembered to count their repeats.
	Recent = 1024
	// QueueSize is how many Events may wait to be sent.
	QueueSize = 1000
	// SeriesWindow is how long after its last occurrence a repeat still counts into an Event's
	// series (client-go's finishTime): later, a repeat is a new Event.
	SeriesWindow = 6 * time.Minute
	// maxNote is the API's limit on an Event's note.
	maxNote = 1024
	// tries bounds the attempts to send one Event while the API server fails.
	tries = 5
)

// Recorder is an events.EventRecorder. Start sends its Events; Eventf never blocks.
type Recorder struct {
	sink       eventsv1client.EventsGetter
	scheme     *runtime.Scheme
	controller string
	instance   string
	clock      clock.Clock
	retryAfter time.Duration

	queue chan item

	mu      sync.Mutex
	recent  map[key]*list.Element // of *seen
	order   *list.List            // most recent first
	dropped int
	// lastNano is the time in the last Event's name: names get increasing times, so that two
	// Events about one object in the same clock tick do not share a name.
	lastNano int64
}

var _ events.EventRecorder = &Recorder{}

// key is what makes two Events the same one repeated (client-go's isomorphic key): the note
// is not part of it.
type key struct {
	eventType, action, reason string
	regarding, related        corev1.ObjectReference
}

// seen is an Event sent or about to be, and its series so far. The Event is kept whole, so
// that a repeat whose Event is gone (dropped, refused, deleted by its TTL) creates it again
// with its series, as client-go does.
type seen struct {
	key   key
	event *eventsv1.Event
	count int32
	last  time.Time
}

// item is what the queue carries: an Event to create, or (series set) to count a repeat
// into; key forgets it when it could not be written.
type item struct {
	key   key
	event *eventsv1.Event
}

// New returns a Recorder that writes Events through sink, as controller (reportingController)
// from instance (reportingInstance, e.g. the pod's name).
func New(sink eventsv1client.EventsGetter, scheme *runtime.Scheme, controller, instance string, clk clock.Clock) *Recorder {
	return &Recorder{sink: sink, scheme: scheme, controller: controller, instance: instance, clock: clk,
		retryAfter: time.Second, queue: make(chan item, QueueSize),
		recent: map[key]*list.Element{}, order: list.New()}
}

// Eventf records an Event about regarding (and related, which may be nil): queued to be sent,
// or counted into the series of the same Event seen within SeriesWindow.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	log := logf.Log.WithName("events")
	if eventtype != corev1.EventTypeNormal && eventtype != corev1.EventTypeWarning {
		log.Error(nil, "Unsupported event type", "type", eventtype, "reason", reason)
		return
	}
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		log.Error(err, "Could not refer to the object of an Event", "reason", reason)
		return
	}
	k := key{eventType: eventtype, action: action, reason: reason, regarding: *ref}
	if related != nil {
		if rel, err := reference.GetReference(r.scheme, related); err == nil {
			k.related = *rel
		}
	}
	now := r.clock.Now()
	r.mu.Lock()
	if el, ok := r.recent[k]; ok && now.Sub(el.Value.(*seen).last) <= SeriesWindow {
		s := el.Value.(*seen)
		s.count++
		s.last = now
		r.order.MoveToFront(el)
		ev := s.event.DeepCopy()
		ev.Series = &eventsv1.EventSeries{Count: s.count, LastObservedTime: metav1.MicroTime{Time: now}}
		r.mu.Unlock()
		r.enqueue(item{key: k, event: ev})
		return
	}
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	msg := truncate(fmt.Sprintf(note, args...), maxNote)
	r.lastNano = max(r.lastNano+1, now.UnixNano())
	name := fmt.Sprintf("%v.%x", ref.Name, r.lastNano)
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: namespace, Name: name},
		EventTime:           metav1.MicroTime{Time: now},
		ReportingController: r.controller, ReportingInstance: r.instance,
		Action: action, Reason: reason, Type: eventtype, Note: msg, Regarding: *ref,
	}
	if related != nil && k.related.Kind != "" {
		rel := k.related
		ev.Related = &rel
	}
	r.remember(&seen{key: k, event: ev.DeepCopy(), count: 1, last: now})
	r.mu.Unlock()
	r.enqueue(item{key: k, event: ev})
}

// truncate cuts s to at most n bytes, at the start of a character: the API counts a note's
// bytes, and half a character would be sent as a three-byte replacement.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// forget drops k's series: the Event could not be written, so its next occurrence is a new
// Event rather than a repeat of one that does not exist.
func (r *Recorder) forget(k key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.recent[k]; ok {
		r.order.Remove(el)
		delete(r.recent, k)
	}
}

// remember keeps s as the most recent Event, forgetting the least recent beyond Recent.
// Called with mu held.
func (r *Recorder) remember(s *seen) {
	if el, ok := r.recent[s.key]; ok {
		r.order.Remove(el)
	}
	r.recent[s.key] = r.order.PushFront(s)
	for r.order.Len() > Recent {
		oldest := r.order.Back()
		r.order.Remove(oldest)
		delete(r.recent, oldest.Value.(*seen).key)
	}
}

// enqueue hands it to the sending goroutine, or drops it (and forgets its series) when the
// queue is full.
func (r *Recorder) enqueue(it item) {
	select {
	case r.queue <- it:
	default:
		r.forget(it.key)
		r.mu.Lock()
		r.dropped++
		n := r.dropped
		r.mu.Unlock()
		logf.Log.WithName("events").Info("Dropped an Event: too many waiting to be sent", "reason", it.event.Reason, "dropped", n)
	}
}

// Start sends the queued Events until ctx ends (a manager Runnable).
func (r *Recorder) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-r.queue:
			r.send(ctx, it)
		}
	}
}

// NeedLeaderElection is false: a standby's Events are sent too.
func (r *Recorder) NeedLeaderElection() bool { return false }

// send writes an Event: a new one is created, a repeat patches its series (and creates the
// Event, series included, when it is gone). A failure the API server may recover from is
// tried again, a few times; an Event that could not be written is forgotten.
func (r *Recorder) send(ctx context.Context, it item) {
	ev := it.event
	c := r.sink.Events(ev.Namespace)
	var err error
	for attempt := 1; attempt <= tries; attempt++ {
		create := ev.Series == nil
		if !create {
			patch := fmt.Sprintf(`{"series":{"count":%d,"lastObservedTime":%q}}`, ev.Series.Count,
				ev.Series.LastObservedTime.UTC().Format(metav1.RFC3339Micro))
			_, err = c.Patch(ctx, ev.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			create = apierrors.IsNotFound(err)
		}
		if create {
			ev.ResourceVersion = ""
			_, err = c.Create(ctx, ev, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return
			}
		}
		if err == nil || !retriable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt) * r.retryAfter):
		}
	}
	if err != nil {
		r.forget(it.key)
		logf.FromContext(ctx).WithName("events").Info("Could not write an Event", "reason", ev.Reason, "error", err.Error())
	}
}

// retriable: the API server may accept the same request later.
func retriable(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		!isStatus(err)
}

func isStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s)
}

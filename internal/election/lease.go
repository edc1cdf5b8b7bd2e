package election

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and annotations of a user's Lease.
const (
	// LabelAccountID is the account's ID, for people and label selectors (the manager maps a
	// Lease to its account by AnnotationUser, and its cache drops this label).
	LabelAccountID = "partners.fifteenth.com/account-id"
	// AnnotationUser is the Key's "<accountID>/<user>", for people reading the Lease and for
	// the manager, which maps a Lease to its account by it.
	AnnotationUser = "partners.fifteenth.com/user"
	// AnnotationHolderUID and AnnotationHolderCreated describe the holder, so that a newcomer
	// compares itself with it without reading it.
	AnnotationHolderUID     = "partners.fifteenth.com/holder-uid"
	AnnotationHolderCreated = "partners.fifteenth.com/holder-created"
	// AnnotationHolderGeneration is the holder's metadata.generation when it took the Lease:
	// while that is still its generation, its spec is the one it took the Lease for.
	AnnotationHolderGeneration = "partners.fifteenth.com/holder-generation"
	// AnnotationGeneratedBy and AnnotationGeneratedAt record the user's last generation.
	AnnotationGeneratedBy = "partners.fifteenth.com/generated-by"
	AnnotationGeneratedAt = "partners.fifteenth.com/generated-at"
	// AnnotationPreviousGeneratedBy and AnnotationPreviousGeneratedAt keep the record a
	// generation in flight replaced, restored when the API certainly did nothing.
	AnnotationPreviousGeneratedBy = "partners.fifteenth.com/previous-generated-by"
	AnnotationPreviousGeneratedAt = "partners.fifteenth.com/previous-generated-at"
)

// Elector reads and takes the users' Leases.
type Elector struct {
	// Client writes Leases; Cache reads them from the informer cache; Reader reads them live.
	Client client.Client
	Cache  client.Reader
	Reader client.Reader
	// Namespace holds the Leases.
	Namespace string
	// InFlight bounds a generation: longer than the API client's timeout, so that a call
	// still under way is never overtaken.
	InFlight time.Duration
	Clock    clock.PassiveClock
	// Labels are added to every Lease (the label the manager's cache selects on).
	Labels map[string]string
}

// Cached returns the key's Lease as the cache shows it, or nil when there is none.
func (e *Elector) Cached(ctx context.Context, k Key) (*Record, error) {
	return e.read(ctx, e.Cache, k)
}

// Live returns the key's Lease as the API server has it, or nil when there is none.
func (e *Elector) Live(ctx context.Context, k Key) (*Record, error) {
	return e.read(ctx, e.Reader, k)
}

func (e *Elector) read(ctx context.Context, r client.Reader, k Key) (*Record, error) {
	l := &coordinationv1.Lease{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: k.LeaseName()}, l); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read the Lease of user %s: %w", k, err)
	}
	return recordOf(l), nil
}

// Result is the outcome of Begin.
type Result struct {
	// Verdict is Proceed (the Lease is taken: call the API, then Finish), Wait (until Until),
	// or CheckHolder (the Lease's holder, newer and eligible, keeps the user: Holder).
	Verdict Verdict
	Until   time.Time
	Holder  Candidate
}

// Begin takes the key's Lease for me before a generation, reading it live. basis is the Lease
// the decision was made on (nil: there was none): when it changed since, Begin answers
// Changed. holderEligible tells, from a live read, whether the Lease's current holder (newer
// than me) may keep the user; it is called only when that question arises.
func (e *Elector) Begin(ctx context.Context, k Key, me Candidate, basis *Record,
	holderEligible func(context.Context, Candidate) (bool, error)) (Result, error) {
	now := e.Clock.Now()
	l := &coordinationv1.Lease{}
	err := e.Reader.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: k.LeaseName()}, l)
	if apierrors.IsNotFound(err) {
		if basis != nil {
			return Result{Verdict: Changed}, nil
		}
		l = e.newLease(k)
		e.take(l, me, now)
		if err := e.Client.Create(ctx, l); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return Result{Verdict: Changed}, nil // another took it first: decide again
			}
			return Result{}, fmt.Errorf("cannot create the Lease of user %s: %w", k, err)
		}
		return Result{Verdict: Proceed}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("cannot read the Lease of user %s: %w", k, err)
	}
	rec := recordOf(l)
	if basis == nil || basis.ResourceVersion != rec.ResourceVersion {
		return Result{Verdict: Changed}, nil
	}
	switch d := Decide(rec, me, now); d.Verdict {
	case Wait:
		return Result{Verdict: Wait, Until: d.Until}, nil
	case CheckHolder:
		ok, err := holderEligible(ctx, rec.Holder)
		if err != nil {
			return Result{}, err
		}
		if ok {
			return Result{Verdict: CheckHolder, Holder: rec.Holder}, nil
		}
	}
	e.take(l, me, now)
	if err := e.Client.Update(ctx, l); err != nil {
		if apierrors.IsConflict(err) {
			return Result{Verdict: Changed}, nil // changed under us: decide again
		}
		return Result{}, fmt.Errorf("cannot take the Lease of user %s: %w", k, err)
	}
	return Result{Verdict: Proceed}, nil
}

// Finish records how me's generation ended and ends the in-flight mark. A Lease taken over
// meanwhile (me's call outlived InFlight) is left as it is: me's link is then not current.
func (e *Elector) Finish(ctx context.Context, k Key, me Candidate, o Outcome, generatedAt string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := &coordinationv1.Lease{}
		if err := e.Reader.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: k.LeaseName()}, l); err != nil {
			return client.IgnoreNotFound(err)
		}
		if l.Annotations[AnnotationHolderUID] != string(me.UID) {
			return nil
		}
		l.Spec.RenewTime = nil
		switch o {
		case Generated:
			l.Annotations[AnnotationGeneratedBy] = string(me.UID)
			l.Annotations[AnnotationGeneratedAt] = generatedAt
		case Unknown:
			l.Annotations[AnnotationGeneratedBy] = string(me.UID)
			l.Annotations[AnnotationGeneratedAt] = ""
		case NoEffect:
			l.Annotations[AnnotationGeneratedBy] = l.Annotations[AnnotationPreviousGeneratedBy]
			l.Annotations[AnnotationGeneratedAt] = l.Annotations[AnnotationPreviousGeneratedAt]
		}
		delete(l.Annotations, AnnotationPreviousGeneratedBy)
		delete(l.Annotations, AnnotationPreviousGeneratedAt)
		return e.Client.Update(ctx, l)
	})
}

func (e *Elector) newLease(k Key) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: k.LeaseName(),
		Labels: map[string]string{}, Annotations: map[string]string{AnnotationUser: k.String()}}}
	maps.Copy(l.Labels, e.Labels)
	l.Labels[LabelAccountID] = strconv.FormatInt(k.AccountID, 10)
	return l
}

// take makes me the Lease's holder with a generation in flight from now.
func (e *Elector) take(l *coordinationv1.Lease, me Candidate, now time.Time) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	if l.Annotations[AnnotationHolderUID] != string(me.UID) {
		l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
	}
	l.Spec.HolderIdentity = ptr.To(me.ID)
	l.Annotations[AnnotationHolderUID] = string(me.UID)
	l.Annotations[AnnotationHolderCreated] = me.Created.UTC().Format(time.RFC3339Nano)
	if me.Generation != 0 {
		l.Annotations[AnnotationHolderGeneration] = strconv.FormatInt(me.Generation, 10)
	} else {
		delete(l.Annotations, AnnotationHolderGeneration)
	}
	// Until Finish, the outcome is unknown: every earlier link of the user may be invalid.
	l.Annotations[AnnotationPreviousGeneratedBy] = l.Annotations[AnnotationGeneratedBy]
	l.Annotations[AnnotationPreviousGeneratedAt] = l.Annotations[AnnotationGeneratedAt]
	l.Annotations[AnnotationGeneratedBy] = string(me.UID)
	l.Annotations[AnnotationGeneratedAt] = ""
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	secs := min(int64((e.InFlight+time.Second-1)/time.Second), math.MaxInt32)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(secs)) //nolint:gosec // bounded above

}

// recordOf reads a Lease.
func recordOf(l *coordinationv1.Lease) *Record {
	r := &Record{
		Holder:          Candidate{ID: ptr.Deref(l.Spec.HolderIdentity, ""), UID: types.UID(l.Annotations[AnnotationHolderUID])},
		GeneratedBy:     types.UID(l.Annotations[AnnotationGeneratedBy]),
		GeneratedAt:     l.Annotations[AnnotationGeneratedAt],
		ResourceVersion: l.ResourceVersion,
	}
	r.Holder.Created, _ = time.Parse(time.RFC3339Nano, l.Annotations[AnnotationHolderCreated])
	r.Holder.Generation, _ = strconv.ParseInt(l.Annotations[AnnotationHolderGeneration], 10, 64)
	if l.Spec.RenewTime != nil {
		r.InFlightSince = l.Spec.RenewTime.Time
		r.InFlightFor = time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second
	}
	return r
}

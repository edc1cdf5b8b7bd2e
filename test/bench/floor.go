package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// writeKind is one kind of write kube-apiserver counts in apiserver_request_total.
type writeKind struct {
	group, resource, subresource, verb string
}

func (k writeKind) String() string {
	r := k.resource
	if k.group != "" {
		r += "." + k.group
	}
	if k.subresource != "" {
		r += "/" + k.subresource
	}
	return k.verb + " " + r
}

var writeVerbs = []string{"POST", "PUT", "PATCH", "APPLY", "DELETE"}

// writesBetween returns the writes kube-apiserver served between two readings of its
// metrics, by kind, whatever their answer (a conflict costs the server a request too).
func writesBetween(before, after scrape) map[writeKind]int {
	count := func(s scrape) map[writeKind]float64 {
		out := map[writeKind]float64{}
		for _, x := range s.samples {
			if x.name != "apiserver_request_total" {
				continue
			}
			k := writeKind{label(x.labels, "group"), label(x.labels, "resource"), label(x.labels, "subresource"), label(x.labels, "verb")}
			if slices.Contains(writeVerbs, k.verb) {
				out[k] += x.value
			}
		}
		return out
	}
	b, a := count(before), count(after)
	out := map[writeKind]int{}
	for k, v := range a {
		if d := int(v - b[k]); d > 0 {
			out[k] = d
		}
	}
	return out
}

func sortedKinds(m map[writeKind]int) []writeKind {
	keys := make([]writeKind, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b writeKind) int { return strings.Compare(a.String(), b.String()) })
	return keys
}

// floorNS holds the floor's objects; no manager watches it.
const floorNS = "floor"

// replayable are the resources the floor knows how to write, by group/resource.
var replayable = map[string]bool{
	"/secrets": true, "/events": true, "events.k8s.io/events": true, "coordination.k8s.io/leases": true,
	"partners.fifteenth.com/partneraccounts": true, "partners.fifteenth.com/loginlinks": true,
}

// floorObject returns a new object of the resource, of about the size of the operator's own.
func floorObject(group, resource string, i int) client.Object {
	meta := metav1.ObjectMeta{Name: fmt.Sprintf("floor-%d", i), Namespace: floorNS,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "bench-floor"}}
	switch group + "/" + resource {
	case "/secrets":
		meta.Annotations = map[string]string{"partners.fifteenth.com/expires-at": time.Now().Format(time.RFC3339),
			"partners.fifteenth.com/stored-at": time.Now().Format(time.RFC3339Nano), "partners.fifteenth.com/checksum": strings.Repeat("c", 64)}
		return &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"link": []byte("https://app.example/login/" + strings.Repeat("t", 160)), "email": []byte("someone@clients.example")}}
	case "/events", "events.k8s.io/events":
		return &eventsv1.Event{ObjectMeta: meta, EventTime: metav1.NowMicro(), ReportingController: "bench-floor", ReportingInstance: "bench-floor",
			Action: "Generate", Reason: "Generated", Type: corev1.EventTypeNormal, Note: "Generated a login link",
			Regarding: corev1.ObjectReference{Kind: "LoginLink", Namespace: floorNS, Name: meta.Name}}
	case "coordination.k8s.io/leases":
		return &coordinationv1.Lease{ObjectMeta: meta, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("floor/ll"), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	case "partners.fifteenth.com/partneraccounts":
		return &partnersv1.PartnerAccount{ObjectMeta: meta, Spec: partnersv1.PartnerAccountSpec{Email: fmt.Sprintf("floor-%d@clients.example", i), FirstName: "Client", LastName: strconv.Itoa(i)}}
	default: // partners.fifteenth.com/loginlinks
		return &partnersv1.LoginLink{ObjectMeta: meta, Spec: partnersv1.LoginLinkSpec{AccountID: ptr.To(int64(i + 1)), SendNotification: ptr.To(false)}}
	}
}

// mutate changes obj in place for an update (PUT): an annotation, and the renew time of a Lease.
func mutate(obj client.Object, i int) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a["bench.fifteenth.com/floor"] = strconv.Itoa(i)
	obj.SetAnnotations(a)
	if l, ok := obj.(*coordinationv1.Lease); ok {
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	}
}

// setStatus writes a condition that differs on every write (a write that changes nothing
// would not reach etcd).
func setStatus(obj client.Object, i int) {
	c := []metav1.Condition{{Type: partnersv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Floor", ObservedGeneration: obj.GetGeneration(),
		Message: "write " + strconv.Itoa(i), LastTransitionTime: metav1.Now()}}
	switch o := obj.(type) {
	case *partnersv1.PartnerAccount:
		o.Status.Conditions = c
	case *partnersv1.LoginLink:
		o.Status.Conditions = c
	}
}

func statusPatch(i int) []byte {
	p, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []metav1.Condition{{Type: partnersv1.ConditionReady,
		Status: metav1.ConditionFalse, Reason: "Floor", ObservedGeneration: 1, Message: "write " + strconv.Itoa(i), LastTransitionTime: metav1.Now()}}}})
	return p
}

func metaPatch(i int) []byte {
	return []byte(`{"metadata":{"annotations":{"bench.fifteenth.com/floor":"` + strconv.Itoa(i) + `"}}}`)
}

// putRetrying updates obj (its status when status is set); a patch of the same object by
// another writer makes it conflict, and then it reads the object and writes again, once more
// at most, counting the retries.
func putRetrying(c client.Client, obj client.Object, status bool, i int, retries *atomic.Int64) error {
	for attempt := 0; ; attempt++ {
		var err error
		if status {
			setStatus(obj, i)
			err = c.Status().Update(ctx, obj)
		} else {
			mutate(obj, i)
			err = c.Update(ctx, obj)
		}
		if !apierrors.IsConflict(err) || attempt == 1 {
			return err
		}
		retries.Add(1)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
	}
}

// pooled is an object the floor created, locked while an update reads its resourceVersion.
type pooled struct {
	mu  sync.Mutex
	obj client.Object
}

// floorResult is what the floor did.
type floorResult struct {
	writes   int            // writes issued in the timed phases
	skipped  map[string]int // writes of resources the floor cannot replay, by kind
	elapsed  time.Duration
	failures int
	retries  atomic.Int64 // updates written again after a conflict
}

// floor issues the writes of the given kinds on fresh objects in floorNS with a plain
// controller-runtime client (no client-side rate limit: controller-runtime's QPS -1, as the
// manager has) from workers goroutines: first the creates, then the updates and status
// patches, then the deletes. Objects that the updates need and the creates do not provide are
// created first, untimed. It returns the time of the three timed phases.
func (b *bench) floor(writes map[writeKind]int, workers int) (*floorResult, error) {
	res := &floorResult{skipped: map[string]int{}}
	cfg := rest.CopyConfig(b.cfg)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return res, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: floorNS}}); err != nil {
		return res, err
	}
	type resource struct{ group, name string }
	creates, updates, deletes := map[resource]int{}, map[resource]int{}, map[resource]int{}
	for k, n := range writes {
		r := resource{k.group, k.resource}
		if !replayable[k.group+"/"+k.resource] || (k.subresource != "" && k.subresource != "status") {
			res.skipped[k.String()] += n
			continue
		}
		switch k.verb {
		case "POST":
			creates[r] += n
		case "DELETE":
			deletes[r] += n
		default:
			updates[r] += n
		}
	}
	pools := map[resource][]*pooled{}
	var poolMu sync.Mutex
	add := func(r resource, obj client.Object) {
		poolMu.Lock()
		pools[r] = append(pools[r], &pooled{obj: obj})
		poolMu.Unlock()
	}
	var failMu sync.Mutex
	failed := func(err error) {
		if err != nil {
			failMu.Lock()
			res.failures++
			failMu.Unlock()
		}
	}
	// Untimed: the objects updates and deletes need beyond those the creates make.
	next := 0
	for r := range replayable {
		g, name, _ := strings.Cut(r, "/")
		rs := resource{g, name}
		need := min(max(updates[rs], deletes[rs]), max(b.o.n, 1)) - creates[rs]
		if updates[rs]+deletes[rs] == 0 || need <= 0 {
			continue
		}
		if err := parallel(need, workers, func(int) error {
			poolMu.Lock()
			i := next
			next++
			poolMu.Unlock()
			obj := floorObject(rs.group, rs.name, i)
			if err := c.Create(ctx, obj); err != nil {
				return err
			}
			add(rs, obj)
			return nil
		}); err != nil {
			return res, err
		}
	}
	type op func() error
	var createOps, updateOps, deleteOps []op
	for r, n := range creates {
		for range n {
			createOps = append(createOps, func() error {
				poolMu.Lock()
				i := next
				next++
				poolMu.Unlock()
				obj := floorObject(r.group, r.name, i)
				if err := c.Create(ctx, obj); err != nil {
					return err
				}
				add(r, obj)
				return nil
			})
		}
	}
	for k, n := range writes {
		r := resource{k.group, k.resource}
		if res.skipped[k.String()] > 0 || k.verb == "POST" || k.verb == "DELETE" {
			continue
		}
		for j := range n {
			updateOps = append(updateOps, func() error {
				pool := pools[r]
				if len(pool) == 0 {
					return fmt.Errorf("no %s to write", r.name)
				}
				p := pool[j%len(pool)]
				p.mu.Lock()
				if k.verb == "PUT" {
					defer p.mu.Unlock()
					return putRetrying(c, p.obj, k.subresource == "status", j, &res.retries)
				}
				// A patch needs no resourceVersion: it may run beside other writes of the object.
				obj := p.obj.DeepCopyObject().(client.Object)
				p.mu.Unlock()
				if k.subresource == "status" {
					return c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, statusPatch(j)))
				}
				return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, metaPatch(j)))
			})
		}
	}
	for r, n := range deletes {
		for j := range n {
			deleteOps = append(deleteOps, func() error {
				pool := pools[r]
				if j >= len(pool) {
					return fmt.Errorf("no object left to delete")
				}
				return client.IgnoreNotFound(c.Delete(ctx, pool[j].obj))
			})
		}
	}
	start := time.Now()
	for _, ops := range [][]op{createOps, updateOps, deleteOps} {
		// Interleave the kinds, as the operator does, rather than one kind after the other.
		_ = parallel(len(ops), workers, func(i int) error { failed(ops[interleave(i, len(ops))]()); return nil })
		res.writes += len(ops)
	}
	res.elapsed = time.Since(start)
	// Untimed: remove what the floor made, so that the later runs find the control plane as before.
	for _, obj := range []client.Object{&corev1.Secret{}, &eventsv1.Event{}, &coordinationv1.Lease{}, &partnersv1.PartnerAccount{}, &partnersv1.LoginLink{}} {
		_ = c.DeleteAllOf(ctx, obj, client.InNamespace(floorNS))
	}
	return res, nil
}

// interleave maps 0..n-1 onto itself with a stride, so that consecutive workers take ops of
// different kinds (ops are appended kind after kind).
func interleave(i, n int) int {
	const stride = 7919 // a prime: i*stride mod n is a permutation unless n is a multiple of it
	if n%stride == 0 {
		return i
	}
	return (i * stride) % n
}

package controllers

// The watches of a controller, without an API server: the real SetupWithManager registers its
// sources, predicates and map functions with a manager whose cache is a set of fake informers
// and whose client is the unit harness's fake client. A test records the writes of one pass
// (the fake client logs them), delivers them to the informers as the watch events a real
// cache would deliver, and sees through the fake API's call counts whether the controller
// reconciled in answer.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// unitWrite is one write through the fake client: before is nil for a create, after nil for a
// delete. Both are copies.
type unitWrite struct {
	verb          string
	gvk           schema.GroupVersionKind
	before, after client.Object
}

func (w unitWrite) String() string {
	o := w.after
	if o == nil {
		o = w.before
	}
	if o == nil {
		return w.verb + " " + w.gvk.Kind
	}
	return fmt.Sprintf("%s %s %s", w.verb, w.gvk.Kind, o.GetName())
}

// interceptors stamp created objects as the API server would, and log writes while recording.
func (e *unitEnv) interceptors() interceptor.Funcs {
	before := func(ctx context.Context, c client.Reader, obj client.Object) client.Object {
		if !e.isRecording() {
			return nil
		}
		old := obj.DeepCopyObject().(client.Object)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), old); err != nil {
			return nil
		}
		return old
	}
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			e.stampNew(obj)
			err := c.Create(ctx, obj, opts...)
			e.record(err, "create", c, nil, obj)
			return err
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			old := before(ctx, c, obj)
			err := c.Update(ctx, obj, opts...)
			e.record(err, "update", c, old, obj)
			return err
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			old := before(ctx, c, obj)
			err := c.Patch(ctx, obj, patch, opts...)
			e.record(err, "patch", c, old, obj)
			return err
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			old := before(ctx, c, obj)
			err := c.Delete(ctx, obj, opts...)
			e.record(err, "delete", c, old, nil)
			return err
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			old := before(ctx, c, obj)
			err := c.SubResource(sub).Update(ctx, obj, opts...)
			e.record(err, sub+" update", c, old, obj)
			return err
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			old := before(ctx, c, obj)
			err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			e.record(err, sub+" patch", c, old, obj)
			return err
		},
	}
}

func (e *unitEnv) isRecording() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recording
}

func (e *unitEnv) record(err error, verb string, c client.Client, old, obj client.Object) {
	if err != nil || !e.isRecording() {
		return
	}
	gvk, gerr := apiutil.GVKForObject(obj, c.Scheme())
	if gerr != nil {
		return
	}
	w := unitWrite{verb: verb, gvk: gvk, before: old}
	if verb != "delete" {
		w.after = obj.DeepCopyObject().(client.Object)
	}
	e.mu.Lock()
	e.writes = append(e.writes, w)
	e.mu.Unlock()
}

// recordWrites runs f and returns the writes it made through the fake client.
func (e *unitEnv) recordWrites(f func()) []unitWrite {
	e.mu.Lock()
	e.recording, e.writes = true, nil
	e.mu.Unlock()
	f()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recording = false
	return e.writes
}

// lockedInformer is a fake informer whose handlers may be registered by a controller's
// goroutine while the test delivers events from its own.
type lockedInformer struct {
	*controllertest.FakeInformer
	mu       sync.Mutex
	handlers int
}

func (i *lockedInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.handlers++
	return i.FakeInformer.AddEventHandler(h)
}

func (i *lockedInformer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, d time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.handlers++
	return i.FakeInformer.AddEventHandlerWithResyncPeriod(h, d)
}

func (i *lockedInformer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, o toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.handlers++
	return i.FakeInformer.AddEventHandlerWithOptions(h, o)
}

func (i *lockedInformer) registered() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.handlers
}

func (i *lockedInformer) deliver(w unitWrite) {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case w.before == nil:
		i.Add(w.after)
	case w.after == nil:
		i.Delete(w.before)
	default:
		i.Update(w.before, w.after)
	}
}

// wiredCache hands out one lockedInformer per kind.
type wiredCache struct {
	*informertest.FakeInformers
	byGVK map[schema.GroupVersionKind]*lockedInformer
}

func (c *wiredCache) GetInformer(_ context.Context, obj client.Object, _ ...cache.InformerGetOption) (cache.Informer, error) {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme)
	if err != nil {
		return nil, err
	}
	return c.GetInformerForKind(context.Background(), gvk)
}

func (c *wiredCache) GetInformerForKind(_ context.Context, gvk schema.GroupVersionKind, _ ...cache.InformerGetOption) (cache.Informer, error) {
	if i, ok := c.byGVK[gvk]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("no fake informer for %s", gvk)
}

// wiredController is a controller of the real SetupWithManager over the fake informers.
type wiredController struct {
	t     *testing.T
	cache *wiredCache
}

// wireLoginLinks starts the LoginLink controller, wired as Setup wires it, and waits until its
// watches are registered. It is stopped when the test ends.
func (e *unitEnv) wireLoginLinks() *wiredController {
	e.t.Helper()
	kinds := []client.Object{&partnersv1.LoginLink{}, &partnersv1.PartnerAccount{}, &corev1.Secret{}, &coordinationv1.Lease{}}
	// Handlers each kind gets from the LoginLink controller: For and Watches on LoginLinks,
	// Owns on Secrets, Watches on PartnerAccounts and Leases.
	want := []int{2, 1, 1, 1}
	wc := &wiredCache{FakeInformers: &informertest.FakeInformers{Scheme: e.scheme}, byGVK: map[schema.GroupVersionKind]*lockedInformer{}}
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, k := range kinds {
		gvk, err := apiutil.GVKForObject(k, e.scheme)
		if err != nil {
			e.t.Fatal(err)
		}
		mapper.Add(gvk, meta.RESTScopeNamespace)
		wc.byGVK[gvk] = &lockedInformer{FakeInformer: controllertest.NewFakeInformer(controllertest.Synced)}
	}
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Scheme: e.scheme, Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		MapperProvider: func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
		NewCache:       func(*rest.Config, cache.Options) (cache.Cache, error) { return wc, nil },
		NewClient:      func(*rest.Config, client.Options) (client.Client, error) { return e.c, nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r := &LoginLinkReconciler{Client: e.c, deps: e.links.deps}
	if err := r.SetupWithManager(mgr, controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 1}); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			e.t.Errorf("manager: %v", err)
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Error("the wired manager did not stop")
		}
	})
	w := &wiredController{t: e.t, cache: wc}
	deadline := time.Now().Add(5 * time.Second)
	for i, k := range kinds {
		gvk, _ := apiutil.GVKForObject(k, e.scheme)
		for wc.byGVK[gvk].registered() < want[i] {
			if time.Now().After(deadline) {
				e.t.Fatalf("the controller registered %d handlers for %s, want %d", wc.byGVK[gvk].registered(), gvk.Kind, want[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return w
}

// deliver hands writes of the given kinds (all when none is given) to the controller as watch events.
func (w *wiredController) deliver(writes []unitWrite, kinds ...string) {
	w.t.Helper()
	for _, wr := range writes {
		if len(kinds) > 0 && !slices.Contains(kinds, wr.gvk.Kind) {
			continue
		}
		i, ok := w.cache.byGVK[wr.gvk]
		if !ok {
			w.t.Fatalf("no informer for %s", wr)
		}
		i.deliver(wr)
	}
}

// eventually polls cond until it holds or d passed, and reports whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

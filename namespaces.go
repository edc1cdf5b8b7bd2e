package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errBothNamespaceFlags is the answer to --watch-namespaces and --watch-namespace-selector together.
var errBothNamespaceFlags = errors.New("--watch-namespaces and --watch-namespace-selector are mutually exclusive: " +
	"a shard names its namespaces, or selects them by label, not both")

// namespaceScope is what the manager watches: every namespace, a fixed list
// (--watch-namespaces), or the namespaces whose labels match a selector (--watch-namespace-selector).
type namespaceScope struct {
	// names is the fixed list; nil for all namespaces or a selector.
	names []string
	// selector selects the namespaces; nil for all namespaces or a fixed list.
	selector labels.Selector
}

// parseNamespaceScope validates the two flags.
func parseNamespaceScope(list, selector string) (namespaceScope, error) {
	list, selector = strings.TrimSpace(list), strings.TrimSpace(selector)
	if list != "" && selector != "" {
		return namespaceScope{}, errBothNamespaceFlags
	}
	if selector != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return namespaceScope{}, fmt.Errorf("--watch-namespace-selector %q: %w", selector, err)
		}
		return namespaceScope{selector: sel}, nil
	}
	var s namespaceScope
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" && !slices.Contains(s.names, ns) {
			s.names = append(s.names, ns)
		}
	}
	return s, nil
}

// all reports whether the manager watches every namespace.
func (s namespaceScope) all() bool { return s.names == nil && s.selector == nil }

// resolve returns the namespaces the manager watches now, sorted (nil: all). With a selector it
// lists the Namespaces (live, before the manager's cache exists); none matching is an error,
// since an empty set would make the cache watch every namespace.
func (s namespaceScope) resolve(ctx context.Context, c client.Reader) ([]string, error) {
	if s.selector == nil {
		return s.names, nil
	}
	var list corev1.NamespaceList
	if err := c.List(ctx, &list, client.MatchingLabelsSelector{Selector: s.selector}); err != nil {
		return nil, fmt.Errorf("cannot list the Namespaces of --watch-namespace-selector: %w", err)
	}
	names := matching(list.Items, s.selector)
	if len(names) == 0 {
		return nil, fmt.Errorf("no Namespace matches --watch-namespace-selector %q: label one (the manager exits until then)", s.selector)
	}
	return names, nil
}

// matching returns the sorted names of the Namespaces that selector matches. A Terminating
// Namespace stays: the finalizers of its objects still need the manager.
func matching(nss []corev1.Namespace, selector labels.Selector) []string {
	var names []string
	for _, ns := range nss {
		if selector.Matches(labels.Set(ns.Labels)) {
			names = append(names, ns.Name)
		}
	}
	sort.Strings(names)
	return names
}

// defaultNamespaces is the cache's DefaultNamespaces for names (nil: all).
func defaultNamespaces(names []string) map[string]cache.Config {
	if names == nil {
		return nil
	}
	m := make(map[string]cache.Config, len(names))
	for _, ns := range names {
		m[ns] = cache.Config{}
	}
	return m
}

// watchSelectedNamespaces calls changed once, with the new set, when the Namespaces that
// selector matches are no longer watched: a Namespace labelled, unlabelled, created or
// deleted. The manager's cache holds every Namespace already (the configs' namespace
// selectors read their labels), so this costs one event handler, no informer. The cache's
// namespaces are fixed when it starts: the manager exits and its Deployment starts it again
// with the new set.
func watchSelectedNamespaces(ctx context.Context, c cache.Cache, selector labels.Selector, watched []string, changed func(now []string)) error {
	inf, err := c.GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	fired := false
	check := func() {
		// Before the informer synced, its first additions are a partial list, not a change.
		if !inf.HasSynced() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var list corev1.NamespaceList
		if fired || c.List(ctx, &list, client.MatchingLabelsSelector{Selector: selector}) != nil {
			return
		}
		if now := matching(list.Items, selector); !slices.Equal(now, watched) {
			fired = true
			changed(now)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { check() },
		UpdateFunc: func(any, any) { check() },
		DeleteFunc: func(any) { check() },
	}); err != nil {
		return err
	}
	// A change between the list at start and the informer's own list shows once it synced.
	go func() {
		if c.WaitForCacheSync(ctx) {
			check()
		}
	}()
	return nil
}

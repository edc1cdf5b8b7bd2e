// Package restmapper keeps the RESTMapper's answers the manager asks for on every cache read.
//
// controller-runtime's cache, when it watches a set of namespaces (--watch-namespaces or a
// namespace selector), asks the RESTMapper whether the object's kind is namespaced on every Get
// and every List. The dynamic mapper answers from memory, but each answer walks a
// PriorityRESTMapper over every group it knows and allocates a "no match" error for each group
// that is not the one asked for. Measured in the 10,000-account benchmark (bench/results-10000.md),
// these answers were half of everything the manager allocated: 30 of 61 GB.
package restmapper

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Memoize returns m with its RESTMapping answers for one version kept: the same question is
// answered from a map afterwards. Only answers are kept, never errors (an unknown kind is asked
// again, so that a CRD installed later is found), and only for one named version asked (what
// the cache and the client ask). The dynamic mapper itself keeps a mapping it knows until a reload,
// and a reload never changes the mapping of a kind it already knew: the kept answer is the
// answer m would give. Reset forgets them with m's.
func Memoize(m meta.RESTMapper) meta.RESTMapper {
	return &memo{RESTMapper: m}
}

type memo struct {
	meta.RESTMapper
	mu       sync.RWMutex
	mappings map[key]*meta.RESTMapping // never handed out: callers get copies
	// resets counts Reset: an answer asked for before a Reset is not kept after it.
	resets uint64
}

type key struct {
	gk      schema.GroupKind
	version string
}

// RESTMapping answers from the kept answers, else asks the mapper and keeps its answer. Each
// caller gets its own copy of the mapping.
func (m *memo) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if len(versions) != 1 || versions[0] == "" {
		// No version, or "" (the preferred one, which may change): asked each time.
		return m.RESTMapper.RESTMapping(gk, versions...)
	}
	k := key{gk: gk, version: versions[0]}
	m.mu.RLock()
	kept, ok := m.mappings[k]
	resets := m.resets
	m.mu.RUnlock()
	if ok {
		c := *kept
		return &c, nil
	}
	got, err := m.RESTMapper.RESTMapping(gk, versions...)
	if err != nil {
		return got, err
	}
	c := *got
	m.mu.Lock()
	if m.resets == resets {
		if m.mappings == nil {
			m.mappings = map[key]*meta.RESTMapping{}
		}
		m.mappings[k] = &c
	}
	m.mu.Unlock()
	return got, nil
}

// Reset forgets the kept answers and resets the mapper when it can be reset.
func (m *memo) Reset() {
	if r, ok := m.RESTMapper.(meta.ResettableRESTMapper); ok {
		r.Reset()
	}
	m.mu.Lock()
	m.mappings = nil
	m.resets++
	m.mu.Unlock()
}

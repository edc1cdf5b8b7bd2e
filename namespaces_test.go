package main

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

func TestParseNamespaceScope(t *testing.T) {
	for _, tt := range []struct {
		name, list, selector string
		wantErr              string
		wantAll              bool
		wantNames            []string
		wantSelector         string
	}{
		{name: "neither: all namespaces", wantAll: true},
		{name: "a list", list: "a, b,,a ", wantNames: []string{"a", "b"}},
		{name: "a selector", selector: "fifteenth.com/shard=a", wantSelector: "fifteenth.com/shard=a"},
		{name: "a set-based selector", selector: "fifteenth.com/shard in (a,b)", wantSelector: "fifteenth.com/shard in (a,b)"},
		{name: "both", list: "a", selector: "fifteenth.com/shard=a", wantErr: "mutually exclusive"},
		{name: "an invalid selector", selector: "fifteenth.com/shard in (a", wantErr: "--watch-namespace-selector"},
		{name: "a selector of everything", selector: " ", wantAll: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := parseNamespaceScope(tt.list, tt.selector)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.all()).To(Equal(tt.wantAll))
			g.Expect(s.names).To(Equal(tt.wantNames))
			if tt.wantSelector != "" {
				g.Expect(s.selector.String()).To(Equal(tt.wantSelector))
			} else {
				g.Expect(s.selector).To(BeNil())
			}
		})
	}
}

// The selector picks the labelled Namespaces (a real API server), and a change of the set (a
// Namespace labelled, another unlabelled) is reported once, with the new set, so that the
// manager exits; a change that does not touch the set (another label) is not.
func TestWatchNamespaceSelector(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	shard := "shard-" + rand.String(5)
	mk := func(name, value string) *corev1.Namespace {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"fifteenth.com/shard": value}}}
		g.Expect(c.Create(ctx, ns)).To(Succeed())
		return ns
	}
	mk(shard+"-a1", shard)
	a2 := mk(shard+"-a2", shard)
	other := mk(shard+"-b1", shard+"-b")

	s, err := parseNamespaceScope("", "fifteenth.com/shard="+shard)
	g.Expect(err).NotTo(HaveOccurred())
	watched, err := s.resolve(ctx, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(watched).To(Equal([]string{shard + "-a1", shard + "-a2"}))
	none, _ := parseNamespaceScope("", "fifteenth.com/shard=nobody-"+shard)
	_, err = none.resolve(ctx, c)
	g.Expect(err).To(MatchError(ContainSubstring("no Namespace matches")), "an empty set would watch every namespace")

	nsCache, err := cache.New(cfg, cache.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	var mu sync.Mutex
	var reports [][]string
	g.Expect(watchSelectedNamespaces(ctx, nsCache, s.selector, watched, func(now []string) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, now)
	})).To(Succeed())
	go func() { _ = nsCache.Start(ctx) }()
	got := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return append([][]string(nil), reports...)
	}
	g.Expect(nsCache.WaitForCacheSync(ctx)).To(BeTrue())

	// Another label on a watched Namespace: the set is the same.
	a2.Labels["team"] = "payroll"
	g.Expect(c.Update(ctx, a2)).To(Succeed())
	g.Consistently(got).WithTimeout(time.Second).WithPolling(50 * time.Millisecond).Should(BeEmpty())

	// Shard b's Namespace joins, a2 leaves: one report, with the new set.
	other.Labels["fifteenth.com/shard"] = shard
	g.Expect(c.Update(ctx, other)).To(Succeed())
	g.Eventually(got).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(HaveLen(1))
	g.Expect(got()[0]).To(Equal([]string{shard + "-a1", shard + "-a2", shard + "-b1"}))
	delete(a2.Labels, "fifteenth.com/shard")
	g.Expect(c.Update(ctx, a2)).To(Succeed())
	g.Consistently(got).WithTimeout(time.Second).WithPolling(50*time.Millisecond).Should(HaveLen(1), "reported once: the manager is exiting")
}

package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const exposition = `# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="loginlink",result="requeue_after"} 7
controller_runtime_reconcile_total{controller="loginlink",result="success"} 3
controller_runtime_reconcile_total{controller="partneraccount",result="success"} 5
go_memstats_heap_inuse_bytes 1.048576e+06
workqueue_queue_duration_seconds_bucket{controller="loginlink",name="loginlink",le="0.1"} 2
workqueue_queue_duration_seconds_sum{controller="loginlink",name="loginlink"} 0.5
workqueue_queue_duration_seconds_count{controller="loginlink",name="loginlink"} 2
apiserver_request_total{code="201",component="apiserver",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",group="partners.fifteenth.com",resource="loginlinks",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 9
apiserver_request_total{code="200",component="apiserver",group="",resource="secrets",scope="namespace",subresource="",verb="LIST",version="v1"} 100
`

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if s.series != 10 {
		t.Errorf("series = %d, want 10 (comment lines are not series)", s.series)
	}
	if got := s.sum("controller_runtime_reconcile_total"); got != 15 {
		t.Errorf("sum = %v, want 15", got)
	}
	if got := s.sum("controller_runtime_reconcile_total", `controller="loginlink"`, `result="success"`); got != 3 {
		t.Errorf("sum with labels = %v, want 3", got)
	}
	if got := s.sum("go_memstats_heap_inuse_bytes"); got != 1<<20 {
		t.Errorf("unlabelled sample = %v, want %d", got, 1<<20)
	}
	if got := s.by("controller_runtime_reconcile_total", "controller"); got["loginlink"] != 10 || got["partneraccount"] != 5 {
		t.Errorf("by controller = %v", got)
	}
	if got := s.families(1); !slices.Equal(got, []string{"apiserver_request_total 3"}) {
		t.Errorf("families = %v", got)
	}
}

func TestWritesBetween(t *testing.T) {
	after, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	// Before: 1 Secret created, no status patch yet (the series did not exist).
	text := strings.ReplaceAll(exposition, `verb="POST",version="v1"} 4`, `verb="POST",version="v1"} 1`)
	text = strings.ReplaceAll(text, `verb="PATCH",version="v1alpha1"} 9`, `verb="GET",version="v1alpha1"} 9`)
	before, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got := writesBetween(before, after)
	want := map[writeKind]int{
		{"", "secrets", "", "POST"}:                                 3,
		{"partners.fifteenth.com", "loginlinks", "status", "PATCH"}: 9,
	}
	if len(got) != len(want) {
		t.Fatalf("writes = %v, want %v (reads are not writes)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("writes[%v] = %d, want %d", k, got[k], v)
		}
	}
}

func TestInterleaveIsAPermutation(t *testing.T) {
	for _, n := range []int{1, 2, 7, 100, 7919, 12345} {
		seen := make([]bool, n)
		for i := range n {
			j := interleave(i, n)
			if seen[j] {
				t.Fatalf("n=%d: %d taken twice", n, j)
			}
			seen[j] = true
		}
	}
}

func TestCPUSeconds(t *testing.T) {
	// Burn some CPU so that the reading cannot be zero.
	x := 0
	for i := range 200_000_000 {
		x += i % 7
	}
	_ = x
	v, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if v <= 0 {
		t.Errorf("cpuSeconds = %v, want > 0", v)
	}
}

func TestProcStatus(t *testing.T) {
	st := procStatus(os.Getpid())
	rss, hwm, anon, file := st["VmRSS:"], st["VmHWM:"], st["RssAnon:"], st["RssFile:"]
	if rss <= 0 || hwm < rss || anon <= 0 || file <= 0 || anon+file > rss+st["RssShmem:"]+4096 {
		t.Fatalf("VmRSS %v VmHWM %v RssAnon %v RssFile %v", rss, hwm, anon, file)
	}
}

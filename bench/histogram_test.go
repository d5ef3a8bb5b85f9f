package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles checks the quantiles against the exact ones of a
// sorted sample spanning six orders of magnitude: within the buckets' 3 %.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var all []time.Duration
	for range 100_000 {
		d := time.Duration(r.ExpFloat64() * float64(50*time.Microsecond))
		if r.IntN(100) == 0 {
			d *= 1000
		}
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := all[min(len(all)-1, int(q*float64(len(all))+0.5)-1)]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.035 || diff < -0.035 {
			t.Errorf("quantile(%v) = %v, want %v ± 3.5 %%", q, got, want)
		}
	}
	if h.quantile(1) != all[len(all)-1] {
		t.Errorf("quantile(1) = %v, want the maximum %v", h.quantile(1), all[len(all)-1])
	}
}

// TestHistogramBuckets checks that bucket boundaries are contiguous and
// increasing, so every duration falls in the bucket whose range holds it.
func TestHistogramBuckets(t *testing.T) {
	top := bucketOf(time.Duration(1<<63 - 1))
	for i := 1; i < top; i++ {
		lo, hi := lowerBound(i), lowerBound(i+1)
		if hi <= lo {
			t.Fatalf("bucket %d: [%d, %d) is empty", i, lo, hi)
		}
		if bucketOf(lo) != i || bucketOf(hi-1) != i || bucketOf(hi) != i+1 {
			t.Fatalf("bucket %d: [%d, %d) maps to %d..%d", i, lo, hi, bucketOf(lo), bucketOf(hi-1))
		}
	}
	if top >= histBuckets {
		t.Fatalf("the largest duration falls in bucket %d of %d", top, histBuckets)
	}
}

func TestParseSeq(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`"b0:xx"`, 0, true},
		{`"b123456:x"`, 123456, true},
		{`"e1:xx"`, 0, false},
		{`"b:x"`, 0, false},
		{`"b12x"`, 0, false},
		{`"primus::ping::1"`, 0, false},
	} {
		got, ok := parseSeq([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseSeq(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMakeMessage(t *testing.T) {
	for _, size := range []int{8, 64, 64 << 10} {
		m := makeMessage(size, "b7:")
		if len(m) != size || m[0] != '"' || m[len(m)-1] != '"' {
			t.Errorf("makeMessage(%d) = %d bytes %.10q…", size, len(m), m)
		}
		if seq, ok := parseSeq(m); !ok || seq != 7 {
			t.Errorf("parseSeq(makeMessage(%d)) = %d, %v", size, seq, ok)
		}
	}
}

// TestTargets checks the ratios and the verdicts on hand-made medians.
func TestTargets(t *testing.T) {
	r := &Report{
		Servers:   []string{"our", "raw", "node"},
		Scenarios: []ScenarioInfo{{Name: "e", Kind: Echo}, {Name: "b", Kind: Broadcast}, {Name: "i", Kind: Idle, Conns: 19800}},
		Results: []Result{
			{Scenario: "e", Server: "our", Figures: Figures{FigMsgsPerSec: 96, FigServerCPUPerMsg: 12}},
			{Scenario: "e", Server: "our", Figures: Figures{FigMsgsPerSec: 90, FigServerCPUPerMsg: 11}},
			{Scenario: "e", Server: "our", Figures: Figures{FigMsgsPerSec: 99, FigServerCPUPerMsg: 30}},
			{Scenario: "e", Server: "our", Error: "ignored"},
			{Scenario: "e", Server: "raw", Figures: Figures{FigMsgsPerSec: 100, FigServerCPUPerMsg: 10}},
			{Scenario: "e", Server: "node", Figures: Figures{FigMsgsPerSec: 70, FigServerCPUPerMsg: 20}},
			{Scenario: "b", Server: "our", Figures: Figures{FigMsgsPerSec: 110, FigP99: 900, FigServerCPUPerMsg: 10.5}},
			{Scenario: "b", Server: "raw", Figures: Figures{FigMsgsPerSec: 100, FigP99: 1000, FigServerCPUPerMsg: 10}},
			{Scenario: "b", Server: "node", Figures: Figures{FigMsgsPerSec: 80, FigServerCPUPerMsg: 12}},
			{Scenario: "i", Server: "our", Figures: Figures{FigBytesPerConn: 10_000, FigP99: 50_000}},
			{Scenario: "i", Server: "raw", Figures: Figures{FigBytesPerConn: 12_000, FigP99: 40_000}},
			{Scenario: "i", Server: "node", Figures: Figures{FigBytesPerConn: 14_000}},
		},
	}
	r.summarise()
	want := map[string]bool{
		"e: msgs/s ≥ 0.95 × raw":               true,  // median 96
		"e: msgs/s ≥ 1.4 × node":               false, // 96/70 = 1.37
		"e: server CPU/msg ≤ 1.1 × raw":        false, // median 12
		"b: server CPU/delivery ≤ 1.1 × raw":   true,  // 1.05
		"b: server CPU/delivery ≤ 0.75 × node": false, // 0.875
		"b: deliveries/s ≥ raw":                true,
		"b: p99 all received ≤ raw":            true,
		"i: bytes/conn ≤ 0.75 × node":          true, // 0.714
		"i: broadcast p99 all received ≤ raw":  false,
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("got %d targets, want %d: %+v", len(r.Targets), len(want), r.Targets)
	}
	for _, tg := range r.Targets {
		met, ok := want[tg.Name]
		if !ok {
			t.Errorf("unexpected target %q", tg.Name)
			continue
		}
		if tg.Met != met {
			t.Errorf("%s: met = %v (%s), want %v", tg.Name, tg.Met, tg.Figure, met)
		}
	}
	if got := r.Ratios["e"]["our/raw"][FigMsgsPerSec]; got != 0.96 {
		t.Errorf("our/raw msgs/s = %v, want 0.96", got)
	}
}

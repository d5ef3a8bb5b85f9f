package bench

import (
	"math/bits"
	"sync"
	"time"
)

// histogram records durations in log-linear buckets: exact below 64 ns, then
// 32 buckets per power of two, so every quantile it reports is within about
// 3 % of the true value whatever the range. It has a fixed size, which bounds
// the memory of a run however long it is. It is not safe for concurrent use;
// see shardedHistogram.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits = 5                                  // 32 sub-buckets per power of two
	histBuckets = (64-histSubBits)<<histSubBits + 64 // enough for any int64
)

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < 1<<(histSubBits+1) {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1) // ≥ 1
	return e<<histSubBits + int(v>>e)
}

// lowerBound is the smallest duration in bucket i.
func lowerBound(i int) time.Duration {
	if i < 1<<(histSubBits+1) {
		return time.Duration(i)
	}
	e := i>>histSubBits - 1
	sub := i - e<<histSubBits // in [32, 64)
	return time.Duration(uint64(sub) << e)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q ≤ 1): the middle of the bucket that
// holds it (never more than the maximum), or the exact maximum for q = 1.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	if rank == h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			mid := lo + (hi-lo)/2
			return min(mid, h.max)
		}
	}
	return h.max
}

// shardedHistogram is a histogram that many goroutines record into; each
// records into its own shard (chosen by the caller) to avoid contention.
type shardedHistogram struct {
	shards [16]struct {
		mu sync.Mutex
		h  histogram
		_  [64]byte // keeps shards' locks on different cache lines
	}
}

func (s *shardedHistogram) record(shard int, d time.Duration) {
	sh := &s.shards[shard%len(s.shards)]
	sh.mu.Lock()
	sh.h.record(d)
	sh.mu.Unlock()
}

func (s *shardedHistogram) total() *histogram {
	var h histogram
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.merge(&sh.h)
		sh.mu.Unlock()
	}
	return &h
}

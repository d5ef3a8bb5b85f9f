package pluginkit

import (
	"sync"
	"sync/atomic"
)

// Handlers is a copy-on-write list of callbacks: adding is rare, reading is
// on every message. The zero value is an empty list, ready to use.
type Handlers[T any] struct {
	mu   sync.Mutex
	list atomic.Pointer[[]T]
}

// Add appends f.
func (h *Handlers[T]) Add(f T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var next []T
	if old := h.list.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, f)
	h.list.Store(&next)
}

// Get returns the callbacks added so far; the caller must not modify the
// slice.
func (h *Handlers[T]) Get() []T {
	if l := h.list.Load(); l != nil {
		return *l
	}
	return nil
}

package engineio

import "sync"

var (
	handlersMu sync.Mutex
	handlers   = map[*Transformer][]*handler{}
)

func init() {
	handlerHook = func(t *Transformer, h *handler) {
		handlersMu.Lock()
		defer handlersMu.Unlock()
		handlers[t] = append(handlers[t], h)
	}
}

// Sessions returns the number of sessions the transformer's handlers know
// (tombstones included).
func Sessions(t *Transformer) int {
	handlersMu.Lock()
	hs := handlers[t]
	handlersMu.Unlock()
	n := 0
	for _, h := range hs {
		h.mu.Lock()
		n += len(h.sessions)
		h.mu.Unlock()
	}
	return n
}

// BodyLimit returns the POST body limit of the transformer's first handler.
func BodyLimit(t *Transformer) int64 {
	handlersMu.Lock()
	defer handlersMu.Unlock()
	return handlers[t][0].bodyLimit
}

// ClosedGrace is how long a closed polling session waits for its last poll.
const ClosedGrace = closedGrace

// Waiting reports whether the session with the sid has a GET (poll) or a
// POST (post) under way.
func Waiting(t *Transformer, sid string, post bool) bool {
	handlersMu.Lock()
	hs := handlers[t]
	handlersMu.Unlock()
	for _, h := range hs {
		if s := h.session(sid); s != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			if post {
				return s.posting
			}
			return s.polling
		}
	}
	return false
}

package substream

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// endMarker is the payload that ends a substream.
const endMarker = "substream::end"

// packet is {"substream": name, "args": payload}.
type packet struct {
	Substream string `json:"substream" cbor:"substream"`
	Args      any    `json:"args" cbor:"args"`
}

// StreamOptions configure a stream when it is created. A nil *StreamOptions
// means no handlers.
type StreamOptions struct {
	// OnData runs for each message written to the stream by the peer, in
	// order, in the connection's reading goroutine.
	OnData func(*parser.Message)
	// OnEnd runs once when the stream ends: nil when either side ended it,
	// ErrDisconnected when its connection ended.
	OnEnd func(reason error)
}

// Stream is one named substream over a connection, on either side. A
// stream exists on one side once it is created there (nothing is sent);
// messages for a name the receiver has not created arrive as ordinary data.
//
// Its methods are safe for concurrent use.
type Stream struct {
	set  *set
	name string
	done chan struct{}

	onData pluginkit.Handlers[func(*parser.Message)]
	onEnd  pluginkit.Handlers[func(error)]

	mu    sync.Mutex
	ended bool
}

// Name returns the stream's name.
func (st *Stream) Name() string { return st.name }

// Done is closed when the stream has ended and its handlers have run.
func (st *Stream) Done() <-chan struct{} { return st.done }

// OnData adds a handler for the peer's messages; prefer
// StreamOptions.OnData, which no message can precede.
func (st *Stream) OnData(f func(*parser.Message)) { st.onData.Add(f) }

// OnEnd adds a handler run once when the stream ends; see
// StreamOptions.OnEnd.
func (st *Stream) OnEnd(f func(reason error)) { st.onEnd.Add(f) }

// Write sends v on the stream, as {"substream": name, "args": v}. A
// parser.Raw is sent as it is. The string "substream::end" is refused: it
// is the end marker (use End). Write returns ErrClosed after the stream
// ended.
func (st *Stream) Write(v any) error {
	if s, ok := v.(string); ok && s == endMarker {
		return fmt.Errorf("substream: %q is the end marker; End ends a stream", endMarker)
	}
	st.mu.Lock()
	ended := st.ended
	st.mu.Unlock()
	if ended {
		return ErrClosed
	}
	args, err := st.set.codec.Embed(v)
	if err != nil {
		return fmt.Errorf("substream: failed to encode for %q: %w", st.name, err)
	}
	return st.set.write(packet{Substream: st.name, Args: args})
}

// End ends the stream on both sides: the peer gets the end marker, then the
// stream's end handlers run. The connection stays open, and a new stream of
// the same name may be created.
func (st *Stream) End() error {
	if !st.end(nil, true) {
		return ErrClosed
	}
	return nil
}

// end ends the stream once, sending the end marker when notify is set, and
// reports whether this call ended it.
func (st *Stream) end(reason error, notify bool) bool {
	st.mu.Lock()
	if st.ended {
		st.mu.Unlock()
		return false
	}
	st.ended = true
	st.mu.Unlock()
	st.set.remove(st)
	if notify {
		_ = st.set.write(packet{Substream: st.name, Args: endMarker})
	}
	// Every end handler runs, and done is closed, even when one panics: the
	// panic ends the connection (plugin.Recover), as a panic in the
	// connection's own handlers does.
	defer close(st.done)
	for _, f := range st.onEnd.Get() {
		func() {
			defer plugin.Recover(st.set.conn)
			f(reason)
		}()
	}
	return true
}

// set is the streams of one connection.
type set struct {
	conn  any // the plugin.Spark or plugin.Client, for plugin.Recover
	write func(v any) error
	codec pluginkit.Codec
	log   *slog.Logger
	max   int // streams open at once; ≤ 0: no bound

	mu     sync.Mutex
	byName map[string]*Stream
	closed bool
}

func newSet(conn any, write func(any) error, codec pluginkit.Codec, log *slog.Logger, max int) *set {
	return &set{conn: conn, write: write, codec: codec, log: log, max: max, byName: map[string]*Stream{}}
}

// stream returns the open stream name, creating it.
func (s *set) stream(name string, opts *StreamOptions) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := s.byName[name]
	if st == nil {
		if s.max > 0 && len(s.byName) >= s.max {
			s.log.Debug("substream: stream over the limit refused", "substream", name, "limit", s.max)
			return nil, fmt.Errorf("%w (%d): %q", ErrTooManyStreams, s.max, name)
		}
		st = &Stream{set: s, name: name, done: make(chan struct{})}
		s.byName[name] = st
	}
	if opts != nil {
		if opts.OnData != nil {
			st.onData.Add(opts.OnData)
		}
		if opts.OnEnd != nil {
			st.onEnd.Add(opts.OnEnd)
		}
	}
	return st, nil
}

func (s *set) remove(st *Stream) {
	s.mu.Lock()
	if s.byName[st.name] == st {
		delete(s.byName, st.name)
	}
	s.mu.Unlock()
}

// lookup returns the stream name; it is cheap when there is none.
func (s *set) lookup(name string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

func (s *set) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byName) == 0
}

// incoming consumes the packets of the set's streams and reports whether m
// passes on.
func (s *set) incoming(m *parser.Message) bool {
	if s.empty() {
		return true
	}
	obj, ok := s.codec.Object(m, `"substream"`)
	if !ok {
		return true
	}
	np, ok := obj["substream"]
	if !ok {
		return true
	}
	name, ok := np.String()
	if !ok {
		return true
	}
	st := s.lookup(name)
	if st == nil {
		return true
	}
	args, ok := obj["args"]
	if !ok {
		msg, err := s.codec.Null()
		if err == nil {
			st.receive(msg)
		}
		return false
	}
	if a, ok := args.String(); ok && a == endMarker {
		st.end(nil, false)
		return false
	}
	msg, err := args.Message()
	if err != nil {
		s.log.Debug("substream: message dropped", "substream", name, "error", err)
		return false
	}
	st.receive(msg)
	return false
}

func (st *Stream) receive(m *parser.Message) {
	for _, f := range st.onData.Get() {
		f(m)
	}
}

// close ends every stream of the connection, without telling the peer.
func (s *set) close(reason error) {
	s.mu.Lock()
	s.closed = true
	all := make([]*Stream, 0, len(s.byName))
	for _, st := range s.byName {
		all = append(all, st)
	}
	s.mu.Unlock()
	why := ErrDisconnected
	if reason != nil {
		why = fmt.Errorf("%w: %w", ErrDisconnected, reason)
	}
	for _, st := range all {
		st.end(why, false)
	}
}

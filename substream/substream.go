package substream

import (
	"log/slog"
	"sync"

	"github.com/go-primus/primus/internal/pluginkit"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// Substream is the server side of the plugin. Create it with New, pass it
// in primus.Options.Plugins (or use it on a multiplex channel), and open
// streams on a connection with Stream, typically in the server's connection
// handler.
//
// All methods are safe for concurrent use.
type Substream struct {
	max int // ≤ 0: no bound

	mu    sync.Mutex
	host  plugin.ServerHost
	codec pluginkit.Codec
	log   *slog.Logger
	sets  sync.Map // plugin.Spark → *set
}

var _ plugin.ServerPlugin = (*Substream)(nil)

// defaultMaxStreams is Options.MaxStreams' zero value.
const defaultMaxStreams = 1024

// Options configure a Substream. A nil *Options means all defaults.
type Options struct {
	// MaxStreams bounds the streams open at once on one connection. Streams
	// are created by the server's own code, never by the client's packets
	// (those for a name without a stream are ordinary data), but code that
	// opens streams named by what clients send would otherwise let a client
	// grow the server's memory without end. Over the bound Stream returns
	// ErrTooManyStreams and creates nothing; ending a stream frees its
	// place. Zero value means 1024; negative means no bound.
	MaxStreams int
}

// New returns the server side of the substream plugin.
func New(opts *Options) *Substream {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = defaultMaxStreams
	}
	return &Substream{max: o.MaxStreams}
}

// Name is "substream".
func (ss *Substream) Name() string { return "substream" }

// SetupServer installs the plugin's hooks; the core calls it.
func (ss *Substream) SetupServer(h plugin.ServerHost) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.host != nil {
		return ErrBound
	}
	ss.host = h
	ss.codec = pluginkit.NewCodec(h.Parser())
	ss.log = h.Logger()
	h.Install(plugin.ServerHooks{
		Connection: func(s plugin.Spark) { ss.sets.Store(s, newSet(s, s.Write, ss.codec, ss.log, ss.max)) },
		Incoming: func(s plugin.Spark, m *parser.Message) (bool, error) {
			if v, ok := ss.sets.Load(s); ok {
				return v.(*set).incoming(m), nil
			}
			return true, nil
		},
		Close: func(s plugin.Spark, reason error) {
			if v, ok := ss.sets.LoadAndDelete(s); ok {
				v.(*set).close(reason)
			}
		},
	})
	return nil
}

// Stream returns the stream name on the connection s, creating it (nothing
// is sent: the client's packets for that name are the stream's from now
// on). When the stream is already open, opts' handlers are added to it. It
// returns ErrClosed when s has ended, and ErrTooManyStreams when s already
// has Options.MaxStreams streams open.
func (ss *Substream) Stream(s plugin.Spark, name string, opts *StreamOptions) (*Stream, error) {
	ss.mu.Lock()
	bound := ss.host != nil
	ss.mu.Unlock()
	if !bound {
		return nil, ErrUnbound
	}
	st, ok := ss.sets.Load(s)
	if !ok {
		return nil, ErrClosed
	}
	return st.(*set).stream(name, opts)
}

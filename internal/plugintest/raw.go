package plugintest

import (
	"context"
	"testing"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/websocket"
)

// Raw is a WebSocket connection that writes frames by hand and reads every
// frame the server sends, as an attacker's script does.
type Raw struct {
	transport.Conn
	p      parser.Parser
	frames chan []byte // every frame received; closed when the connection ends
	err    error       // the read error, once frames is closed
}

// DialRaw opens a raw connection to url (a server with the WebSocket
// transformer) and closes it when the test ends.
func DialRaw(t testing.TB, fl Flavour, url string) *Raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, err := websocket.New().Dial(ctx, url, transport.DialOptions{MaxMessageSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r := &Raw{Conn: c, p: fl.Parser, frames: make(chan []byte, 1<<16)}
	go func() {
		defer close(r.frames)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				r.err = err
				return
			}
			select {
			case r.frames <- data:
			default: // nobody looks at this many: drop them, keep reading
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.CloseNow()
		for range r.frames {
		}
	})
	return r
}

// Send encodes v with the flavour's parser and writes it.
func (r *Raw) Send(t testing.TB, v any) {
	t.Helper()
	b, err := r.p.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	r.SendBytes(t, b)
}

// SendBytes writes b as one frame of the parser's type (binary for a
// binary parser, text otherwise), whatever b holds.
func (r *Raw) SendBytes(t testing.TB, b []byte) {
	t.Helper()
	typ := transport.Text
	if r.p.Binary() {
		typ = transport.Binary
	}
	if err := r.Write(context.Background(), typ, b); err != nil {
		t.Fatal(err)
	}
}

// Barrier writes a plain string, which the server must echo, and waits for
// it: every frame sent before has been handled by then.
func (r *Raw) Barrier(t testing.TB, mark string) {
	t.Helper()
	r.Send(t, mark)
	for {
		f, ok := <-r.frames
		if !ok {
			t.Fatalf("connection ended before the barrier: %v", r.err)
		}
		if s, ok := parser.DecodeString(r.p, f); ok && s == mark {
			return
		}
	}
}

// Closed waits for the connection to end and returns the read error that
// ended it; the frames received meanwhile are counted.
func (r *Raw) Closed(t testing.TB) (frames int, err error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range r.frames {
			frames++
		}
	}()
	Recv(t, done, "the end of the raw connection")
	return frames, r.err
}

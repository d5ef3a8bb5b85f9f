package substream_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/internal/leakcheck"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// server has the substream plugin; every connection gets streams "s1" and
// "s2" that echo, and plain data is echoed on the connection (a barrier).
type server struct {
	srv     *primus.Server
	url     string
	ss      *substream.Substream
	streams chan *substream.Stream // every server stream created
	ends    chan error             // end reasons of server streams
	data    chan *primus.Message   // plain data the plugin passed on
	sparks  <-chan *primus.Spark
}

func startServer(t *testing.T, fl pt.Flavour) *server {
	t.Helper()
	s := &server{
		ss:      substream.New(nil),
		streams: make(chan *substream.Stream, 64),
		ends:    make(chan error, 64),
		data:    make(chan *primus.Message, 64),
	}
	s.srv, s.url = pt.Serve(t, fl, &primus.Options{Plugins: []plugin.Plugin{s.ss}})
	s.sparks = pt.Sparks(s.srv)
	s.srv.OnConnection(func(sp *primus.Spark) {
		for _, name := range []string{"s1", "s2"} {
			var st *substream.Stream
			st, err := s.ss.Stream(sp, name, &substream.StreamOptions{
				OnData: func(m *primus.Message) { _ = st.Write(m.Raw()) },
				OnEnd:  func(reason error) { s.ends <- reason },
			})
			if err != nil {
				t.Error(err)
				return
			}
			s.streams <- st
		}
		sp.OnData(func(m *primus.Message) {
			s.data <- m
			_ = sp.Write(m.Raw())
		})
	})
	return s
}

type client struct {
	*primus.Client
	sc   *substream.Client
	data chan *primus.Message
}

func (s *server) dial(t *testing.T, fl pt.Flavour, opts *primus.ClientOptions) *client {
	t.Helper()
	var o primus.ClientOptions
	if opts != nil {
		o = *opts
	}
	c := &client{sc: substream.NewClient(), data: make(chan *primus.Message, 64)}
	o.Plugins = append(o.Plugins, c.sc)
	o.OnData = func(m *primus.Message) { c.data <- m }
	c.Client = pt.Dial(t, fl, s.url, &o)
	for range 2 {
		pt.Recv(t, s.streams, "a server stream")
	}
	return c
}

type stream struct {
	*substream.Stream
	data chan *primus.Message
	end  chan error
}

func open(t *testing.T, c *client, name string) *stream {
	t.Helper()
	st := &stream{data: make(chan *primus.Message, 256), end: make(chan error, 1)}
	var err error
	st.Stream, err = c.sc.Stream(name, &substream.StreamOptions{
		OnData: func(m *primus.Message) { st.data <- m },
		OnEnd:  func(reason error) { st.end <- reason },
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func expect(t *testing.T, ch <-chan *primus.Message, want any) {
	t.Helper()
	m := pt.Recv(t, ch, fmt.Sprint(want))
	var got any
	if err := m.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", m.Bytes(), err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || (want == nil) != (got == nil) {
		t.Fatalf("got %#v (%q), want %#v", got, m.Bytes(), want)
	}
}

func TestEchoAndOrder(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		s1, s2 := open(t, c, "s1"), open(t, c, "s2")
		if again, err := c.sc.Stream("s1", nil); err != nil || again != s1.Stream {
			t.Errorf("Stream for an open name = %v, %v; want the open stream", again, err)
		}
		for _, v := range []any{"hello", 0, "", false, nil, map[string]any{"a": []any{1.5}}} {
			if err := s1.Write(v); err != nil {
				t.Fatal(err)
			}
			expect(t, s1.data, v)
		}
		const n = 100
		for i := range n {
			if err := s1.Write(fmt.Sprint("a", i)); err != nil {
				t.Fatal(err)
			}
			if err := s2.Write(fmt.Sprint("b", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			expect(t, s1.data, fmt.Sprint("a", i))
		}
		for i := range n {
			expect(t, s2.data, fmt.Sprint("b", i))
		}
		if len(s.data) != 0 || len(c.data) != 0 {
			t.Error("substream packets reached data handlers")
		}
	})
}

// TestUnknownNamesAreData: a packet for a name the receiver has not
// created is ordinary data, on both sides.
func TestUnknownNamesAreData(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		other := map[string]any{"substream": "other", "args": "x"}
		if err := c.Write(other); err != nil {
			t.Fatal(err)
		}
		expect(t, s.data, other) // the server has no "other"
		expect(t, c.data, other) // nor has the client: the echo is data
		for _, v := range []any{
			map[string]any{"substream": 5, "args": "x"},
			map[string]any{"args": "x"},
			map[string]any{"substream": nil},
		} {
			if err := c.Write(v); err != nil {
				t.Fatal(err)
			}
			expect(t, s.data, v)
			expect(t, c.data, v)
		}
		// A packet without args is the stream's, with null.
		s1 := open(t, c, "s1")
		if err := c.Write(map[string]any{"substream": "s1"}); err != nil {
			t.Fatal(err)
		}
		expect(t, s1.data, nil)
		if len(s.data) != 0 {
			t.Error("the packet without args reached the data handler")
		}
	})
}

func TestEndFromEachSide(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		sp := pt.Recv(t, s.sparks, "the connection")

		// The client ends s1: the server's s1 ends, nothing is echoed.
		s1 := open(t, c, "s1")
		if err := s1.End(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, s1.end, "the client stream's end"); err != nil {
			t.Errorf("client end reason %v", err)
		}
		if err := pt.Recv(t, s.ends, "the server stream's end"); err != nil {
			t.Errorf("server end reason %v", err)
		}
		if err := s1.Write("x"); !errors.Is(err, substream.ErrClosed) {
			t.Errorf("Write after End = %v, want ErrClosed", err)
		}
		if err := s1.End(); !errors.Is(err, substream.ErrClosed) {
			t.Errorf("second End = %v, want ErrClosed", err)
		}
		// The name is free again on the server: the client's packets for
		// s1 are plain data there (echoed), and reach the client's new s1.
		s1 = open(t, c, "s1")
		if err := s1.Write("again"); err != nil {
			t.Fatal(err)
		}
		expect(t, s.data, map[string]any{"substream": "s1", "args": "again"})
		expect(t, s1.data, "again")

		// The server ends s2 (and creates a new one, which the client's
		// writes reach).
		s2 := open(t, c, "s2")
		st, err := s.ss.Stream(sp, "s2", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.End(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, s2.end, "the client stream's end"); err != nil {
			t.Errorf("client end reason %v", err)
		}
		if err := pt.Recv(t, s.ends, "the server stream's end"); err != nil {
			t.Errorf("server end reason %v", err)
		}
		if st2, err := s.ss.Stream(sp, "s2", nil); err != nil || st2 == st {
			t.Fatalf("Stream after End = %v, %v; want a new stream", st2, err)
		}
		if err := s1.Write("still"); err != nil {
			t.Fatal(err)
		}
		expect(t, s.data, map[string]any{"substream": "s1", "args": "still"})
		expect(t, s1.data, "still")
		if len(s2.data) != 0 {
			t.Error("the ended stream got data")
		}
	})
}

// TestWireFormat checks the exact JSON frames (section 8.4 of the protocol
// notes) with a client without the plugin.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	fl := pt.Flavours[0]
	s := startServer(t, fl)
	frames := make(chan string, 16)
	c := pt.Dial(t, fl, s.url, &primus.ClientOptions{OnData: func(m *primus.Message) { frames <- string(m.Bytes()) }})
	var s1 *substream.Stream
	for range 2 {
		if st := pt.Recv(t, s.streams, "a server stream"); st.Name() == "s1" {
			s1 = st
		}
	}
	expectFrame := func(want string) {
		t.Helper()
		if got := pt.Recv(t, frames, want); got != want {
			t.Fatalf("frame %s, want %s", got, want)
		}
	}
	if err := c.Write(primus.Raw(`{"substream":"s1","args":"hello s1"}`)); err != nil {
		t.Fatal(err)
	}
	expectFrame(`{"substream":"s1","args":"hello s1"}`)
	if err := s1.Write(map[string]string{"from": "server"}); err != nil {
		t.Fatal(err)
	}
	expectFrame(`{"substream":"s1","args":{"from":"server"}}`)
	if err := s1.Write("substream::end"); err == nil {
		t.Error("Write of the end marker was accepted")
	}
	if err := s1.End(); err != nil {
		t.Fatal(err)
	}
	expectFrame(`{"substream":"s1","args":"substream::end"}`)
}

func TestConnectionEnd(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		s := startServer(t, fl)
		c := s.dial(t, fl, nil)
		s1 := open(t, c, "s1")
		sp := pt.Recv(t, s.sparks, "the connection")

		// A lost connection ends the server's streams; the client's stream
		// survives the reconnection and works with the new connection's s1.
		_ = sp.Close()
		for range 2 {
			if err := pt.Recv(t, s.ends, "a server stream's end"); !errors.Is(err, substream.ErrDisconnected) {
				t.Errorf("server stream ended with %v, want ErrDisconnected", err)
			}
		}
		pt.Recv(t, s.sparks, "the new connection")
		for range 2 {
			pt.Recv(t, s.streams, "a new server stream")
		}
		if _, err := s.ss.Stream(sp, "s1", nil); !errors.Is(err, substream.ErrClosed) {
			t.Errorf("Stream on a closed connection = %v, want ErrClosed", err)
		}
		if err := s1.Write("after"); err != nil {
			t.Fatal(err)
		}
		expect(t, s1.data, "after")

		// The client's end ends its streams.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pt.Recv(t, s1.end, "the client stream's end"); !errors.Is(err, substream.ErrDisconnected) {
			t.Errorf("client stream ended with %v, want ErrDisconnected", err)
		}
		if _, err := c.sc.Stream("x", nil); !errors.Is(err, substream.ErrClosed) {
			t.Errorf("Stream after the client ended = %v, want ErrClosed", err)
		}
	})
}

func TestSetUp(t *testing.T) {
	t.Parallel()
	ss := substream.New(nil)
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{ss}}); err != nil {
		t.Fatal(err)
	}
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{ss}}); !errors.Is(err, substream.ErrBound) {
		t.Errorf("second server: %v, want ErrBound", err)
	}
	if _, err := substream.NewClient().Stream("x", nil); !errors.Is(err, substream.ErrUnbound) {
		t.Errorf("Stream before set-up = %v, want ErrUnbound", err)
	}
	if _, err := substream.New(nil).Stream(nil, "x", nil); !errors.Is(err, substream.ErrUnbound) {
		t.Errorf("server Stream before set-up = %v, want ErrUnbound", err)
	}
}

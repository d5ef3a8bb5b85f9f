package rooms_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/internal/leakcheck"
	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/rooms"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// note is what the tests write; the counting parser counts its encodings.
type note struct {
	Text string `json:"text" cbor:"text"`
}

// countingParser counts how often a note is encoded.
type countingParser struct {
	parser.Parser
	notes atomic.Int64
}

func (p *countingParser) Encode(v any) ([]byte, error) {
	if _, ok := v.(note); ok {
		p.notes.Add(1)
	}
	return p.Parser.Encode(v)
}

// member is a connected client, its spark, and what it receives.
type member struct {
	client *primus.Client
	spark  *primus.Spark
	data   chan string     // notes and strings, as text
	events chan []string   // emitter events: name, then the first argument
	ec     *emitter.Client // nil without the emitter
}

// world is one server with rooms and n clients.
type world struct {
	srv   *primus.Server
	rooms *rooms.Rooms
	em    *emitter.Emitter
	p     *countingParser
	m     []*member
}

func newWorld(t *testing.T, fl pt.Flavour, n int, withEmitter bool) *world {
	t.Helper()
	w := &world{p: &countingParser{Parser: fl.Parser}}
	opts := &primus.Options{Parser: w.p}
	if withEmitter {
		w.em = emitter.New(nil)
		opts.Plugins = []plugin.Plugin{w.em}
	}
	srv, url := pt.Serve(t, fl, opts)
	w.srv = srv
	w.rooms = rooms.New(srv, nil)
	sparks := pt.Sparks(srv)
	for i := range n {
		m := &member{data: make(chan string, 64), events: make(chan []string, 64)}
		copts := &primus.ClientOptions{OnData: func(msg *primus.Message) {
			var nt note
			if err := msg.Decode(&nt); err == nil && nt.Text != "" {
				m.data <- nt.Text
				return
			}
			var s string
			if err := msg.Decode(&s); err != nil {
				t.Errorf("client %d: undecodable message: %v", i, err)
			}
			m.data <- s
		}}
		if withEmitter {
			m.ec = emitter.NewClient(nil)
			m.ec.On("news", func(ev *emitter.Event) {
				var s string
				_ = ev.Args.Decode(&s)
				m.events <- []string{ev.Name, s}
			})
			copts.Plugins = []plugin.Plugin{m.ec}
		}
		m.client = pt.Dial(t, fl, url, copts)
		m.spark = pt.Recv(t, sparks, "a spark")
		w.m = append(w.m, m)
	}
	return w
}

// next returns the member's next message.
func (m *member) next(t *testing.T) string {
	t.Helper()
	return pt.Recv(t, m.data, "a message")
}

// expectOnly checks that, of the messages written before the broadcast
// marker, each member got exactly want[i] ("" for none).
func (w *world) expectOnly(t *testing.T, marker string, want ...string) {
	t.Helper()
	if err := w.srv.Write(marker); err != nil {
		t.Fatal(err)
	}
	for i, m := range w.m {
		if want[i] != "" {
			if got := m.next(t); got != want[i] {
				t.Errorf("client %d got %q, want %q", i, got, want[i])
			}
		}
		if got := m.next(t); got != marker {
			t.Errorf("client %d got %q, want the marker %q: a message it should not have had", i, got, marker)
		}
	}
}

func join(t *testing.T, r *rooms.Rooms, m *member, room string) {
	t.Helper()
	if err := r.Join(m.spark, room); err != nil {
		t.Fatalf("Join(%s): %v", room, err)
	}
}

// TestMembership checks the bookkeeping: joins (twice is once), leaves,
// a spark's rooms, the server's rooms and a room's members.
func TestMembership(t *testing.T) {
	t.Parallel()
	w := newWorld(t, pt.Flavours[0], 3, false)
	r := w.rooms
	a, b, c := w.m[0], w.m[1], w.m[2]
	join(t, r, a, "x")
	join(t, r, a, "y")
	join(t, r, a, "y")
	join(t, r, b, "x")

	if got := r.RoomsOf(a.spark); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("RoomsOf(a) = %q", got)
	}
	if got := r.RoomsOf(c.spark); len(got) != 0 {
		t.Errorf("RoomsOf(c) = %q, want none", got)
	}
	if got := r.Rooms(); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("Rooms() = %q", got)
	}
	want := []string{a.spark.ID(), b.spark.ID()}
	slices.Sort(want)
	if got := r.Room("x").Members(); !slices.Equal(got, want) {
		t.Errorf("Members(x) = %q, want %q", got, want)
	}

	r.Leave(a.spark, "x")
	r.Leave(c.spark, "x") // not a member: nothing
	if got := r.Room("x").Members(); !slices.Equal(got, []string{b.spark.ID()}) {
		t.Errorf("Members(x) after a left = %q", got)
	}
	r.Leave(a.spark, "y")
	if got := r.Rooms(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Rooms() after a left y = %q: an empty room must go", got)
	}
	join(t, r, a, "z")
	r.LeaveAll(a.spark)
	if got := r.RoomsOf(a.spark); len(got) != 0 {
		t.Errorf("RoomsOf(a) after LeaveAll = %q", got)
	}
	if got := r.Rooms(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Rooms() after LeaveAll = %q", got)
	}
}

// TestWrite checks that a room write reaches its members only, that Except
// skips sparks, and that the message is encoded once for all the members.
func TestWrite(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		w := newWorld(t, fl, 4, false)
		r := w.rooms
		for _, i := range []int{0, 1, 2} {
			join(t, r, w.m[i], "gophers")
		}
		join(t, r, w.m[3], "other")

		before := w.p.notes.Load()
		if err := r.Room("gophers").Write(note{"hi gophers"}); err != nil {
			t.Fatal(err)
		}
		if n := w.p.notes.Load() - before; n != 1 {
			t.Errorf("a write to 3 members encoded the message %d times, want 1", n)
		}
		w.expectOnly(t, "mark 1", "hi gophers", "hi gophers", "hi gophers", "")

		if err := r.Room("gophers").Except(w.m[1].spark.ID()).Except(w.m[2].spark.ID()).Write("only 0"); err != nil {
			t.Fatal(err)
		}
		w.expectOnly(t, "mark 2", "only 0", "", "", "")

		// A room without members, and a raw message written as it is.
		if err := r.Room("nobody").Write("lost"); err != nil {
			t.Fatal(err)
		}
		raw, _ := fl.Parser.Encode("raw for other")
		if err := r.Room("other").Write(primus.Raw(raw)); err != nil {
			t.Fatal(err)
		}
		w.expectOnly(t, "mark 3", "", "", "", "raw for other")

		// An encoding error is returned, and nothing is sent.
		if err := r.Room("gophers").Write(func() {}); err == nil {
			t.Error("writing a func: no error")
		}
		w.expectOnly(t, "mark 4", "", "", "", "")
	})
}

// TestLeaveOnEnd checks that a spark leaves all its rooms by the time it
// has ended, and cannot join once ended.
func TestLeaveOnEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, pt.Flavours[0], 2, false)
	r := w.rooms
	gone, stays := w.m[0], w.m[1]
	join(t, r, gone, "a")
	join(t, r, gone, "b")
	join(t, r, stays, "b")

	_ = gone.client.Close()
	pt.Recv(t, gone.spark.Done(), "the spark's end")
	if got := r.RoomsOf(gone.spark); len(got) != 0 {
		t.Errorf("RoomsOf(ended spark) = %q", got)
	}
	if got := r.Rooms(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Rooms() = %q, want [b]", got)
	}
	if got := r.Room("b").Members(); !slices.Equal(got, []string{stays.spark.ID()}) {
		t.Errorf("Members(b) = %q", got)
	}
	if err := r.Join(gone.spark, "c"); !errors.Is(err, primus.ErrClosed) {
		t.Errorf("Join(ended spark) = %v, want ErrClosed", err)
	}
	if got := r.Rooms(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Rooms() after a refused join = %q", got)
	}
}

// TestEmitterEvents sends an emitter event to a room, with and without an
// exception.
func TestEmitterEvents(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		w := newWorld(t, fl, 3, true)
		r := w.rooms
		join(t, r, w.m[0], "news")
		join(t, r, w.m[1], "news")

		if err := r.Room("news").Send(w.em, "news", "headline"); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 1} {
			if ev := pt.Recv(t, w.m[i].events, "the news event"); !slices.Equal(ev, []string{"news", "headline"}) {
				t.Errorf("client %d got %q", i, ev)
			}
		}
		if err := r.Room("news").Except(w.m[0].spark.ID()).Send(w.em, "news", "second"); err != nil {
			t.Fatal(err)
		}
		if ev := pt.Recv(t, w.m[1].events, "the second event"); !slices.Equal(ev, []string{"news", "second"}) {
			t.Errorf("client 1 got %q", ev)
		}
		// Events and data share each connection's order: the marker comes
		// after anything the room sent.
		w.expectOnly(t, "mark", "", "", "")
		for i, m := range w.m {
			select {
			case ev := <-m.events:
				t.Errorf("client %d got an event it should not have: %q", i, ev)
			default:
			}
		}
		if err := r.Room("news").Send(w.em, "data", "x"); !errors.Is(err, emitter.ErrReserved) {
			t.Errorf("Send of a reserved event = %v, want ErrReserved", err)
		}
	})
}

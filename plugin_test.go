package primus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/plugin"
)

// orderLog records events from any goroutine, in order.
type orderLog struct {
	mu   sync.Mutex
	list []string
}

func (l *orderLog) add(s string) {
	l.mu.Lock()
	l.list = append(l.list, s)
	l.mu.Unlock()
}

// indexOf returns the position of the first entry s, or -1.
func (l *orderLog) indexOf(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.list {
		if e == s {
			return i
		}
	}
	return -1
}

func (l *orderLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.list, ", ")
}

type clientClose struct {
	reason       error
	reconnecting bool
}

var errHookRefused = errors.New("the outgoing hook refuses this value")

// hookPlugin is a test plugin with a server side and a client side.
//
// Server: objects {"tp": X} from clients are its own packets (consumed);
// strings are upper-cased on the way in; outgoing strings get an "out:"
// prefix, "drop" is dropped and "fail" refused.
//
// Client: objects {"tp": X} from the server are consumed; incoming strings
// get a "|c-in" suffix; outgoing strings get a "|c-out" suffix and
// "client-drop" is dropped.
type hookPlugin struct {
	log            *orderLog
	host           plugin.ServerHost
	serverConsumed *events[any]
	serverCloses   *events[error]
	clientConsumed *events[any]
	clientOpens    *events[struct{}]
	clientCloses   *events[clientClose]
}

func newHookPlugin() *hookPlugin {
	return &hookPlugin{
		log:            &orderLog{},
		serverConsumed: newEvents[any](),
		serverCloses:   newEvents[error](),
		clientConsumed: newEvents[any](),
		clientOpens:    newEvents[struct{}](),
		clientCloses:   newEvents[clientClose](),
	}
}

var (
	_ plugin.ServerPlugin = (*hookPlugin)(nil)
	_ plugin.ClientPlugin = (*hookPlugin)(nil)
)

func (p *hookPlugin) Name() string { return "hooks" }

// ownPacket returns X when m is {"tp": X}.
func ownPacket(m *parser.Message) (any, bool) {
	v, err := m.Value()
	if err != nil {
		return nil, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	tp, ok := obj["tp"]
	return tp, ok
}

func (p *hookPlugin) SetupServer(h plugin.ServerHost) error {
	p.host = h
	h.Install(plugin.ServerHooks{
		Connection: func(s plugin.Spark) { p.log.add("hook connection") },
		Incoming: func(s plugin.Spark, m *parser.Message) (bool, error) {
			if tp, ok := ownPacket(m); ok {
				p.serverConsumed.push(tp)
				return false, nil
			}
			var str string
			if err := m.Decode(&str); err == nil {
				return true, m.Replace(strings.ToUpper(str))
			}
			return true, nil
		},
		Outgoing: func(s plugin.Spark, v any) (any, bool, error) {
			str, ok := v.(string)
			switch {
			case !ok:
				return v, true, nil
			case str == "drop":
				return nil, false, nil
			case str == "fail":
				return nil, false, errHookRefused
			}
			return "out:" + str, true, nil
		},
		Close: func(s plugin.Spark, reason error) {
			p.log.add("hook close")
			p.serverCloses.push(reason)
		},
	})
	return nil
}

func (p *hookPlugin) SetupClient(h plugin.ClientHost) error {
	h.Install(plugin.ClientHooks{
		Open: func(plugin.Client) { p.clientOpens.push(struct{}{}) },
		Incoming: func(c plugin.Client, m *parser.Message) (bool, error) {
			if tp, ok := ownPacket(m); ok {
				p.clientConsumed.push(tp)
				return false, nil
			}
			var str string
			if err := m.Decode(&str); err == nil {
				return true, m.Replace(str + "|c-in")
			}
			return true, nil
		},
		Outgoing: func(c plugin.Client, v any) (any, bool, error) {
			str, ok := v.(string)
			switch {
			case !ok:
				return v, true, nil
			case str == "client-drop":
				return nil, false, nil
			}
			return str + "|c-out", true, nil
		},
		Close: func(c plugin.Client, reason error, reconnecting bool) {
			p.clientCloses.push(clientClose{reason, reconnecting})
		},
	})
	return nil
}

func TestPluginHooks(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		p := newHookPlugin()
		h := startServer(t, fl, &primus.Options{Plugins: []plugin.Plugin{p}, MaxMessageSize: 4096})
		serverData := newEvents[string]()
		sparks := make(chan *primus.Spark, 2)
		h.srv.OnConnection(func(sp *primus.Spark) {
			p.log.add("server connection")
			sp.OnEnd(func(error) { p.log.add("spark end") })
			sp.OnData(func(m *primus.Message) {
				var s string
				if err := m.Decode(&s); err != nil {
					t.Errorf("server data %q is not a string", short(m.Bytes()))
					return
				}
				if s == "BOOM|C-OUT" {
					panic("boom")
				}
				serverData.push(s)
				_ = sp.Write(s) // echo through the outgoing hook
			})
			sparks <- sp
		})
		h.srv.OnDisconnection(func(*primus.Spark) { p.log.add("server disconnection") })

		c := h.dial(t, "", &primus.ClientOptions{Plugins: []plugin.Plugin{p}})
		sp := waitFor(t, sparks, "spark")
		p.clientOpens.next(t, "client Open hook")
		if i, j := p.log.indexOf("hook connection"), p.log.indexOf("server connection"); i < 0 || j < 0 || i > j {
			t.Errorf("Connection hook must run before OnConnection: %s", p.log)
		}

		nextServer := func(want string) {
			t.Helper()
			if got := serverData.next(t, "server data "+want); got != want {
				t.Fatalf("server data %q, want %q", got, want)
			}
		}

		// Every hook on the way: client out, server in, server out, client in.
		c.write("hello")
		nextServer("HELLO|C-OUT")
		c.expect("out:HELLO|C-OUT|c-in")

		// The server hook consumes its own packets.
		c.write(map[string]any{"tp": "server-eat"})
		c.write("after")
		if tp := p.serverConsumed.next(t, "server-consumed packet"); tp != "server-eat" {
			t.Errorf("server hook consumed %v", tp)
		}
		nextServer("AFTER|C-OUT")
		c.expect("out:AFTER|C-OUT|c-in")

		// The client's outgoing hook drops a value.
		if err := c.Write("client-drop"); err != nil {
			t.Errorf("dropped Write = %v, want nil", err)
		}
		c.write("x")
		nextServer("X|C-OUT")
		c.expect("out:X|C-OUT|c-in")

		// Broadcasts go through the outgoing hook too, drops included.
		if err := h.srv.Write("bcast"); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.Write("drop"); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.Write("next"); err != nil {
			t.Fatal(err)
		}
		c.expect("out:bcast|c-in")
		c.expect("out:next|c-in")
		// ... and through the plugin's host.
		if err := p.host.Write("via host"); err != nil {
			t.Fatal(err)
		}
		c.expect("out:via host|c-in")

		// A refusing outgoing hook's error is returned by Write.
		if err := sp.Write("fail"); !errors.Is(err, errHookRefused) {
			t.Errorf("Write refused by the hook = %v, want errHookRefused", err)
		}

		// The client hook consumes its own packets.
		if err := sp.Write(map[string]any{"tp": "client-eat"}); err != nil {
			t.Fatal(err)
		}
		if err := sp.Write("z"); err != nil {
			t.Fatal(err)
		}
		if tp := p.clientConsumed.next(t, "client-consumed packet"); tp != "client-eat" {
			t.Errorf("client hook consumed %v", tp)
		}
		c.expect("out:z|c-in")

		// Control messages never reach the hooks.
		if id := c.id(); id != sp.ID() {
			t.Errorf("client ID %q, spark ID %q", id, sp.ID())
		}

		// The plugin's view of the server.
		if ps, ok := p.host.Spark(sp.ID()); !ok || ps.ID() != sp.ID() {
			t.Errorf("host.Spark(%q) = %v, %v", sp.ID(), ps, ok)
		}
		n := 0
		p.host.ForEach(func(plugin.Spark) bool { n++; return true })
		if n != 1 {
			t.Errorf("host.ForEach visited %d sparks, want 1", n)
		}
		if p.host.Parser() != fl.parser || p.host.Logger() == nil {
			t.Error("host.Parser or host.Logger wrong")
		}

		// A handler that panics ends the spark with a reason: the Close
		// hook gets it, between the spark's end handlers and the server's
		// disconnection handlers; the client reconnects.
		c.write("boom")
		if reason := p.serverCloses.next(t, "server Close hook"); !errors.Is(reason, primus.ErrPanic) {
			t.Errorf("Close hook reason %v, want a PanicError", reason)
		}
		waitFor(t, sp.Done(), "spark Done")
		eventually(t, "the disconnection handler", func() bool { return p.log.indexOf("server disconnection") >= 0 })
		if a, b, d := p.log.indexOf("spark end"), p.log.indexOf("hook close"), p.log.indexOf("server disconnection"); !(a < b && b < d) {
			t.Errorf("end order: %s; want spark end, hook close, server disconnection", p.log)
		}
		if cc := p.clientCloses.next(t, "client Close hook"); cc.reason == nil || !cc.reconnecting {
			t.Errorf("client Close hook (%v, reconnecting %v), want a reason and reconnecting", cc.reason, cc.reconnecting)
		}
		p.clientOpens.next(t, "client Open hook after reconnecting")
		waitFor(t, sparks, "the new spark")
		c.write("again")
		nextServer("AGAIN|C-OUT")
		c.expect("out:AGAIN|C-OUT|c-in")

		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if cc := p.clientCloses.next(t, "client Close hook on Close"); cc.reconnecting {
			t.Errorf("client Close hook after Close says reconnecting")
		}
		if reason := p.serverCloses.next(t, "server Close hook"); reason != nil {
			t.Errorf("Close hook reason %v after the client closed, want nil", reason)
		}
	})
}

func TestPluginInstallAfterBuildPanics(t *testing.T) {
	t.Parallel()
	p := newHookPlugin()
	if _, err := primus.New(&primus.Options{Plugins: []plugin.Plugin{p}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Install after New did not panic")
		}
	}()
	p.host.Install(plugin.ServerHooks{})
}

// With an outgoing hook, a broadcast takes another path (one encode per
// spark); it must still report a server that has shut down.
func TestPluginBroadcastAfterShutdown(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, &primus.Options{Plugins: []plugin.Plugin{newHookPlugin()}})
		if err := h.srv.Write("before"); err != nil {
			t.Fatalf("broadcast before Shutdown: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.Write("late"); !errors.Is(err, primus.ErrServerClosed) {
			t.Errorf("broadcast after Shutdown = %v, want ErrServerClosed", err)
		}
	})
}

package interop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport"
)

// TestGoClientAgainstNodeServer runs our Go client against a stock Node
// Primus 8.0.9 server (websockets + JSON): echo, id, heartbeat, server
// close, reconnect after a drop, and an authorization refusal.
func TestGoClientAgainstNodeServer(t *testing.T) {
	t.Parallel()
	base := StartNodeServer(t, "--ping-interval", "300")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	data := make(chan any, 16)
	opened := make(chan struct{}, 16)
	pings := make(chan struct{}, 64)
	reconnects := make(chan primus.ReconnectEvent, 16)
	ended := make(chan error, 1)
	c, err := primus.Dial(ctx, base+"/primus?token=abc&name=J%C3%B6rg", &primus.ClientOptions{
		OnOpen: func() { opened <- struct{}{} },
		OnData: func(m *primus.Message) {
			v, err := m.Value()
			if err != nil {
				t.Errorf("decode: %v", err)
			}
			data <- v
		},
		OnHeartbeat: func() {
			select {
			case pings <- struct{}{}:
			default:
			}
		},
		OnReconnect: func(ev primus.ReconnectEvent) { reconnects <- ev },
		OnEnd:       func(err error) { ended <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recv(t, opened)

	t.Run("echo", func(t *testing.T) {
		for _, v := range []any{"hello", "", float64(42), true, nil, map[string]any{"a": []any{"b", float64(1)}}, "Jörg ☃"} {
			if err := c.Write(v); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, data); !equalJSON(got, v) {
				t.Fatalf("echo %#v: got %#v", v, got)
			}
		}
	})

	var id string
	t.Run("id", func(t *testing.T) {
		id, err = c.ID(ctx)
		if err != nil || id == "" {
			t.Fatalf("ID: %q, %v", id, err)
		}
		if err := c.Write(map[string]any{"cmd": "whoami"}); err != nil {
			t.Fatal(err)
		}
		who := recv(t, data).(map[string]any)
		if who["id"] != id {
			t.Fatalf("whoami id %v, ID() %v", who["id"], id)
		}
		q := who["query"].(map[string]any)
		if q["token"] != "abc" || q["name"] != "Jörg" {
			t.Fatalf("query %v", q)
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		// Three pings answered on one connection: the server keeps us.
		for range 3 {
			recv(t, pings)
		}
		if got, _ := c.ID(ctx); got != id {
			t.Fatalf("connection changed during heartbeats: %q then %q", id, got)
		}
		select {
		case ev := <-reconnects:
			t.Fatalf("reconnected during heartbeats: %+v", ev)
		default:
		}
	})

	t.Run("reconnect after drop", func(t *testing.T) {
		if err := c.Write(map[string]any{"cmd": "drop"}); err != nil {
			t.Fatal(err)
		}
		ev := recv(t, reconnects)
		if ev.Attempt != 1 || ev.Wait != 500*time.Millisecond {
			t.Fatalf("first reconnect %+v, want attempt 1 after 500ms", ev)
		}
		recv(t, opened)
		if err := c.Write("after"); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, data); got != "after" {
			t.Fatalf("echo after reconnect: %#v", got)
		}
		newID, err := c.ID(ctx)
		if err != nil || newID == id {
			t.Fatalf("id after reconnect %q (before %q), %v", newID, id, err)
		}
	})

	t.Run("server close", func(t *testing.T) {
		if err := c.Write(map[string]any{"cmd": "close"}); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, ended); err != nil {
			t.Fatalf("end reason %v, want nil", err)
		}
		<-c.Done()
		select {
		case ev := <-reconnects:
			t.Fatalf("reconnect after server close: %+v", ev)
		default:
		}
		if err := c.Write("x"); !errors.Is(err, primus.ErrClosed) {
			t.Fatalf("write after end: %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		_, err := primus.Dial(ctx, base+"/primus?token=bad", nil)
		var he *transport.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 401 || string(he.Body) != `{"error":"invalid token"}` {
			t.Fatalf("Dial with a bad token: %v", err)
		}
	})
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalJSON(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

package primus_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
)

// TestEveryAbuserAtOnce: every attack of the hardening work at the same
// time — a handler panic, a flood from a client that never reads, invalid
// UTF-8, binary frames to a JSON server, oversize messages, huge headers,
// an emitter ack flood, and a client trickling its request headers — next
// to 50 well-behaved clients, which all keep echoing, in order, without a
// reconnection.
func TestEveryAbuserAtOnce(t *testing.T) {
	t.Parallel()
	plugs, err := testserver.ParsePlugins("emitter")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := primus.New(&primus.Options{
		Plugins:        plugs.List(),
		MaxMessageSize: 64 << 10,
		SendQueueBytes: 1 << 20,
		PingInterval:   time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	testserver.Setup(srv)
	if err := plugs.Setup(srv); err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) {
			if string(m.Bytes()) == `"boom"` {
				panic("boom")
			}
		})
	})
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ReadHeaderTimeout = time.Second // as the README's http.Server
	ts.Config.MaxHeaderBytes = 2 << 20
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	url := ts.URL + "/primus"
	wsURL := "ws" + strings.TrimPrefix(url, "http")

	// The well-behaved clients, connected before the attacks begin.
	const good, msgs = 50, 100
	h := &harness{fl: wsJSON, srv: srv, ts: ts, url: url}
	clients := make([]*testClient, good)
	for i := range clients {
		clients[i] = h.dial(t, "", nil)
		clients[i].id()
	}

	stop := make(chan struct{})
	var attackers sync.WaitGroup
	attack := func(_ string, f func(ctx context.Context)) {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				f(ctx)
				cancel()
			}
		}()
	}
	rawConn := func(ctx context.Context, opts *ws.DialOptions) *ws.Conn {
		c, _, err := ws.Dial(ctx, wsURL, opts)
		if err != nil {
			return nil
		}
		return c
	}
	attack("panic", func(ctx context.Context) {
		if c := rawConn(ctx, nil); c != nil {
			_ = c.Write(ctx, ws.MessageText, []byte(`"boom"`))
			_, _, _ = c.Read(ctx) // closed with 1011
			_ = c.CloseNow()
		}
	})
	attack("flood", func(ctx context.Context) {
		if c := rawConn(ctx, nil); c != nil {
			for i := 0; i < 100_000 && ctx.Err() == nil; i++ {
				if c.Write(ctx, ws.MessageText, []byte("1")) != nil {
					break // closed as a slow consumer
				}
			}
			_ = c.CloseNow()
		}
	})
	attack("invalid UTF-8", func(ctx context.Context) {
		if c := rawConn(ctx, nil); c != nil {
			_ = c.Write(ctx, ws.MessageText, []byte("{\"cmd\":\"broadcast\",\"data\":\"\xff\"}"))
			_, _, _ = c.Read(ctx) // closed with 1007
			_ = c.CloseNow()
		}
	})
	attack("binary", func(ctx context.Context) {
		if c := rawConn(ctx, nil); c != nil {
			_ = c.Write(ctx, ws.MessageBinary, []byte(`{"cmd":"broadcast","data":"bin"}`))
			_, _, _ = c.Read(ctx) // closed with 1003
			_ = c.CloseNow()
		}
	})
	attack("oversize", func(ctx context.Context) {
		if c := rawConn(ctx, nil); c != nil {
			_ = c.Write(ctx, ws.MessageText, []byte(`"`+strings.Repeat("x", 128<<10)+`"`))
			_, _, _ = c.Read(ctx) // closed with 1009
			_ = c.CloseNow()
		}
	})
	hdr := http.Header{"X-Huge": {strings.Repeat("h", 800<<10)}}
	attack("huge headers", func(ctx context.Context) {
		if c := rawConn(ctx, &ws.DialOptions{HTTPHeader: hdr}); c != nil {
			_ = c.CloseNow()
		}
	})
	attack("ack flood", func(ctx context.Context) {
		c := rawConn(ctx, nil)
		if c == nil {
			return
		}
		// primus-emitter's event packet: the server asks back, and this
		// client never answers.
		pkt := []byte(`{"type":0,"data":["ask","never answered"]}`)
		for i := 0; i < 5000 && ctx.Err() == nil; i++ {
			if c.Write(ctx, ws.MessageText, pkt) != nil {
				break
			}
		}
		_ = c.CloseNow()
	})
	attack("slow headers", func(ctx context.Context) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", ts.Listener.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET /primus HTTP/1.1\r\nHost: x\r\n"))
		// Never finish the headers: the server cuts it at ReadHeaderTimeout.
		_, _ = bufio.NewReader(c).ReadString('\n')
	})

	// Meanwhile every good client echoes its numbered messages, in order.
	var wg sync.WaitGroup
	errs := make(chan error, good)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range msgs {
				want := fmt.Sprintf("client %d message %d", i, n)
				if err := c.Write(want); err != nil {
					errs <- fmt.Errorf("client %d: write %d: %w", i, n, err)
					return
				}
				m, ok := c.data.poll(waitTimeout)
				if !ok {
					errs <- fmt.Errorf("client %d: no echo of message %d", i, n)
					return
				}
				var got string
				if err := m.Decode(&got); err != nil || got != want {
					errs <- fmt.Errorf("client %d: got %q, want %q", i, short(m.Bytes()), want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	attackers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range clients {
		if n := c.reconnects.total(); n != 0 {
			t.Errorf("good client %d reconnected %d times", i, n)
		}
	}
}

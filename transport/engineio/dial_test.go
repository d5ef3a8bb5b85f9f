package engineio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/engineio"
)

var dialModes = []struct {
	name string
	mode engineio.DialMode
}{
	{"websocket", engineio.DialWebSocket},
	{"polling", engineio.DialPolling},
}

// The Go client over either dial mode: echo of every kind of value in order
// (binary ones with CBOR), the id, Engine.IO heartbeats answered, a drop
// followed by a reconnect, the server's intentional end, and a refusal.
func TestDialer(t *testing.T) {
	t.Parallel()
	for _, dm := range dialModes {
		for _, p := range []parser.Parser{parser.JSON, parser.CBOR} {
			t.Run(dm.name+"-"+p.Name(), func(t *testing.T) {
				t.Parallel()
				eo := &engineio.Options{PingInterval: 150 * time.Millisecond, PingTimeout: 500 * time.Millisecond, Dial: dm.mode}
				s := start(t, eo, &primus.Options{Parser: p, PingInterval: 300 * time.Millisecond})
				ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
				defer cancel()
				data := make(chan any, 2000)
				opened := make(chan struct{}, 4)
				pings := make(chan struct{}, 100)
				ended := make(chan error, 1)
				c, err := primus.Dial(ctx, s.url+"?token=abc", &primus.ClientOptions{
					Dialer: engineio.New(eo),
					Parser: p,
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
					OnEnd: func(err error) { ended <- err },
				})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				recv(t, opened, "open")
				sp := s.spark(t)
				for _, v := range []any{"hello", "", "Jörg ☃ \u2028", true, nil, map[string]any{"a": []any{"b"}}} {
					if err := c.Write(v); err != nil {
						t.Fatal(err)
					}
					got := recv(t, data, "the echo")
					if want, _ := p.Encode(v); func() bool { b, _ := p.Encode(got); return string(b) != string(want) }() {
						t.Errorf("echo of %#v: %#v", v, got)
					}
				}
				for i := range 500 {
					if err := c.Write(i); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 500 {
					got := recv(t, data, "an echo")
					if n, ok := asInt(got); !ok || n != i {
						t.Fatalf("echo %d: %#v", i, got)
					}
				}
				id, err := c.ID(ctx)
				if err != nil || id != sp.ID() {
					t.Errorf("ID %q %v, spark %q", id, err, sp.ID())
				}
				// Several Engine.IO ping intervals pass: the session lives
				// (Primus's own pings are answered too).
				for range 3 {
					recv(t, pings, "a Primus ping")
				}
				select {
				case end := <-s.ends:
					t.Fatalf("the spark ended with %v", end.reason)
				default:
				}

				if err := c.Write(map[string]any{"cmd": "drop"}); err != nil {
					t.Fatal(err)
				}
				recv(t, opened, "the reconnection")
				s.end(t)
				s.spark(t)
				if err := c.Write("after the drop"); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, data, "the echo"); got != "after the drop" {
					t.Errorf("echo %#v", got)
				}

				if err := c.Write(map[string]any{"cmd": "close"}); err != nil {
					t.Fatal(err)
				}
				if err := recv(t, ended, "the end"); err != nil {
					t.Errorf("OnEnd(%v) after the server's close, want nil", err)
				}

				_, err = primus.Dial(ctx, s.url+"?token=bad", &primus.ClientOptions{Dialer: engineio.New(eo), Parser: p})
				var he *transport.HandshakeError
				if !errors.As(err, &he) || he.StatusCode != 401 {
					t.Errorf("Dial with token=bad: %v, want a 401 HandshakeError", err)
				}
			})
		}
	}
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		return int(n), true
	case int64:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}

// The dialer takes a server that stops pinging for gone: its connection
// ends with ErrPingTimeout after the announced pingInterval + pingTimeout.
func TestDialerPingTimeout(t *testing.T) {
	t.Parallel()
	const openPacket = `0{"sid":"silent","upgrades":[],"pingInterval":100,"pingTimeout":200,"maxPayload":1000}`
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("transport") == "websocket" {
			c, err := ws.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(r.Context(), ws.MessageText, []byte(openPacket))
			_, _, _ = c.Read(r.Context()) // until the client closes
			return
		}
		if r.URL.Query().Get("sid") == "" {
			_, _ = w.Write([]byte(openPacket))
			return
		}
		<-r.Context().Done() // polls never answer
	}))
	t.Cleanup(silent.Close)
	for _, dm := range dialModes {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			c, err := engineio.New(&engineio.Options{Dial: dm.mode}).Dial(ctx, silent.URL+"/primus", transport.DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			began := time.Now()
			_, _, err = c.Read(ctx)
			if !errors.Is(err, engineio.ErrPingTimeout) {
				t.Errorf("Read: %v, want ErrPingTimeout", err)
			}
			if d := time.Since(began); d < 300*time.Millisecond {
				t.Errorf("gave up after %v, before pingInterval + pingTimeout", d)
			}
		})
	}
}

// The dialer speaks to the URL's pathname with Engine.IO's trailing slash
// and the query, and refuses other schemes.
func TestDialerURL(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path + "?" + r.URL.RawQuery
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := engineio.New(&engineio.Options{Dial: engineio.DialPolling}).Dial(ctx, ts.URL+"/rt?x=1", transport.DialOptions{})
	var he *transport.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusTeapot {
		t.Errorf("Dial: %v", err)
	}
	if got := recv(t, seen, "the request"); got != "/rt/?EIO=4&transport=polling&x=1" {
		t.Errorf("request %q", got)
	}
	if _, err := engineio.New(nil).Dial(ctx, "ftp://x/primus", transport.DialOptions{}); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("ftp: %v", err)
	}
}

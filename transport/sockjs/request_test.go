package sockjs_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/sockjs"
)

// padding returns n headers X-Pad-i of size bytes each.
func padding(n, size int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", size))
	}
	return h
}

// What a session keeps of its client's request is bounded whatever the
// client sends: 200 sessions (half over the websocket transport, half
// polling, idle between polls), each opened with about 850 KB of headers,
// grow the heap by far less than the 170 MB they sent. The bound checked is
// 200 × (HeaderBytes (32 KiB) + 64 KiB): the headers a session keeps, and a
// generous allowance for everything else a session holds (its spark, the
// sockjs-go session, the WebSocket's buffers on both sides of the loopback).
// Without the bound, each session would hold its 850 KB.
//
// Not parallel: it measures the heap.
func TestHeadersKeptBounded(t *testing.T) {
	const (
		n           = 200
		headerBytes = 32 << 10
		allowance   = 64 << 10
	)
	// 780 KiB in 780 headers, all under the budget on their own, and a
	// forwarding header the session keeps a bounded part of.
	pad := padding(780, 1<<10)
	pad.Set("X-Forwarded-For", strings.Repeat("192.0.2.1, ", 4<<10)+"192.0.2.2")
	srv, err := primus.New(&primus.Options{
		Transformer:  sockjs.New(&sockjs.Options{DisconnectDelay: time.Minute}),
		PingInterval: -1,
		WriteTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	sparks := make(chan *primus.Spark, n)
	srv.OnConnection(func(sp *primus.Spark) { sparks <- sp })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s := &server{srv: srv, ts: ts, url: ts.URL + "/primus", client: &http.Client{Transport: &http.Transport{}}}
	defer s.client.CloseIdleConnections()

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()

	var wss []*ws.Conn
	var polling []*session
	for i := range n {
		if i%2 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+fmt.Sprintf("/1/ws%06d/websocket", i), &ws.DialOptions{HTTPHeader: pad})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			if _, f, err := c.Read(ctx); err != nil || string(f) != "o" {
				t.Fatalf("first frame %q, %v", f, err)
			}
			cancel()
			wss = append(wss, c)
		} else {
			c := &session{s: s, base: s.url + fmt.Sprintf("/1/po%06d", i)}
			resp, body := s.do(t, http.MethodPost, c.url("xhr"), "", pad)
			if resp.StatusCode != http.StatusOK || body != "o\n" {
				t.Fatalf("poll: %d %q", resp.StatusCode, body)
			}
			polling = append(polling, c)
		}
	}
	var all []*primus.Spark
	for range n {
		all = append(all, recv(t, sparks, "a spark"))
	}
	s.client.CloseIdleConnections()
	after := heap()
	grown := int64(after) - int64(before)
	t.Logf("heap grew by %.1f MB for %d sessions: %.1f KB each", float64(grown)/1e6, n, float64(grown)/n/1e3)
	if limit := int64(n * (headerBytes + allowance)); grown > limit {
		t.Errorf("heap grew by %d bytes for %d sessions with about 850 KB of headers each, over %d", grown, n, limit)
	}
	if srv.Count() != n {
		t.Errorf("%d sparks alive during the measurement, want %d", srv.Count(), n)
	}
	for _, sp := range all {
		size := 0
		for k, vs := range sp.Header() {
			size += len(k) + len(strings.Join(vs, ""))
		}
		if size > headerBytes {
			t.Errorf("a spark keeps %d bytes of headers, over %d", size, headerBytes)
			break
		}
	}

	// End the sessions: WebSocket ones by their client, polling ones by a
	// stream that collects a last message and is then cut off (sockjs-go
	// ends an interrupted session at once).
	for _, c := range wss {
		_ = c.CloseNow()
	}
	for _, sp := range all {
		_ = sp.Write("bye")
	}
	for _, c := range polling {
		st := c.openStream(t, http.MethodPost, "xhr_streaming", "")
		r := xhrStreamReceiver{st}
		r.next(t) // prelude
		if m := nextData(t, r); len(m) != 1 || m[0] != `"bye"` {
			t.Errorf("last message %q", m)
		}
		st.close()
	}
	for _, sp := range all {
		recv(t, sp.Done(), "the spark's end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// Trimming keeps what SockJS needs: the CORS answer names the request's
// origin, the JSESSIONID cookie comes back with the client's own value, the
// WebSocket upgrade works, and the spark's address is the one the trusted
// proxy forwards — with the headers kept at none (HeaderBytes < 0), and
// with a budget filled by many small headers.
func TestTrimmedHeadersStillServe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		headerBytes int
		pad         http.Header
	}{
		{"none kept", -1, padding(10, 10)},
		{"budget filled by smaller headers", 4 << 10, padding(600, 8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const origin = "https://app.friends.example"
			s := start(t, &sockjs.Options{JSessionID: true}, &primus.Options{
				HeaderBytes:    tc.headerBytes,
				OriginPatterns: []string{"*.friends.example"},
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			})
			h := tc.pad.Clone()
			h.Set("Origin", origin)
			h.Set("Cookie", "JSESSIONID=node-7.abcdef0123456789; theme=dark; "+strings.Repeat("x", 64)+"=1")
			// Junk on the left of the chain is the client's own; the proxy
			// appended the address on the right.
			h.Set("X-Forwarded-For", strings.Repeat("10.9.9.9, ", 40)+"203.0.113.50")
			c := s.newSession("")
			resp, body := s.do(t, http.MethodPost, c.url("xhr"), "", h)
			if resp.StatusCode != 200 || body != "o\n" {
				t.Fatalf("poll: %d %q", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
			}
			if got := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(got, "JSESSIONID=node-7.abcdef0123456789") {
				t.Errorf("Set-Cookie %q, want the client's own JSESSIONID", got)
			}
			sp := s.spark(t)
			if got := sp.Address().IP.String(); got != "203.0.113.50" {
				t.Errorf("spark address %s, want the forwarded one", got)
			}
			if tc.headerBytes < 0 && len(sp.Header()) != 0 {
				t.Errorf("spark header %v, want none", sp.Header())
			}

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			wh := tc.pad.Clone()
			wh.Set("Origin", origin)
			wc, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/1/trimmed1/websocket", &ws.DialOptions{HTTPHeader: wh})
			if err != nil {
				t.Fatalf("websocket: %v", err)
			}
			defer wc.CloseNow()
			if _, f, err := wc.Read(ctx); err != nil || string(f) != "o" {
				t.Errorf("websocket first frame %q, %v", f, err)
			}
		})
	}
}

package engineio_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/engineio"
)

// Engine.IO's heartbeat over polling: the server's ping comes after
// PingInterval, a pong keeps the session, and a client that stops polling
// (so never answers) is closed PingInterval + PingTimeout after its last
// pong.
func TestPingPolling(t *testing.T) {
	t.Parallel()
	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	s := start(t, &engineio.Options{PingInterval: interval, PingTimeout: timeout}, nil)
	opened := time.Now()
	c := s.handshake(t, "", nil)
	sp := s.spark(t)
	var answered time.Time
	for i := range 3 {
		got := c.poll(t)
		if !slices.Equal(got, []string{"2"}) {
			t.Fatalf("poll %d: %q, want a ping", i, got)
		}
		if i == 0 && time.Since(opened) < interval {
			t.Errorf("first ping after %v, before the interval", time.Since(opened))
		}
		answered = time.Now() // the server has the pong after this
		c.send(t, "3")
	}
	// Now silent: no poll, no pong.
	end := s.end(t)
	if end.sp != sp || end.reason != nil {
		t.Errorf("spark %s ended with %v", end.sp.ID(), end.reason)
	}
	if d := time.Since(answered); d < interval+timeout {
		t.Errorf("closed %v after the last pong, before interval + timeout", d)
	}
	if resp, body := c.get(t); resp.StatusCode != 400 {
		t.Errorf("poll after the timeout: %d %q, want 400", resp.StatusCode, body)
	}
}

// The same over WebSocket: pings as frames; a client that reads them but
// never answers is closed after PingInterval + PingTimeout.
func TestPingWebSocket(t *testing.T) {
	t.Parallel()
	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	s := start(t, &engineio.Options{PingInterval: interval, PingTimeout: timeout}, nil)
	w, _ := s.openWS(t, "")
	s.spark(t)
	var answered time.Time
	for range 2 {
		if p := w.read(t); p != "2" {
			t.Fatalf("got %q, want a ping", p)
		}
		answered = time.Now() // the server has the pong after this
		w.write(t, "3")
	}
	if p := w.read(t); p != "2" {
		t.Fatalf("got %q, want a ping", p)
	}
	if err := w.closed(t); err == nil {
		t.Fatal("no close")
	}
	if d := time.Since(answered); d < interval+timeout {
		t.Errorf("closed %v after the last pong, before interval + timeout", d)
	}
	if end := s.end(t); end.reason != nil {
		t.Errorf("spark ended with %v", end.reason)
	}
}

// A client busy sending while a pong is due gets the pong timeout extended
// once (as engine.io does), not forever.
func TestPingTimeoutExtendedOnce(t *testing.T) {
	t.Parallel()
	const interval, timeout = 100 * time.Millisecond, 400 * time.Millisecond
	s := start(t, &engineio.Options{PingInterval: interval, PingTimeout: timeout}, nil)
	w, _ := s.openWS(t, "")
	s.spark(t)
	if p := w.read(t); p != "2" {
		t.Fatalf("got %q, want a ping", p)
	}
	pinged := time.Now()
	// Messages, but no pong: the first when three quarters of the timeout
	// have passed (the wait restarts from there), then every half timeout
	// (they change nothing more).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-time.After(timeout * 3 / 4):
		case <-ctx.Done():
		}
		for ctx.Err() == nil {
			if w.c.Write(ctx, ws.MessageText, []byte(`4"busy"`)) != nil {
				return
			}
			select {
			case <-time.After(timeout / 2):
			case <-ctx.Done():
			}
		}
	}()
	if err := w.closed(t); err == nil {
		t.Fatal("no close")
	}
	if d := time.Since(pinged); d < timeout*3/2 || d > 3*timeout+time.Second {
		t.Errorf("closed %v after the ping; want the timeout extended once (about %v)", d, timeout*7/4)
	}
	s.end(t)
}

// A client that goes away in the middle of a poll: when its connection
// closes the session ends at once; when it vanishes without closing (the
// poll's answer is written into the void) the session ends when the ping
// goes unanswered.
func TestClientVanishesMidPoll(t *testing.T) {
	t.Parallel()
	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	t.Run("closes", func(t *testing.T) {
		t.Parallel()
		s := start(t, &engineio.Options{PingInterval: time.Minute}, nil)
		c := s.handshake(t, "", nil)
		s.spark(t)
		conn := rawRequest(t, s, "GET", strings.TrimPrefix(c.url(), s.ts.URL), "", "")
		waitPolling(t, s, c)
		closed := time.Now()
		_ = conn.Close()
		if end := s.end(t); end.reason != nil {
			t.Errorf("spark ended with %v", end.reason)
		}
		if d := time.Since(closed); d > waitTimeout/2 {
			t.Errorf("ended %v after the close", d)
		}
	})
	t.Run("vanishes", func(t *testing.T) {
		t.Parallel()
		s := start(t, &engineio.Options{PingInterval: interval, PingTimeout: timeout}, nil)
		opened := time.Now()
		c := s.handshake(t, "", nil)
		s.spark(t)
		// The poll is never read nor closed: it gets the ping, and then no
		// poll comes.
		rawRequest(t, s, "GET", strings.TrimPrefix(c.url(), s.ts.URL), "", "")
		if end := s.end(t); end.reason != nil {
			t.Errorf("spark ended with %v", end.reason)
		}
		if d := time.Since(opened); d < interval+timeout {
			t.Errorf("ended %v after the handshake, before interval + timeout", d)
		}
	})
}

// A POST body over the limit is refused with 413 and ends the session with
// ErrMessageTooBig; so is a message over MaxMessageSize in a body under it,
// and one over WebSocket (close 1009). A message of exactly MaxMessageSize
// passes, text or binary (base64 in polling).
func TestMessageTooBig(t *testing.T) {
	t.Parallel()
	const limit = 1000
	fits := fmt.Sprintf("4%q", strings.Repeat("a", limit-2))
	over := fmt.Sprintf("4%q", strings.Repeat("a", limit-1))
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, &primus.Options{MaxMessageSize: limit})
		c := s.handshake(t, "", nil)
		if c.open.MaxPayload != limit {
			t.Errorf("maxPayload %d, want %d", c.open.MaxPayload, limit)
		}
		s.spark(t)
		c.send(t, fits)
		if got := c.collect(t, 1); got[0] != fits {
			t.Fatalf("echo of %d bytes: %q", len(fits), short(got[0]))
		}
		resp, _ := c.post(t, over)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a message of %d bytes: %d, want 413", len(over)-1, resp.StatusCode)
		}
		if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
			t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
		}

		c = s.handshake(t, "", nil)
		s.spark(t)
		body := strings.Repeat("x", int(engineio.BodyLimit(s.tr))+1)
		if resp, _ := c.post(t, body); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a body of %d bytes: %d, want 413", len(body), resp.StatusCode)
		}
		if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
			t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
		}
		// Many small messages up to the limit in one body are fine.
		c = s.handshake(t, "", nil)
		s.spark(t)
		var pkts []string
		for range limit / 10 {
			pkts = append(pkts, `4"123456"`)
		}
		c.send(t, pkts...)
		if got := c.collect(t, len(pkts)); len(got) != len(pkts) {
			t.Errorf("%d echoes", len(got))
		}
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, &primus.Options{MaxMessageSize: limit})
		w, _ := s.openWS(t, "")
		s.spark(t)
		w.write(t, fits)
		if p := w.next(t); p != fits {
			t.Fatalf("echo %q", short(p))
		}
		w.write(t, over)
		if err := w.closed(t); ws.CloseStatus(err) != ws.StatusMessageTooBig {
			t.Errorf("close %v, want 1009", err)
		}
		if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
			t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
		}
	})
	t.Run("binary", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, &primus.Options{MaxMessageSize: limit, Parser: parser.CBOR})
		msg := make([]byte, limit)
		msg[0] = 0x5a // a CBOR byte string with a 4-byte length
		msg[1], msg[2], msg[3], msg[4] = 0, 0, (limit-5)>>8, (limit-5)&0xff
		b64 := "b" + base64.StdEncoding.EncodeToString(msg)
		c := s.handshake(t, "", nil)
		s.spark(t)
		c.send(t, b64)
		if got := c.collect(t, 1); got[0] != b64 {
			t.Errorf("echo of %d bytes over polling: %q", limit, short(got[0]))
		}
		w, _ := s.openWS(t, "")
		s.spark(t)
		w.writeType(t, ws.MessageBinary, msg)
		if _, b, err := w.readFrame(t); err != nil || len(b) != limit {
			t.Errorf("echo of %d bytes over WebSocket: %d bytes, %v", limit, len(b), err)
		}
		w.writeType(t, ws.MessageBinary, append(msg, 0))
		if err := w.closed(t); ws.CloseStatus(err) != ws.StatusMessageTooBig {
			t.Errorf("close %v, want 1009", err)
		}
	})
}

// A POST body must be a UTF-8 text payload: invalid UTF-8 and binary
// payloads (protocol v3's) are refused with 400 and close the session.
func TestPayloadNotText(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	for _, tc := range []struct {
		name, body, contentType string
		reason                  error
	}{
		{"invalid UTF-8", "4\"\xff\xfe\"", "text/plain;charset=UTF-8", primus.ErrInvalidUTF8},
		{"octet-stream", "\x00\x01", "application/octet-stream", nil},
	} {
		c := s.handshake(t, "", nil)
		s.spark(t)
		resp, _ := s.do(t, http.MethodPost, c.url(), tc.body, http.Header{"Content-Type": {tc.contentType}})
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", tc.name, resp.StatusCode)
		}
		if end := s.end(t); !errors.Is(end.reason, tc.reason) {
			t.Errorf("%s: spark ended with %v, want %v", tc.name, end.reason, tc.reason)
		}
		if resp, _ := c.get(t); resp.StatusCode != 400 {
			t.Errorf("%s: poll after: %d, want 400", tc.name, resp.StatusCode)
		}
	}
}

// A POST body that trickles is cut after the server's BodyTimeout, and the
// session closes.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 300 * time.Millisecond
	s := start(t, nil, &primus.Options{BodyTimeout: bodyTimeout})
	c := s.handshake(t, "", nil)
	s.spark(t)
	began := time.Now()
	conn := rawRequest(t, s, "POST", strings.TrimPrefix(c.url(), s.ts.URL), "Content-Length: 50\r\n", `4"slow`)
	s.end(t)
	if d := time.Since(began); d < bodyTimeout {
		t.Errorf("cut after %v, before the body timeout", d)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("the cut request's answer: %q %v", line, err)
	}
	// A long poll is not cut by the body timeout.
	c = s.handshake(t, "", nil)
	sp := s.spark(t)
	polled := c.pollAsync()
	waitPolling(t, s, c)
	<-time.After(3 * bodyTimeout) // the duration under test
	if err := sp.Write("late"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, polled, "the poll"); !slices.Equal(got, []string{`4"late"`}) {
		t.Errorf("poll: %q", got)
	}
}

// A polling client that does not poll fills the session's send buffer and
// then the spark's queue: the spark closes with ErrSlowConsumer, and memory
// stays bounded.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	s := start(t, &engineio.Options{SendBufferBytes: 4 << 10}, &primus.Options{SendQueueBytes: 16 << 10})
	s.handshake(t, "", nil)
	sp := s.spark(t)
	msg := strings.Repeat("x", 1000)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = sp.Write(msg)
	}
	if !errors.Is(err, primus.ErrSlowConsumer) {
		t.Errorf("writes ended with %v, want ErrSlowConsumer", err)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrSlowConsumer) {
		t.Errorf("spark ended with %v", end.reason)
	}
}

// Allowed browser origins are echoed in CORS headers with credentials
// allowed, on the handshake, polls and sends; preflights are answered; other
// origins are refused.
func TestCORS(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{OriginPatterns: []string{"*.friends.example"}})
	const origin = "https://app.friends.example"
	hdr := http.Header{"Origin": {origin}}
	c := s.handshake(t, "", hdr)
	s.spark(t)
	check := func(what string, resp *http.Response) {
		t.Helper()
		if resp.Header.Get("Access-Control-Allow-Origin") != origin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, -Credentials %q", what, resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"))
		}
	}
	resp, _ := c.post(t, `4"x"`)
	check("POST", resp)
	resp, _ = c.get(t)
	check("GET", resp)
	resp, _ = s.do(t, http.MethodOptions, c.url(), "", http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}})
	check("preflight", resp)
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") || resp.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = s.do(t, http.MethodGet, c.url(), "", http.Header{"Origin": {"https://evil.example"}})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if _, status, err := s.dialWS(t, "EIO=4&transport=websocket", http.Header{"Origin": {"https://evil.example"}}); err == nil || status != http.StatusForbidden {
		t.Errorf("WebSocket from a foreign origin: %d %v", status, err)
	}
	if _, _, err := s.dialWS(t, "EIO=4&transport=websocket", hdr); err != nil {
		t.Errorf("WebSocket from an allowed origin: %v", err)
	}
}

// A session is bound to the client address that opened it: a request for
// its sid from another address is refused as an unknown sid, unless
// InsecureAnyClientAddress is set.
func TestClientAddressBinding(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	t.Run("bound", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, &primus.Options{TrustedProxies: proxies})
		c := s.handshake(t, "", from("192.0.2.1"))
		s.spark(t)
		thief := *c
		thief.header = from("198.51.100.7")
		if resp, body := thief.get(t); resp.StatusCode != 400 || body != `{"code":1,"message":"Session ID unknown"}` {
			t.Errorf("poll from elsewhere: %d %s", resp.StatusCode, body)
		}
		if resp, _ := thief.post(t, `4"stolen"`); resp.StatusCode != 400 {
			t.Errorf("POST from elsewhere: %d", resp.StatusCode)
		}
		if _, status, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, from("198.51.100.7")); err == nil || status != 400 {
			t.Errorf("upgrade from elsewhere: %d %v", status, err)
		}
		c.send(t, `4"mine"`)
		if got := c.collect(t, 1); got[0] != `4"mine"` {
			t.Errorf("echo %q", got)
		}
	})
	t.Run("InsecureAnyClientAddress", func(t *testing.T) {
		t.Parallel()
		s := start(t, &engineio.Options{InsecureAnyClientAddress: true}, &primus.Options{TrustedProxies: proxies})
		c := s.handshake(t, "", from("192.0.2.1"))
		s.spark(t)
		c.header = from("198.51.100.7")
		c.send(t, `4"moved"`)
		if got := c.collect(t, 1); got[0] != `4"moved"` {
			t.Errorf("echo %q", got)
		}
	})
}

// Authorization and middleware run for every request: the handshake, each
// poll and send, the upgrade; a refused one gets the core's 401.
func TestAuthorizationOnEveryRequest(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	const want = `{"error":"invalid token"}`
	if resp, body := s.do(t, http.MethodGet, s.eioURL("EIO=4&transport=polling&token=bad"), "", nil); resp.StatusCode != 401 || body != want {
		t.Errorf("handshake: %d %s", resp.StatusCode, body)
	}
	if _, status, err := s.dialWS(t, "EIO=4&transport=websocket&token=bad", nil); err == nil || status != 401 {
		t.Errorf("WebSocket handshake: %d %v", status, err)
	}
	c := s.handshake(t, "", nil)
	s.spark(t)
	bad := *c
	bad.query = "token=bad"
	if resp, body := bad.get(t); resp.StatusCode != 401 || body != want {
		t.Errorf("poll: %d %s", resp.StatusCode, body)
	}
	if resp, body := bad.post(t, `4"x"`); resp.StatusCode != 401 || body != want {
		t.Errorf("POST: %d %s", resp.StatusCode, body)
	}
	if _, status, err := s.dialWS(t, "EIO=4&transport=websocket&token=bad&sid="+c.sid, nil); err == nil || status != 401 {
		t.Errorf("upgrade: %d %v", status, err)
	}
	select {
	case sp := <-s.sparks:
		t.Errorf("a refused request made spark %s", sp.ID())
	default:
	}
}

// The spark keeps the handshake's query, address and headers, the latter
// trimmed to HeaderBytes.
func TestSparkFacts(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{HeaderBytes: 64})
	big := strings.Repeat("h", 200)
	s.handshake(t, "foo=bar", http.Header{"X-Small": {"kept"}, "X-Big": {big}})
	sp := s.spark(t)
	if sp.Query().Get("foo") != "bar" || !sp.Address().IP.IsLoopback() || sp.Address().Port == 0 {
		t.Errorf("query %v, address %v", sp.Query(), sp.Address())
	}
	if sp.Header().Get("X-Small") != "kept" || sp.Header().Get("X-Big") != "" {
		t.Errorf("headers kept: %v", sp.Header())
	}
}

// A poll answer that cannot be written (the client stopped reading) fails
// within WriteTimeout and closes the session; the bytes it held are lost,
// so the session must not go on as if they had arrived.
func TestPollAnswerWriteTimeout(t *testing.T) {
	t.Parallel()
	s := start(t, &engineio.Options{WriteTimeout: 300 * time.Millisecond, SendBufferBytes: 64 << 20}, &primus.Options{SendQueueBytes: 64 << 20})
	c := s.handshake(t, "", nil)
	sp := s.spark(t)
	big := strings.Repeat("z", 8<<20) // more than the socket buffers hold
	if err := sp.Write(big); err != nil {
		t.Fatal(err)
	}
	conn := rawRequest(t, s, "GET", strings.TrimPrefix(c.url(), s.ts.URL), "", "")
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil { // the status line, then nothing more is read
		t.Fatal(err)
	}
	if end := s.end(t); end.reason != nil {
		t.Errorf("spark ended with %v", end.reason)
	}
}

// The core's refusals reach the client as this transport allows: a text
// message that is not UTF-8 (over WebSocket) ends the spark with
// ErrInvalidUTF8 and a 1007 close; a binary message to a server with a text
// parser ends it with ErrUnsupportedData, with a 1003 close on a WebSocket
// and the close packet while polling.
func TestCoreRefusals(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	w, _ := s.openWS(t, "")
	s.spark(t)
	w.write(t, "4\"\xff\"")
	if err := w.closed(t); ws.CloseStatus(err) != ws.StatusInvalidFramePayloadData {
		t.Errorf("close %v, want 1007", err)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrInvalidUTF8) {
		t.Errorf("spark ended with %v, want ErrInvalidUTF8", end.reason)
	}

	w, _ = s.openWS(t, "")
	s.spark(t)
	w.writeType(t, ws.MessageBinary, []byte{1, 2, 3})
	if err := w.closed(t); ws.CloseStatus(err) != ws.StatusUnsupportedData {
		t.Errorf("close %v, want 1003", err)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrUnsupportedData) {
		t.Errorf("spark ended with %v, want ErrUnsupportedData", end.reason)
	}

	c := s.handshake(t, "", nil)
	s.spark(t)
	c.send(t, "b"+base64.StdEncoding.EncodeToString([]byte{1, 2, 3}))
	if got := c.poll(t); !slices.Equal(got, []string{"1"}) {
		t.Errorf("poll: %q, want the close packet", got)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrUnsupportedData) {
		t.Errorf("spark ended with %v, want ErrUnsupportedData", end.reason)
	}
}

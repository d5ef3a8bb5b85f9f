package engineio_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/engineio"
)

// The polling handshake answers with the open packet, as engine.io does:
// the sid (which is the spark's id), the upgrade to WebSocket, the ping
// interval and timeout (engine.io's defaults unless set) and the server's
// message limit as maxPayload. <pathname>/spec names the transformer as
// Primus does.
func TestHandshakePolling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		opts        *engineio.Options
		interval    int64
		timeout     int64
		upgrades    []string
		maxPayload  int64
		maxMessages int64
	}{
		{"defaults", nil, 25000, 20000, []string{"websocket"}, 1 << 20, 0},
		{"options", &engineio.Options{PingInterval: 1500 * time.Millisecond, PingTimeout: 700 * time.Millisecond, DisableWebSocket: true}, 1500, 700, []string{}, 4096, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tc.opts, &primus.Options{MaxMessageSize: tc.maxMessages})
			resp, body := s.do(t, http.MethodGet, s.eioURL("EIO=4&transport=polling&t=Nx1&b64=1&token=abc"), "", nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=UTF-8" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("handshake: %d %q %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), body)
			}
			o := parseOpen(t, body)
			if o.PingInterval != tc.interval || o.PingTimeout != tc.timeout || o.MaxPayload != tc.maxPayload || !slices.Equal(o.Upgrades, tc.upgrades) {
				t.Errorf("open packet %s", body)
			}
			if want := fmt.Sprintf(`0{"sid":%q,"upgrades":`, o.SID); !strings.HasPrefix(body, want) {
				t.Errorf("open packet %s: keys not in engine.io's order", body)
			}
			sp := s.spark(t)
			if sp.ID() != o.SID {
				t.Errorf("spark id %q, sid %q: the stock client's id() answers with the sid", sp.ID(), o.SID)
			}
			if sp.Query().Get("token") != "abc" || sp.Query().Get("transport") != "polling" {
				t.Errorf("spark query %v", sp.Query())
			}
		})
	}
	s := start(t, nil, nil)
	_, body := s.do(t, http.MethodGet, s.url+"/spec", "", nil)
	var spec struct{ Transformer string }
	if json.Unmarshal([]byte(body), &spec) != nil || spec.Transformer != "engine.io" {
		t.Errorf("spec %s", body)
	}
}

// A WebSocket handshake gets the open packet as its first frame, with no
// upgrades.
func TestHandshakeWebSocket(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	w, o := s.openWS(t, "name=J%C3%B6rg")
	if len(o.Upgrades) != 0 || o.PingInterval != 25000 {
		t.Errorf("open packet %+v", o)
	}
	sp := s.spark(t)
	if sp.ID() != o.SID || sp.Query().Get("name") != "Jörg" {
		t.Errorf("spark %q %v, sid %q", sp.ID(), sp.Query(), o.SID)
	}
	w.write(t, `4"hi"`)
	if p := w.next(t); p != `4"hi"` {
		t.Errorf("echo %q", p)
	}
}

// Requests engine.io refuses get its answers: 400 (403 for Forbidden) with
// {"code":N,"message":"…"} for plain HTTP, and 400 with the message as text
// for a WebSocket upgrade.
func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{OriginPatterns: []string{"friends.example"}})
	live := s.handshake(t, "", nil)
	w, wsOpen := s.openWS(t, "")
	_ = w
	upgraded := func(extra string) string {
		return "EIO=4&transport=polling&sid=" + wsOpen.SID + extra
	}
	const (
		unknownTransport = `{"code":0,"message":"Transport unknown"}`
		unknownSID       = `{"code":1,"message":"Session ID unknown"}`
		badMethod        = `{"code":2,"message":"Bad handshake method"}`
		badRequest       = `{"code":3,"message":"Bad request"}`
		forbidden        = `{"code":4,"message":"Forbidden"}`
		unsupported      = `{"code":5,"message":"Unsupported protocol version"}`
	)
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	for _, tc := range []struct {
		name, method, path, query string
		header                    http.Header
		status                    int
		body                      string
		contentType               string
	}{
		{"the pathname alone", "GET", "", "", nil, 400, unknownTransport, ""},
		{"no transport", "GET", "/", "EIO=4", nil, 400, unknownTransport, ""},
		{"unknown transport", "GET", "/", "EIO=4&transport=flashsocket", nil, 400, unknownTransport, ""},
		{"webtransport", "GET", "/", "EIO=4&transport=webtransport", nil, 400, unknownTransport, ""},
		{"unknown sid", "GET", "/", "EIO=4&transport=polling&sid=nope", nil, 400, unknownSID, ""},
		{"unknown sid POST", "POST", "/", "EIO=4&transport=polling&sid=nope", nil, 400, unknownSID, ""},
		{"POST handshake", "POST", "/", "EIO=4&transport=polling", nil, 400, badMethod, ""},
		{"PUT handshake", "PUT", "/", "EIO=4&transport=polling", nil, 400, badMethod, ""},
		{"websocket without upgrade", "GET", "/", "EIO=4&transport=websocket", nil, 400, badRequest, ""},
		{"protocol 3", "GET", "/", "EIO=3&transport=polling", nil, 400, unsupported, ""},
		{"no protocol", "GET", "/", "transport=polling", nil, 400, unsupported, ""},
		{"JSONP", "GET", "/", "EIO=4&transport=polling&j=0", nil, 400, badRequest, ""},
		{"protocol mismatch on a session", "GET", "/", "EIO=3&transport=polling&sid=" + live.sid, nil, 400, badRequest, ""},
		{"polling a WebSocket session", "GET", "/", upgraded(""), nil, 400, badRequest, ""},
		{"posting to a WebSocket session", "POST", "/", upgraded(""), nil, 400, badRequest, ""},
		{"websocket GET on a session", "GET", "/", "EIO=4&transport=websocket&sid=" + live.sid, nil, 400, badRequest, ""},
		{"foreign origin", "GET", "/", "EIO=4&transport=polling", http.Header{"Origin": {"https://evil.example"}}, 403, forbidden, ""},
		{"upgrade, unknown transport", "GET", "/", "EIO=4&transport=nope", upgrade, 400, "Transport unknown", "text/html"},
		{"upgrade, unknown sid", "GET", "/", "EIO=4&transport=websocket&sid=nope", upgrade, 400, "Session ID unknown", "text/html"},
		{"upgrade, protocol 3", "GET", "/", "EIO=3&transport=websocket", upgrade, 400, "Unsupported protocol version", "text/html"},
		{"upgrade to polling", "GET", "/", "EIO=4&transport=polling", upgrade, 400, "Bad request", "text/html"},
		{"upgrade, foreign origin", "GET", "/", "EIO=4&transport=websocket", http.Header{"Origin": {"https://evil.example"}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, 403, "Forbidden", "text/html"},
	} {
		resp, body := s.do(t, tc.method, s.url+tc.path+"?"+tc.query, "", tc.header)
		ct := tc.contentType
		if ct == "" {
			ct = "application/json"
		}
		if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != ct {
			t.Errorf("%s: %d %q %s, want %d %q %s", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, ct, tc.body)
		}
	}
	// None of them touched the live sessions.
	live.send(t, `4"still alive"`)
	if got := live.collect(t, 1); got[0] != `4"still alive"` {
		t.Errorf("echo %q", got)
	}
}

// Messages travel both ways over polling: several packets per POST and per
// poll, joined with \x1e, in order, UTF-8 intact.
func TestPollingEcho(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c := s.handshake(t, "", nil)
	sp := s.spark(t)
	msgs := []string{`4"hello"`, `4{"k":"v ü \u2028 \"quoted\"","n":[1,2]}`, `4""`, `4"日本語 😀"`}
	c.send(t, msgs...)
	if got := c.collect(t, len(msgs)); !slices.Equal(got, msgs) {
		t.Errorf("echo %q, want %q", got, msgs)
	}
	// Packets written while no poll waits come with the next poll,
	// together.
	for i := range 5 {
		if err := sp.Write(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.poll(t); !slices.Equal(got, []string{"40", "41", "42", "43", "44"}) {
		t.Errorf("one poll carried %q", got)
	}
	// Noops, and the upgrade packet sent over polling, are ignored.
	c.send(t, "6", "5", `4"after noops"`)
	if got := c.collect(t, 1); got[0] != `4"after noops"` {
		t.Errorf("echo %q", got)
	}
	c.send(t, `4{"cmd":"whoami"}`)
	var who struct{ ID string }
	if got := c.collect(t, 1); json.Unmarshal([]byte(got[0][1:]), &who) != nil || who.ID != c.sid {
		t.Errorf("whoami %q, sid %s", got, c.sid)
	}
}

// The CBOR parser works over every transport: binary messages are binary
// WebSocket frames, or "b" + base64 in polling payloads and on WebSockets
// whose client asked for b64.
func TestBinary(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{Parser: parser.CBOR})
	msg, err := parser.CBOR.Encode(map[string]any{"bytes": []byte{0, 1, 0x1e, 0xff}, "s": "é"})
	if err != nil {
		t.Fatal(err)
	}
	b64 := "b" + base64.StdEncoding.EncodeToString(msg)

	t.Run("polling", func(t *testing.T) {
		c := s.handshake(t, "", nil)
		c.send(t, b64, b64)
		if got := c.collect(t, 2); !slices.Equal(got, []string{b64, b64}) {
			t.Errorf("echo %q, want %q twice", got, b64)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		w, _ := s.openWS(t, "")
		w.writeType(t, ws.MessageBinary, msg)
		typ, b, err := w.readFrame(t)
		if err != nil || typ != ws.MessageBinary || string(b) != string(msg) {
			t.Errorf("echo: %v %x %v", typ, b, err)
		}
		// A client may send base64 even so.
		w.write(t, b64)
		typ, b, err = w.readFrame(t)
		if err != nil || typ != ws.MessageBinary || string(b) != string(msg) {
			t.Errorf("echo of base64: %v %x %v", typ, b, err)
		}
	})
	t.Run("websocket with b64", func(t *testing.T) {
		w, _ := s.openWS(t, "b64=1")
		w.writeType(t, ws.MessageBinary, msg)
		if p := w.next(t); p != b64 {
			t.Errorf("echo %q, want %q", p, b64)
		}
	})
}

// The upgrade, as engine.io-client makes it, with messages in flight both
// ways throughout: the server writes a numbered stream while the client
// polls, probes, pauses and switches; the client posts a numbered stream
// over polling, then continues over the WebSocket. Each side gets every
// message once, in order.
func TestUpgradeWithMessagesInFlight(t *testing.T) {
	t.Parallel()
	for _, b64 := range []bool{false, true} {
		t.Run(fmt.Sprintf("b64=%v", b64), func(t *testing.T) {
			t.Parallel()
			// A small send buffer keeps the server's stream in flight:
			// its writes wait for the polls, and then for the WebSocket.
			s := start(t, &engineio.Options{SendBufferBytes: 64}, nil)
			received := make(chan string, 1000)
			s.srv.OnConnection(func(sp *primus.Spark) {
				sp.OnData(func(m *primus.Message) {
					if strings.HasPrefix(string(m.Bytes()), `"c`) {
						received <- string(m.Bytes())
					}
				})
			})
			c := s.handshake(t, "", nil)
			sp := s.spark(t)
			const n = 400
			writerDone := make(chan error, 1)
			go func() {
				for i := range n {
					if err := sp.Write(fmt.Sprintf("s%03d", i)); err != nil {
						writerDone <- err
						return
					}
				}
				writerDone <- nil
			}()
			var got, echoes []string
			take1 := func(p string) {
				switch {
				case strings.HasPrefix(p, `4"s`):
					got = append(got, p)
				case strings.HasPrefix(p, `4"c`):
					echoes = append(echoes, p)
				default:
					t.Fatalf("unexpected packet %q", short(p))
				}
			}
			take := func(packets []string) (noop bool) {
				for _, p := range packets {
					switch p {
					case "6":
						noop = true
					case "2":
					default:
						take1(p)
					}
				}
				return noop
			}
			sent := 0
			post := func(k int) {
				var pkts []string
				for range k {
					pkts = append(pkts, fmt.Sprintf(`4"c%03d"`, sent))
					sent++
				}
				c.send(t, pkts...)
			}
			// A few rounds of polling with traffic both ways.
			for range 3 {
				post(10)
				take(c.poll(t))
			}
			query := "EIO=4&transport=websocket&sid=" + c.sid
			if b64 {
				query += "&b64=1"
			}
			w, _, err := s.dialWS(t, query, nil)
			if err != nil {
				t.Fatal(err)
			}
			// As engine.io-client does: a poll is in flight while it
			// probes; on "3probe" it pauses, which waits for that poll to
			// return (the server makes it return at once, with what is
			// queued or a noop), and then sends "5".
			pending := c.pollAsync()
			w.write(t, "2probe")
			post(10) // the client may still send while probing
			if p := w.read(t); p != "3probe" {
				t.Fatalf("probe answer %q", p)
			}
			take(recv(t, pending, "the pending poll"))
			overPolling := len(got)
			w.write(t, "5")
			for k := 0; k < 10; k++ {
				w.write(t, fmt.Sprintf(`4"c%03d"`, sent))
				sent++
			}
			// The rest comes over the WebSocket; once the session has
			// switched (an echo of a message sent over the WebSocket came
			// back), polling is refused.
			for len(echoes) < sent-9 {
				take1(w.next(t))
			}
			if resp, body := c.get(t); resp.StatusCode != 400 || body != `{"code":3,"message":"Bad request"}` {
				t.Errorf("poll after the upgrade: %d %s", resp.StatusCode, body)
			}
			for len(got) < n || len(echoes) < sent {
				take1(w.next(t))
			}
			if err := recv(t, writerDone, "the writer"); err != nil {
				t.Fatal(err)
			}
			if overPolling == 0 || overPolling == n {
				t.Errorf("%d of %d messages came over polling: the stream was not in flight during the upgrade", overPolling, n)
			}
			for i, p := range got {
				if want := fmt.Sprintf(`4"s%03d"`, i); p != want {
					t.Fatalf("server message %d is %q, want %q", i, p, want)
				}
			}
			// Everything the client sent was echoed too, once and in
			// order, over polling and then the WebSocket; and the spark
			// saw it in order.
			for i, p := range echoes {
				if want := fmt.Sprintf(`4"c%03d"`, i); p != want {
					t.Fatalf("echo %d is %q, want %q", i, p, want)
				}
			}
			for i := range sent {
				if m := recv(t, received, "a client message"); m != fmt.Sprintf(`"c%03d"`, i) {
					t.Fatalf("client message %d reached the spark as %q", i, m)
				}
			}
			select {
			case m := <-received:
				t.Errorf("a message twice: %q", m)
			default:
			}
		})
	}
}

// A second upgrade of a session, or one for a session already on
// WebSocket, is accepted and closed at once (as engine.io does); the session
// is not disturbed.
func TestSecondUpgradeClosed(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c := s.handshake(t, "", nil)
	w1, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	w1.write(t, "2probe")
	if p := w1.read(t); p != "3probe" {
		t.Fatalf("probe answer %q", p)
	}
	w2, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.closed(t); err == nil {
		t.Error("the second probe stayed open")
	}
	if got := c.poll(t); !slices.Equal(got, []string{"6"}) {
		t.Errorf("poll while probing: %q, want a noop", got)
	}
	w1.write(t, "5")
	w1.write(t, `4"over ws"`)
	if p := w1.next(t); p != `4"over ws"` {
		t.Errorf("echo %q", p)
	}
	w3, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w3.closed(t); err == nil {
		t.Error("an upgrade of an upgraded session stayed open")
	}
	w1.write(t, `4"still"`)
	if p := w1.next(t); p != `4"still"` {
		t.Errorf("echo %q", p)
	}
}

// A probe that does not complete the upgrade within UpgradeTimeout is
// closed; the session goes on polling. So is a probe that sends anything
// but the probe and the upgrade.
func TestUpgradeTimeoutAndBadProbe(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	s := start(t, &engineio.Options{UpgradeTimeout: timeout}, nil)
	c := s.handshake(t, "", nil)
	begin := time.Now()
	w, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.write(t, "2probe")
	if p := w.read(t); p != "3probe" {
		t.Fatalf("probe answer %q", p)
	}
	if err := w.closed(t); err == nil {
		t.Fatal("no close")
	}
	if d := time.Since(begin); d < timeout {
		t.Errorf("probe closed after %v, before the upgrade timeout", d)
	}
	c.send(t, `4"polling goes on"`)
	if got := c.collect(t, 1); got[0] != `4"polling goes on"` {
		t.Errorf("echo %q", got)
	}

	w, _, err = s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.write(t, `4"data before the upgrade"`)
	if err := w.closed(t); err == nil {
		t.Fatal("no close")
	}
	c.send(t, `4"polling goes on again"`)
	if got := c.collect(t, 1); got[0] != `4"polling goes on again"` {
		t.Errorf("echo %q", got)
	}
}

// Only one GET may be under way: a second one is refused with 400 and
// closes the session, whose pending poll gets the close packet; the same
// for POSTs.
func TestOverlappingRequests(t *testing.T) {
	t.Parallel()
	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, nil)
		c := s.handshake(t, "", nil)
		s.spark(t)
		first := c.pollAsync()
		// The first poll is under way when the spark's write is queued
		// behind it; wait for the server to hold it.
		waitPolling(t, s, c)
		resp, _ := c.get(t)
		if resp.StatusCode != 400 {
			t.Errorf("second poll: %d, want 400", resp.StatusCode)
		}
		if got := recv(t, first, "the first poll"); !slices.Equal(got, []string{"1"}) {
			t.Errorf("first poll got %q, want the close packet", got)
		}
		s.end(t)
		if resp, body := c.get(t); resp.StatusCode != 400 || !strings.Contains(body, "Session ID unknown") {
			t.Errorf("poll after: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("POST", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, nil)
		c := s.handshake(t, "", nil)
		s.spark(t)
		// A POST whose body never ends holds the session's one POST.
		conn := rawRequest(t, s, "POST", strings.TrimPrefix(c.url(), s.ts.URL), "Content-Length: 100\r\nContent-Type: text/plain\r\n", `4"partial`)
		defer conn.Close()
		waitPosting(t, s, c)
		resp, _ := c.post(t, `4"second"`)
		if resp.StatusCode != 400 {
			t.Errorf("second POST: %d, want 400", resp.StatusCode)
		}
		s.end(t)
		if resp, body := c.get(t); resp.StatusCode != 400 || !strings.Contains(body, "Session ID unknown") {
			t.Errorf("poll after: %d %s", resp.StatusCode, body)
		}
	})
}

// The client closes the session with the close packet, over polling or
// WebSocket; the spark ends normally after the messages sent before it.
func TestClientClose(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	got := make(chan string, 10)
	s.srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) { got <- string(m.Bytes()) })
	})

	c := s.handshake(t, "", nil)
	s.spark(t)
	c.send(t, `4"last words"`, "1")
	if m := recv(t, got, "the last message"); m != `"last words"` {
		t.Errorf("got %q", m)
	}
	if end := s.end(t); end.reason != nil {
		t.Errorf("spark ended with %v", end.reason)
	}
	if resp, _ := c.get(t); resp.StatusCode != 400 {
		t.Errorf("poll after the close: %d", resp.StatusCode)
	}

	w, _ := s.openWS(t, "")
	s.spark(t)
	w.write(t, `4"ws last words"`)
	w.write(t, "1")
	if m := recv(t, got, "the last message"); m != `"ws last words"` {
		t.Errorf("got %q", m)
	}
	if end := s.end(t); end.reason != nil {
		t.Errorf("spark ended with %v", end.reason)
	}
}

// Spark.End: over polling the client gets "primus::server::close" and the
// close packet, with the pending poll or the next one; over WebSocket the
// message and a close frame.
func TestServerEnd(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	for _, pending := range []bool{true, false} {
		c := s.handshake(t, "", nil)
		sp := s.spark(t)
		if pending {
			polled := c.pollAsync()
			waitPolling(t, s, c)
			_ = sp.End()
			// The pending poll is answered as soon as the message is
			// queued: the close packet comes with it, or with the next
			// poll.
			got := recv(t, polled, "the poll")
			if slices.Equal(got, []string{`4"primus::server::close"`}) {
				got = append(got, c.poll(t)...)
			}
			if !slices.Equal(got, []string{`4"primus::server::close"`, "1"}) {
				t.Errorf("pending poll, then the next: %q", got)
			}
		} else {
			_ = sp.End()
			if got := c.poll(t); !slices.Equal(got, []string{`4"primus::server::close"`, "1"}) {
				t.Errorf("next poll: %q", got)
			}
		}
		if end := s.end(t); end.reason != nil {
			t.Errorf("spark ended with %v", end.reason)
		}
	}

	w, _ := s.openWS(t, "")
	sp := s.spark(t)
	_ = sp.End()
	if p := w.next(t); p != `4"primus::server::close"` {
		t.Errorf("got %q", p)
	}
	if err := w.closed(t); ws.CloseStatus(err) != ws.StatusNormalClosure {
		t.Errorf("close %v, want 1000", err)
	}
	s.end(t)
}

// Spark.Close drops the session: a pending poll, or the next poll soon
// after, gets the close packet (the client reconnects); a WebSocket is
// cut.
func TestServerDrop(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c := s.handshake(t, "", nil)
	sp := s.spark(t)
	polled := c.pollAsync()
	waitPolling(t, s, c)
	_ = sp.Close()
	if got := recv(t, polled, "the poll"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("pending poll: %q", got)
	}
	s.end(t)

	// Between two polls: the next poll gets the close packet, and then
	// the sid is unknown.
	c = s.handshake(t, "", nil)
	sp = s.spark(t)
	_ = sp.Close()
	s.end(t)
	if got := c.poll(t); !slices.Equal(got, []string{"1"}) {
		t.Errorf("next poll: %q", got)
	}
	if resp, body := c.get(t); resp.StatusCode != 400 || !strings.Contains(body, "Session ID unknown") {
		t.Errorf("poll after: %d %s", resp.StatusCode, body)
	}
	if n := engineio.Sessions(s.tr); n != 0 {
		t.Errorf("%d sessions left", n)
	}

	// Nobody polls: the closed session is forgotten after a grace time.
	s.handshake(t, "", nil)
	sp = s.spark(t)
	_ = sp.Close()
	s.end(t)
	deadline := time.Now().Add(engineio.ClosedGrace + waitTimeout)
	for engineio.Sessions(s.tr) != 0 && time.Now().Before(deadline) {
		<-time.After(50 * time.Millisecond)
	}
	if n := engineio.Sessions(s.tr); n != 0 {
		t.Errorf("%d sessions left after the grace time", n)
	}

	w, _ := s.openWS(t, "")
	sp = s.spark(t)
	_ = sp.Close()
	if err := w.closed(t); err == nil {
		t.Error("no close")
	}
	s.end(t)
}

// A ping from the client is refused (v4 heartbeats go from the server),
// as is a packet of an unknown type, over either transport.
func TestBadPacketsCloseTheSession(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	for _, bad := range []string{"2", "9", "", "bnot*base64"} {
		c := s.handshake(t, "", nil)
		s.spark(t)
		resp, _ := c.post(t, `4"fine"`+"\x1e"+bad)
		if resp.StatusCode != 400 {
			t.Errorf("POST with %q: %d, want 400", bad, resp.StatusCode)
		}
		s.end(t)
		if resp, _ := c.get(t); resp.StatusCode != 400 {
			t.Errorf("poll after %q: %d, want 400", bad, resp.StatusCode)
		}
		if bad == "" {
			continue // an empty WebSocket frame is not a packet either, tested below
		}
		w, _ := s.openWS(t, "")
		s.spark(t)
		w.write(t, bad)
		if err := w.closed(t); err == nil {
			t.Errorf("%q over WebSocket: no close", bad)
		}
		s.end(t)
	}
	w, _ := s.openWS(t, "")
	s.spark(t)
	w.write(t, "")
	if err := w.closed(t); err == nil {
		t.Error("an empty frame: no close")
	}
	s.end(t)
}

// Engine.IO is mounted at the server's pathname whatever it is, as Primus
// mounts it: requests arrive as "<pathname>/?EIO=4&…"; the path below the
// pathname does not matter, only the query does.
func TestAnyPathname(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{Pathname: "/rt/live"})
	for _, p := range []string{"/rt/live/", "/rt/live", "/rt/live/engine.io/"} {
		resp, body := s.do(t, http.MethodGet, s.ts.URL+p+"?EIO=4&transport=polling", "", nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
			continue
		}
		parseOpen(t, body)
		s.spark(t)
	}
	if resp, _ := s.do(t, http.MethodGet, s.ts.URL+"/primus/?EIO=4&transport=polling", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("outside the pathname: %d, want 404", resp.StatusCode)
	}
}

// A session closed while its client is paused for the upgrade (the probe
// answered, no poll under way) lets the client's "5" arrive on the probe
// and then closes it: the client, now on the WebSocket, sees its
// connection close at once, instead of waiting on a paused poll.
func TestCloseDuringUpgrade(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c := s.handshake(t, "", nil)
	sp := s.spark(t)
	w, _, err := s.dialWS(t, "EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.write(t, "2probe")
	if p := w.read(t); p != "3probe" {
		t.Fatalf("probe answer %q", p)
	}
	if got := c.poll(t); !slices.Equal(got, []string{"6"}) { // the poll that pauses
		t.Fatalf("poll while probing: %q", got)
	}
	_ = sp.Close()
	s.end(t)
	w.write(t, "5")
	began := time.Now()
	// A close frame, not a cut: the probe was still open when "5" came.
	if err := w.closed(t); ws.CloseStatus(err) != ws.StatusNormalClosure {
		t.Fatalf("close %v, want 1000", err)
	}
	if d := time.Since(began); d > time.Second/2 {
		t.Errorf("the probe closed %v after the upgrade packet", d)
	}
}

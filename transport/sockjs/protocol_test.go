package sockjs_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/sockjs"
)

func TestWelcomeInfoAndSpec(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	for _, p := range []string{"", "/"} {
		resp, body := s.do(t, http.MethodGet, s.url+p, "", nil)
		if resp.StatusCode != 200 || body != "Welcome to SockJS!\n" {
			t.Errorf("GET /primus%s: %d %q", p, resp.StatusCode, body)
		}
	}

	resp, body := s.do(t, http.MethodGet, s.url+"/info", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /primus/info: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var info struct {
		WebSocket    *bool    `json:"websocket"`
		CookieNeeded *bool    `json:"cookie_needed"`
		Origins      []string `json:"origins"`
		Entropy      *int64   `json:"entropy"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("info %q: %v", body, err)
	}
	if info.WebSocket == nil || !*info.WebSocket || info.CookieNeeded == nil || *info.CookieNeeded ||
		len(info.Origins) != 1 || info.Origins[0] != "*:*" || info.Entropy == nil {
		t.Errorf("info %s", body)
	}

	resp, body = s.do(t, http.MethodGet, s.url+"/spec", "", nil)
	var spec struct{ Transformer, Parser string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &spec) != nil || spec.Transformer != "sockjs" || spec.Parser != "json" {
		t.Errorf("spec: %d %s", resp.StatusCode, body)
	}

	resp, _ = s.do(t, http.MethodGet, s.url+"/nope/nope", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /primus/nope/nope: %d, want 404", resp.StatusCode)
	}
}

func TestDisableWebSocket(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{DisableWebSocket: true}, nil)
	_, body := s.do(t, http.MethodGet, s.url+"/info", "", nil)
	if !strings.Contains(body, `"websocket":false`) {
		t.Errorf("info %s, want websocket false", body)
	}
	hdr := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	if resp, _ := s.do(t, http.MethodGet, s.url+"/000/abcdefgh/websocket", "", hdr); resp.StatusCode != http.StatusNotFound {
		t.Errorf("websocket upgrade with the transport off: %d, want 404", resp.StatusCode)
	}
	// The other transports still work.
	c := s.newSession("")
	c.open(t)
	c.send(t, `"polled"`)
	if got := c.collect(t, 1); got[0] != `"polled"` {
		t.Errorf("echo %q", got)
	}
}

// receiver reads SockJS frames of one transport.
type receiver interface {
	next(t *testing.T) string
}

type xhrReceiver struct{ c *session }

func (r xhrReceiver) next(t *testing.T) string {
	t.Helper()
	f := r.c.poll(t)
	if len(f) != 1 {
		t.Fatalf("a poll carried %d frames: %q", len(f), f)
	}
	return f[0]
}

type jsonpReceiver struct{ c *session }

func (r jsonpReceiver) next(t *testing.T) string {
	t.Helper()
	u := r.c.url("jsonp")
	if strings.Contains(u, "?") {
		u += "&c=cb.x_1"
	} else {
		u += "?c=cb.x_1"
	}
	resp, body := r.c.s.do(t, http.MethodGet, u, "", nil)
	q, ok := strings.CutPrefix(body, "cb.x_1(")
	q, ok2 := strings.CutSuffix(q, ");\r\n")
	var f string
	if resp.StatusCode != 200 || !ok || !ok2 || json.Unmarshal([]byte(q), &f) != nil {
		t.Fatalf("jsonp: %d %q", resp.StatusCode, short(body))
	}
	return f
}

type xhrStreamReceiver struct{ st *stream }

func (r xhrStreamReceiver) next(t *testing.T) string {
	t.Helper()
	return strings.TrimSuffix(r.st.line(t), "\n")
}

type eventSourceReceiver struct{ st *stream }

func (r eventSourceReceiver) next(t *testing.T) string {
	t.Helper()
	for {
		l := r.st.line(t)
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			d = strings.TrimSuffix(d, "\r\n")
			d, err := url.PathUnescape(d) // %, \r, \n and NUL are escaped
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
}

type htmlFileReceiver struct{ st *stream }

func (r htmlFileReceiver) next(t *testing.T) string {
	t.Helper()
	for {
		l := r.st.line(t)
		if q, ok := strings.CutPrefix(l, "p("); ok {
			var f string
			if err := json.Unmarshal([]byte(strings.TrimSuffix(q, ");\n")), &f); err != nil {
				t.Fatalf("htmlfile line %q: %v", short(l), err)
			}
			return f
		}
	}
}

type wsReceiver struct{ w *wsSession }

func (r wsReceiver) next(t *testing.T) string {
	t.Helper()
	return r.w.read(t)
}

// transports opens a session of each kind and returns its receiver (after
// "o") and its sender.
var transports = []struct {
	name string
	open func(t *testing.T, s *server, query string) (receiver, func(t *testing.T, msgs ...string))
}{
	{"xhr-polling", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		c := s.newSession(q)
		c.open(t)
		return xhrReceiver{c}, c.send
	}},
	{"xhr-streaming", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		c := s.newSession(q)
		st := c.openStream(t, http.MethodPost, "xhr_streaming", "")
		if l := st.line(t); l != strings.Repeat("h", 2048)+"\n" {
			t.Fatalf("xhr_streaming prelude %q", short(l))
		}
		r := xhrStreamReceiver{st}
		expectOpen(t, r)
		return r, c.send
	}},
	{"eventsource", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		c := s.newSession(q)
		r := eventSourceReceiver{c.openStream(t, http.MethodGet, "eventsource", "")}
		expectOpen(t, r)
		return r, c.send
	}},
	{"htmlfile", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		c := s.newSession(q)
		r := htmlFileReceiver{c.openStream(t, http.MethodGet, "htmlfile", "c=cb")}
		expectOpen(t, r)
		return r, c.send
	}},
	{"jsonp-polling", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		c := s.newSession(q)
		r := jsonpReceiver{c}
		expectOpen(t, r)
		send := func(t *testing.T, msgs ...string) {
			t.Helper()
			b, _ := json.Marshal(msgs)
			resp, body := c.s.do(t, http.MethodPost, c.url("jsonp_send"), "d="+url.QueryEscape(string(b)),
				http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("jsonp_send: %d %q", resp.StatusCode, body)
			}
		}
		return r, send
	}},
	{"websocket", func(t *testing.T, s *server, q string) (receiver, func(*testing.T, ...string)) {
		w := s.dialWS(t, q)
		return wsReceiver{w}, w.send
	}},
}

func expectOpen(t *testing.T, r receiver) {
	t.Helper()
	if f := r.next(t); f != "o" {
		t.Fatalf("first frame %q, want o", short(f))
	}
}

// nextData returns the messages of the next data frame, skipping
// heartbeats.
func nextData(t *testing.T, r receiver) []string {
	t.Helper()
	for {
		if f := r.next(t); f != "h" {
			return messages(t, f)
		}
	}
}

// Every transport carries the test server's echo, whoami and end: each
// SockJS message is one Primus message, the spark sees the query of the
// handshake, and End sends primus::server::close then c[1000,...].
func TestTransports(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			// A small send buffer and write timeout: if the transformer
			// did not see a transport's frames leave, its writes would
			// stall after 4 KiB and the spark would time out.
			s := start(t, &sockjs.Options{SendBufferBytes: 4 << 10}, &primus.Options{WriteTimeout: 2 * time.Second})
			r, send := tr.open(t, s, "token=abc&name=J%C3%B6rg&empty=")
			sp := s.spark(t)
			if got := sp.Query().Get("name"); got != "Jörg" {
				t.Errorf("spark query name=%q, want Jörg (query %v)", got, sp.Query())
			}

			// Two Primus messages in one SockJS frame, unicode, escapes.
			send(t, `"hello"`, `{"k":"v ü \u2028 <\"quoted\">"}`)
			var got []string
			for len(got) < 2 {
				got = append(got, nextData(t, r)...)
			}
			if want := []string{`"hello"`, `{"k":"v ü \u2028 <\"quoted\">"}`}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("echo %q, want %q", got, want)
			}

			send(t, `{"cmd":"whoami"}`)
			var who struct {
				ID    string            `json:"id"`
				Query map[string]string `json:"query"`
			}
			if m := nextData(t, r); len(m) != 1 || json.Unmarshal([]byte(m[0]), &who) != nil || who.ID != sp.ID() || who.Query["token"] != "abc" {
				t.Errorf("whoami answer %q, spark %s", m, sp.ID())
			}

			// 64 KiB from the server, in order, through the 4 KiB buffer.
			bulk := func(i int) string { return fmt.Sprintf(`"%03d %s"`, i, strings.Repeat("é", 500)) }
			go func() {
				for i := range 64 {
					if sp.Write(primus.Raw(bulk(i))) != nil {
						return
					}
				}
			}()
			for i := 0; i < 64; {
				for _, m := range nextData(t, r) {
					if m != bulk(i) {
						t.Fatalf("bulk message %d: %q", i, short(m))
					}
					i++
				}
			}

			send(t, `{"cmd":"close"}`)
			if m := nextData(t, r); len(m) != 1 || m[0] != `"primus::server::close"` {
				t.Errorf("after close: %q, want primus::server::close", m)
			}
			if f := r.next(t); f != `c[1000,"Normal closure"]` {
				t.Errorf("close frame %q", f)
			}
			if end := s.end(t); end.reason != nil {
				t.Errorf("spark ended with %v", end.reason)
			}
		})
	}
}

// The raw endpoint /primus/websocket carries one Primus message per
// WebSocket message, without SockJS framing.
func TestRawWebSocket(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	c, _, err := dial(t, "ws"+strings.TrimPrefix(s.url, "http")+"/websocket?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &wsSession{c: c}
	w.sendRaw(t, `"raw hello"`)
	if f := w.read(t); f != `"raw hello"` {
		t.Errorf("echo %q", f)
	}
	if sp := s.spark(t); sp.Query().Get("x") != "1" {
		t.Errorf("query %v", sp.Query())
	}
}

func TestAuthorizationOnEveryTransport(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	const want = `{"error":"invalid token"}`
	sess := "/000/authsess"
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	for _, tc := range []struct {
		method, path string
		header       http.Header
	}{
		{"GET", "", nil},
		{"GET", "/info", nil},
		{"OPTIONS", "/info", nil},
		{"POST", sess + "/xhr", nil},
		{"POST", sess + "/xhr_send", nil},
		{"POST", sess + "/xhr_streaming", nil},
		{"GET", sess + "/eventsource", nil},
		{"GET", sess + "/htmlfile?c=cb", nil},
		{"GET", sess + "/jsonp?c=cb", nil},
		{"GET", sess + "/websocket", upgrade},
		{"GET", "/websocket", upgrade},
	} {
		u := s.url + tc.path
		if strings.Contains(u, "?") {
			u += "&token=bad"
		} else {
			u += "?token=bad"
		}
		resp, body := s.do(t, tc.method, u, "", tc.header)
		if resp.StatusCode != 401 || body != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q %s, want 401 application/json %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, want)
		}
	}
	select {
	case sp := <-s.sparks:
		t.Errorf("a refused request made spark %s", sp.ID())
	default:
	}
}

// The spark has the handshake's query, headers and remote address, for a
// WebSocket session and for a polling one.
func TestSparkFacts(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)

	c := s.newSession("foo=bar")
	resp, _ := s.do(t, http.MethodPost, c.url("xhr"), "", http.Header{"X-Test": {"polling"}})
	if resp.StatusCode != 200 {
		t.Fatalf("poll: %d", resp.StatusCode)
	}
	sp := s.spark(t)
	if sp.Query().Get("foo") != "bar" || sp.Header().Get("X-Test") != "polling" || !sp.Address().IP.IsLoopback() || sp.Address().Port == 0 {
		t.Errorf("polling spark: query %v, X-Test %q, address %v", sp.Query(), sp.Header().Get("X-Test"), sp.Address())
	}

	hdr := http.Header{"X-Test": {"websocket"}}
	if _, _, err := dial(t, "ws"+strings.TrimPrefix(s.url, "http")+"/1/wsfacts/websocket?foo=baz", hdr); err != nil {
		t.Fatal(err)
	}
	sp = s.spark(t)
	if sp.Query().Get("foo") != "baz" || sp.Header().Get("X-Test") != "websocket" || !sp.Address().IP.IsLoopback() {
		t.Errorf("websocket spark: query %v, X-Test %q, address %v", sp.Query(), sp.Header().Get("X-Test"), sp.Address())
	}
	if id := sp.ID(); id == "" || id == "wsfacts" {
		t.Errorf("spark id %q: want the core's unguessable id, not the client's session id", id)
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{OriginPatterns: []string{"*.friends.example"}})
	wsURL := "ws" + strings.TrimPrefix(s.url, "http")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://evil.example", false},
		{"null", false},
		{s.ts.URL, true},
		{"https://app.friends.example", true},
	} {
		hdr := http.Header{"Origin": {tc.origin}}
		for _, p := range []string{"/info", "/000/origin01/xhr_send"} {
			method := http.MethodPost
			if p == "/info" {
				method = http.MethodGet
			}
			resp, body := s.do(t, method, s.url+p, "[]", hdr)
			if refused := resp.StatusCode == http.StatusForbidden; refused == tc.ok {
				t.Errorf("%s from %s: %d %s", p, tc.origin, resp.StatusCode, body)
			}
			if tc.ok && p == "/info" && resp.Header.Get("Access-Control-Allow-Origin") != tc.origin {
				t.Errorf("info from %s: Access-Control-Allow-Origin %q", tc.origin, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		_, status, err := dial(t, wsURL+"/1/originws/websocket", hdr)
		if tc.ok && err != nil || !tc.ok && status != http.StatusForbidden {
			t.Errorf("websocket from %s: status %d, error %v", tc.origin, status, err)
		}
	}
}

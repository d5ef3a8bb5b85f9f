package sockjs_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	ws "github.com/coder/websocket"
)

// A message that is not valid text — bytes that are not UTF-8, or a JSON
// escape of half a surrogate pair, which sockjs-go would quietly turn into
// U+FFFD — closes its session with 1007 on every transport, and reaches no
// one: here it asks the test server to broadcast it to every client, and
// an onlooker gets nothing of it.
func TestInvalidTextRefused(t *testing.T) {
	t.Parallel()
	// bad is a Primus message, the test server's broadcast command, with
	// the offending text inside its data.
	bad := func(text string) string { return `{"cmd":"broadcast","data":"x` + text + `y"}` }
	// sockjsFrame puts a message in a SockJS frame, escaping it as JSON
	// does but leaving the offending bytes alone.
	sockjsFrame := func(msg string) string {
		return `["` + strings.ReplaceAll(msg, `"`, `\"`) + `"]`
	}
	const closeFrame = `c[1007,"invalid UTF-8"]`
	for _, tc := range []struct {
		name string
		// attack opens a session of the transport, sends the offending
		// message, and checks how the session was closed.
		attack func(t *testing.T, s *server)
	}{
		{"websocket, invalid byte", func(t *testing.T, s *server) {
			w := s.dialWS(t, "")
			w.sendRaw(t, sockjsFrame(bad("\xff")))
			if f := w.read(t); f != closeFrame {
				t.Errorf("frame %q, want %s", f, closeFrame)
			}
		}},
		{"websocket, lone surrogate escape", func(t *testing.T, s *server) {
			w := s.dialWS(t, "")
			w.sendRaw(t, sockjsFrame(bad(`\ud83d`)))
			if f := w.read(t); f != closeFrame {
				t.Errorf("frame %q, want %s", f, closeFrame)
			}
		}},
		{"websocket, invalid byte in the second fragment", func(t *testing.T, s *server) {
			w := s.dialWS(t, "")
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			wr, err := w.c.Writer(ctx, ws.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			frame := sockjsFrame(bad("\xe2\x82"))
			cut := strings.Index(frame, "\xe2") + 1
			_, _ = wr.Write([]byte(frame[:cut]))
			_, _ = wr.Write([]byte(frame[cut:])) // \x82 then y: the character is cut short
			_ = wr.Close()
			if f := w.read(t); f != closeFrame {
				t.Errorf("frame %q, want %s", f, closeFrame)
			}
		}},
		{"raw websocket", func(t *testing.T, s *server) {
			c, _, err := dial(t, "ws"+strings.TrimPrefix(s.url, "http")+"/websocket", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := c.Write(ctx, ws.MessageText, []byte(bad("\xff"))); err != nil {
				t.Fatal(err)
			}
			_, _, err = c.Read(ctx)
			if ws.CloseStatus(err) != 1007 {
				t.Errorf("read: %v, want a close with 1007", err)
			}
		}},
		{"xhr_send, invalid byte", func(t *testing.T, s *server) {
			c := s.newSession("")
			c.open(t)
			resp, _ := s.do(t, http.MethodPost, c.url("xhr_send"), sockjsFrame(bad("\xc0\xaf")), nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("xhr_send: %d, want 400", resp.StatusCode)
			}
			if f := c.poll(t); len(f) != 1 || f[0] != closeFrame {
				t.Errorf("poll: %q, want %s", f, closeFrame)
			}
		}},
		{"xhr_send, lone surrogate escape", func(t *testing.T, s *server) {
			c := s.newSession("")
			c.open(t)
			resp, _ := s.do(t, http.MethodPost, c.url("xhr_send"), sockjsFrame(bad(`\udc00`)), nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("xhr_send: %d, want 400", resp.StatusCode)
			}
			if f := c.poll(t); len(f) != 1 || f[0] != closeFrame {
				t.Errorf("poll: %q, want %s", f, closeFrame)
			}
		}},
		{"jsonp_send, form", func(t *testing.T, s *server) {
			c := s.newSession("")
			c.open(t)
			resp, _ := s.do(t, http.MethodPost, c.url("jsonp_send"), "d="+url.QueryEscape(sockjsFrame(bad("\xff"))),
				http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("jsonp_send: %d, want 400", resp.StatusCode)
			}
			if f := c.poll(t); len(f) != 1 || f[0] != closeFrame {
				t.Errorf("poll: %q, want %s", f, closeFrame)
			}
		}},
		{"jsonp_send, body", func(t *testing.T, s *server) {
			c := s.newSession("")
			c.open(t)
			resp, _ := s.do(t, http.MethodPost, c.url("jsonp_send"), sockjsFrame(bad("\xed\xa0\x80")), http.Header{"Content-Type": {"text/plain"}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("jsonp_send: %d, want 400", resp.StatusCode)
			}
			if f := c.poll(t); len(f) != 1 || f[0] != closeFrame {
				t.Errorf("poll: %q, want %s", f, closeFrame)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, nil, nil)
			onlooker := s.dialWS(t, "")
			s.spark(t)
			tc.attack(t, s)
			s.spark(t)
			s.end(t)
			// Had the attacker's broadcast gone out, it would come first.
			onlooker.send(t, `{"cmd":"broadcast","data":"after"}`)
			if m := onlooker.next(t); len(m) != 1 || m[0] != `"after"` {
				t.Errorf("the onlooker got %q", m)
			}
		})
	}
}

// Valid text of every kind goes through untouched, escapes included.
func TestValidTextPasses(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	w := s.dialWS(t, "")
	const frame = `["\"é 😀 \\ud800 \ud83d\ude00 \ufffd\""]` // the last three are escapes at SockJS's level
	w.sendRaw(t, frame)
	want := "\"é 😀 \\ud800 😀 \ufffd\""
	if m := w.next(t); len(m) != 1 || m[0] != want {
		t.Errorf("echo %q, want %q", m, want)
	}
}

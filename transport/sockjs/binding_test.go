package sockjs_test

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/transport/sockjs"
)

// fromAddress returns an HTTP client whose connections come from the
// loopback address ip (127.0.0.2: another host as the server sees it).
func fromAddress(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitTimeout}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// as returns a copy of c whose requests go through client, with header.
func (c *session) as(client *http.Client, header http.Header) *session {
	s := *c.s
	s.client = client
	if header != nil {
		s.client = &http.Client{Transport: headerTransport{client.Transport, header}}
	}
	return &session{s: &s, base: c.base}
}

type headerTransport struct {
	rt     http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return h.rt.RoundTrip(r)
}

// Whoever learns a session's id cannot use it from another address:
// sending as the victim gets 404, the same answer as for an id nobody uses,
// and polling or streaming with the id opens a session of the attacker's
// own, which carries none of the victim's messages. The victim goes on.
func TestSessionBoundToClientAddress(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	victim := s.newSession("")
	victim.open(t)
	sp := s.spark(t)
	attacker := victim.as(fromAddress(t, "127.0.0.2"), nil)

	// Sending as the victim.
	resp, body := attacker.s.do(t, http.MethodPost, victim.url("xhr_send"), `["\"forged\""]`, nil)
	unknown := s.newSession("")
	resp2, body2 := attacker.s.do(t, http.MethodPost, unknown.url("xhr_send"), `["\"forged\""]`, nil)
	if resp.StatusCode != http.StatusNotFound || !sameAnswer(resp, body, resp2, body2) {
		t.Errorf("xhr_send to the victim's session: %d %q %v; to an unknown one: %d %q %v",
			resp.StatusCode, body, resp.Header, resp2.StatusCode, body2, resp2.Header)
	}
	resp, body = attacker.s.do(t, http.MethodPost, victim.url("jsonp_send"), `d=["\"forged\""]`,
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("jsonp_send to the victim's session: %d %q", resp.StatusCode, body)
	}

	// Polling the victim's messages: the attacker gets a new session.
	if err := sp.Write("secret"); err != nil {
		t.Fatal(err)
	}
	if f := attacker.poll(t); len(f) != 1 || f[0] != "o" {
		t.Errorf("the attacker's poll: %q, want a new session's o", f)
	}
	other := s.spark(t)
	st := attacker.openStream(t, http.MethodPost, "xhr_streaming", "")
	r := xhrStreamReceiver{st}
	r.next(t) // prelude
	if err := other.Write("the attacker's own"); err != nil {
		t.Fatal(err)
	}
	if m := nextData(t, r); len(m) != 1 || m[0] != `"the attacker's own"` {
		t.Errorf("the attacker's stream: %q", m)
	}

	// The victim's session is whole: its message is there, nothing forged
	// arrived (the test server echoes).
	if got := victim.collect(t, 1); got[0] != `"secret"` {
		t.Errorf("the victim's poll: %q", got)
	}
	victim.send(t, `"mine"`)
	if got := victim.collect(t, 1); got[0] != `"mine"` {
		t.Errorf("the victim's echo: %q, want its own message only", got)
	}
}

// sameAnswer reports whether two responses are alike but for their date.
func sameAnswer(a *http.Response, aBody string, b *http.Response, bBody string) bool {
	if a.StatusCode != b.StatusCode || aBody != bBody || len(a.Header) != len(b.Header) {
		return false
	}
	for k, v := range a.Header {
		if k != "Date" && strings.Join(v, ",") != strings.Join(b.Header[k], ",") {
			return false
		}
	}
	return true
}

// Behind trusted proxies, the client's address is the one they forward.
func TestSessionBoundBehindProxy(t *testing.T) {
	t.Parallel()
	s := start(t, nil, &primus.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	base := s.newSession("")
	victim := base.as(s.client, http.Header{"X-Forwarded-For": {"203.0.113.7"}})
	victim.open(t)
	sp := s.spark(t)
	if got := sp.Address().IP.String(); got != "203.0.113.7" {
		t.Errorf("spark address %s", got)
	}
	attacker := base.as(s.client, http.Header{"X-Forwarded-For": {"198.51.100.9"}})
	resp, body := attacker.s.do(t, http.MethodPost, victim.url("xhr_send"), `["\"forged\""]`, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("xhr_send from another forwarded address: %d %q", resp.StatusCode, body)
	}
	// The same client through another proxy hop is the same client.
	again := base.as(s.client, http.Header{"X-Forwarded-For": {"203.0.113.7, 127.0.0.9"}})
	again.send(t, `"via another hop"`)
	if got := victim.collect(t, 1); got[0] != `"via another hop"` {
		t.Errorf("echo %q", got)
	}
}

// With InsecureAnyClientAddress, a session answers requests from any
// address, as sockjs-go does by itself.
func TestInsecureAnyClientAddress(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{InsecureAnyClientAddress: true}, nil)
	c := s.newSession("")
	c.open(t)
	s.spark(t)
	elsewhere := c.as(fromAddress(t, "127.0.0.2"), nil)
	elsewhere.send(t, `"from elsewhere"`)
	if got := c.collect(t, 1); got[0] != `"from elsewhere"` {
		t.Errorf("echo %q", got)
	}
}

// A WebSocket session cannot be reached by the HTTP transports at all: a
// send with its id gets 404, from any address.
func TestWebSocketSessionNotReachableOverHTTP(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{InsecureAnyClientAddress: true}, nil)
	w := s.dialWS(t, "")
	s.spark(t)
	u := s.url + "/123/wsession/xhr_send"
	if resp, body := s.do(t, http.MethodPost, u, `["\"forged\""]`, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("xhr_send with the WebSocket session's id: %d %q", resp.StatusCode, body)
	}
	w.send(t, `"mine"`)
	if m := w.next(t); len(m) != 1 || m[0] != `"mine"` {
		t.Errorf("echo %q", m)
	}
}

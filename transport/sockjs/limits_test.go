package sockjs_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport/sockjs"
)

// SockJS carries text: a binary parser is refused when the server is built,
// with an error that says why and what to use instead.
func TestBinaryParserRefused(t *testing.T) {
	t.Parallel()
	_, err := primus.New(&primus.Options{Transformer: sockjs.New(nil), Parser: parser.CBOR})
	if err == nil {
		t.Fatal("primus.New accepted the CBOR parser on the SockJS transformer")
	}
	for _, want := range []string{`"cbor"`, "binary", `"sockjs"`, "text only", "parser.JSON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := primus.New(&primus.Options{Transformer: sockjs.New(nil), Parser: parser.JSON}); err != nil {
		t.Errorf("JSON refused: %v", err)
	}
}

// A message over MaxMessageSize ends the session with c[1009,...] and the
// spark with ErrMessageTooBig, on a WebSocket and over xhr_send; one of
// exactly MaxMessageSize passes.
func TestMessageTooBig(t *testing.T) {
	t.Parallel()
	const limit = 1000
	fits := fmt.Sprintf("%q", strings.Repeat("a", limit-2))
	over := fmt.Sprintf("%q", strings.Repeat("a", limit-1))
	for _, tr := range transports {
		if tr.name != "websocket" && tr.name != "xhr-polling" {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, nil, &primus.Options{MaxMessageSize: limit})
			r, send := tr.open(t, s, "")
			send(t, fits)
			if m := nextData(t, r); len(m) != 1 || m[0] != fits {
				t.Fatalf("echo of %d bytes: %q", len(fits), m)
			}
			send(t, over)
			if f := r.next(t); f != `c[1009,"Message too big"]` {
				t.Errorf("after %d bytes: frame %q, want c[1009,...]", len(over), f)
			}
			if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
				t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
			}
		})
	}
}

// A WebSocket frame that announces more than MaxFrameBytes is refused as
// soon as its header arrives, before any of it is buffered.
func TestFrameTooBigRefusedOnHeader(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{MaxFrameBytes: 64 << 10}, nil)
	conn, br := rawUpgrade(t, s, "/1/bigframe/websocket")
	if f := readServerFrame(t, br); f != "o" {
		t.Fatalf("first frame %q", f)
	}
	// A masked text frame announcing 1 GiB; its payload never comes.
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(hdr[2:10], 1<<30)
	if _, err := conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if f := readServerFrame(t, br); f != `c[1009,"Message too big"]` {
		t.Errorf("frame %q, want c[1009,...]", f)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
		t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
	}
}

// An xhr_send body over MaxFrameBytes is refused with 413 before sockjs-go
// decodes it, and the session ends with c[1009,...].
func TestSendBodyTooBig(t *testing.T) {
	t.Parallel()
	s := start(t, &sockjs.Options{MaxFrameBytes: 64 << 10}, nil)
	c := s.newSession("")
	c.open(t)
	s.spark(t)
	body := `["` + strings.Repeat("b", 64<<10) + `"]`
	if resp, _ := s.do(t, http.MethodPost, c.url("xhr_send"), body, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("xhr_send of %d bytes: %d, want 413", len(body), resp.StatusCode)
	}
	if end := s.end(t); !errors.Is(end.reason, primus.ErrMessageTooBig) {
		t.Errorf("spark ended with %v, want ErrMessageTooBig", end.reason)
	}
	if f := c.poll(t); len(f) != 1 || f[0] != `c[1009,"Message too big"]` {
		t.Errorf("poll after the refusal: %q", f)
	}
}

// rawUpgrade opens a WebSocket by hand, for frames no client library
// would send.
func rawUpgrade(t *testing.T, s *server, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.ts.URL, "http://"), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET " + s.srv.Pathname() + path + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// readServerFrame reads one unmasked frame from the server.
func readServerFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return string(p)
}

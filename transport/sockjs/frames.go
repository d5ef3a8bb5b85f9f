package sockjs

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// frameWriter wraps the response of a receiving request (a poll or a
// stream). sockjs-go writes each frame with one Write call, always of all the
// messages its session had buffered, in order; so when a data frame has been
// written, its messages have left the session's buffer, and frameWriter
// tells the session's conn how many (see conn.flushed). It also lets the
// conn abort a write blocked on a client that does not read, and spots
// sockjs-go's spurious "another connection still open" (see
// handler.serveReceiving).
type frameWriter struct {
	http.ResponseWriter
	h    *handler
	id   string
	kind string
	c    atomic.Pointer[conn] // the session's conn, from the first write once it runs

	resp  *response // shared by the attempts at one request
	retry bool      // a spurious busy frame may be dropped for a retry
	raced bool      // it was: the request is served again
	skip  int       // writes to drop: the transport's prelude, already sent by the first attempt
}

// response is what the attempts at one receiving request have sent.
type response struct {
	wroteHeader atomic.Bool
}

func (f *frameWriter) WriteHeader(status int) {
	if f.resp.wroteHeader.Swap(true) {
		return
	}
	f.ResponseWriter.WriteHeader(status)
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.skip > 0 {
		f.skip--
		return len(p), nil
	}
	if f.retry && isBusyFrame(f.kind, p) && f.h.receivers(f.id) == 1 {
		// No other receiving request of this session is under way: the
		// previous one has ended but sockjs-go has not detached it yet.
		f.raced = true
		return len(p), nil
	}
	c := f.conn()
	frame, data := dataFrame(f.kind, p)
	f.resp.wroteHeader.Store(true)
	n, err := f.ResponseWriter.Write(p)
	if data && c != nil && err == nil {
		c.flushed(countStrings(frame))
	}
	return n, err
}

// conn returns the session's conn once it runs, and registers f with it
// (before f writes anything the conn may have to abort).
func (f *frameWriter) conn() *conn {
	if c := f.c.Load(); c != nil {
		return c
	}
	c := f.h.session(f.id)
	if c != nil {
		f.c.Store(c)
		c.addWriter(f)
	}
	return c
}

// Flush is required by sockjs-go's streaming transports.
func (f *frameWriter) Flush() {
	if f.raced {
		return
	}
	_ = http.NewResponseController(f.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's response.
func (f *frameWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// done is called when an attempt at the request has been handled.
func (f *frameWriter) done() {
	if c := f.c.Load(); c != nil {
		c.removeWriter(f)
	}
}

// preludeWrites is how many writes a receiving transport makes before its
// first frame (sockjs-go's xhr.go, eventsource.go, htmlfile.go).
func preludeWrites(kind string) int {
	switch kind {
	case "xhr_streaming", "eventsource", "htmlfile":
		return 1
	}
	return 0
}

// busyFrame is what sockjs-go answers a receiving request while the session
// has another receiver attached.
const busyFrame = `c[2010,"Another connection still open"]`

// isBusyFrame reports whether p, one write of a receiving transport, is
// busyFrame.
func isBusyFrame(kind string, p []byte) bool {
	switch kind {
	case "xhr", "xhr_streaming":
		return string(p) == busyFrame+"\n"
	case "eventsource":
		return string(p) == "data: "+busyFrame+"\r\n\r\n"
	case "htmlfile", "jsonp":
		q, _ := json.Marshal(busyFrame)
		return bytes.Contains(p, q)
	}
	return false
}

// dataFrame returns the "a[...]" frame that p, one write of a receiving
// transport, carries, and whether it carries one. Each transport wraps
// frames its own way (sockjs-go's xhr.go, eventsource.go, htmlfile.go,
// jsonp.go); the last two quote the frame as a JavaScript string.
func dataFrame(kind string, p []byte) ([]byte, bool) {
	switch kind {
	case "xhr", "xhr_streaming":
		// a[...]\n
		return p, len(p) > 1 && p[0] == 'a' && p[1] == '['
	case "eventsource":
		// data: a[...]\r\n\r\n, with %, \r, \n and NUL percent-encoded,
		// which leaves the JSON's quotes and backslashes as they are.
		f, ok := bytes.CutPrefix(p, []byte("data: a["))
		return f, ok
	case "htmlfile", "jsonp":
		// <script>\np("a[...]");\n</script>\r\n or callback("a[...]");\r\n
		start := bytes.IndexByte(p, '(')
		end := bytes.LastIndexByte(p, ')')
		if start < 0 || end <= start || !bytes.HasPrefix(p[start+1:], []byte(`"a[`)) {
			return nil, false
		}
		var frame string
		if err := json.Unmarshal(p[start+1:end], &frame); err != nil {
			return nil, false
		}
		return []byte(frame), true
	}
	return nil, false
}

// countStrings counts the JSON strings in a frame of an array of strings.
func countStrings(frame []byte) int {
	n := 0
	in := false
	for i := 0; i < len(frame); i++ {
		switch frame[i] {
		case '\\':
			if in {
				i++
			}
		case '"':
			if !in {
				n++
			}
			in = !in
		}
	}
	return n
}

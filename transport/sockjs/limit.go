package sockjs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// wsConn is what the handler knows of a WebSocket session: the hijacked
// connection, and the session's conn once it runs.
//
// sockjs-go reads WebSocket frames with gorilla/websocket without a read
// limit, so a client could make it buffer any amount; the handler therefore
// hands gorilla/websocket a connection that follows the frames it reads and
// fails the read as soon as a frame header announces a message over limit.
type wsConn struct {
	limit int64
	raw   net.Conn // the hijacked connection, set before the session starts
	conn  atomic.Pointer[conn]
	ready chan struct{} // closed once conn is set
}

// hijacker gives gorilla/websocket a limitedConn when it hijacks.
type hijacker struct {
	http.ResponseWriter
	ws       *wsConn
	hijacked bool
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.hijacked = true
	h.ws.raw = raw
	lc := &limitedConn{Conn: raw, r: brw.Reader, lim: frameLimiter{max: h.ws.limit}, ws: h.ws}
	return lc, bufio.NewReadWriter(bufio.NewReader(lc), brw.Writer), nil
}

func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// WriteHeader and Write drop what sockjs-go writes after the hijack (an
// http.Error when closing an already closed connection fails), which
// net/http would log as a misuse.
func (h *hijacker) WriteHeader(status int) {
	if !h.hijacked {
		h.ResponseWriter.WriteHeader(status)
	}
}

func (h *hijacker) Write(p []byte) (int, error) {
	if h.hijacked {
		return 0, http.ErrHijacked
	}
	return h.ResponseWriter.Write(p)
}

// errFrameTooBig fails gorilla/websocket's read of an oversized frame.
var errFrameTooBig = errors.New("sockjs: frame too big")

// limitedConn is the hijacked connection as gorilla/websocket reads it.
// Only gorilla/websocket's reading goroutine calls Read.
type limitedConn struct {
	net.Conn
	r        *bufio.Reader // the server's reader, which may hold bytes already
	lim      frameLimiter
	ws       *wsConn
	exceeded bool
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.exceeded {
		return 0, errFrameTooBig
	}
	n, err := c.r.Read(p)
	if !c.lim.consume(p[:n]) {
		c.exceeded = true
		// sockjs-go starts the session's goroutine before this reading
		// one, so its conn comes soon if it is not there yet.
		timer := time.NewTimer(closeGrace)
		select {
		case <-c.ws.ready:
			c.ws.conn.Load().closeTooBig() // c[1009,"Message too big"], then the session ends
		case <-timer.C:
		}
		timer.Stop()
		return 0, errFrameTooBig
	}
	return n, err
}

// frameLimiter follows the WebSocket frames (RFC 6455, section 5.2) in a
// byte stream and reports a data message whose payload goes over max.
type frameLimiter struct {
	max     int64
	hdr     [14]byte
	n       int    // header bytes collected
	need    int    // header bytes needed; 0 before the first byte
	payload uint64 // payload bytes left in the current frame
	msg     uint64 // payload bytes of the current data message
}

// consume reads p and reports false once the limit has been passed.
func (l *frameLimiter) consume(p []byte) bool {
	for len(p) > 0 {
		if l.payload > 0 {
			k := min(uint64(len(p)), l.payload)
			l.payload -= k
			p = p[k:]
			continue
		}
		if l.need == 0 {
			l.need = 2
		}
		for l.n < l.need && len(p) > 0 {
			l.hdr[l.n] = p[0]
			l.n++
			p = p[1:]
			if l.n == 2 {
				l.need = 2 + extLen(l.hdr[1]&0x7f)
				if l.hdr[1]&0x80 != 0 {
					l.need += 4 // masking key
				}
			}
		}
		if l.n < l.need {
			return true
		}
		var length uint64
		switch b := l.hdr[1] & 0x7f; b {
		case 126:
			length = uint64(binary.BigEndian.Uint16(l.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(l.hdr[2:10])
		default:
			length = uint64(b)
		}
		if opcode := l.hdr[0] & 0x0f; opcode < 8 { // a data frame, not a control frame
			if opcode != 0 { // not a continuation: a new message
				l.msg = 0
			}
			if length > uint64(l.max) || l.msg > uint64(l.max)-length {
				return false
			}
			l.msg += length
		}
		l.payload = length
		l.n, l.need = 0, 0
	}
	return true
}

// extLen is the length of the extended payload length field.
func extLen(b byte) int {
	switch b {
	case 126:
		return 2
	case 127:
		return 8
	}
	return 0
}

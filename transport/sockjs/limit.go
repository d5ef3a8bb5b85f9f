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
// sockjs-go reads WebSocket frames with gorilla/websocket, which has no read
// limit here and decodes what it reads at once (a SockJS frame as JSON, which
// turns bytes that are not UTF-8 into U+FFFD). So the handler hands
// gorilla/websocket a connection that follows the frames it reads (see
// frameInspector) and fails the read, after closing the session with the
// right code, as soon as a frame header announces a message over limit
// (1009), a binary message begins (1003: SockJS carries text), or a text
// message turns out not to be valid text (1007).
type wsConn struct {
	limit int64
	raw   bool     // the raw endpoint: one message per frame, no SockJS framing
	conn  net.Conn // the hijacked connection, set before the session starts
	sess  atomic.Pointer[conn]
	ready chan struct{} // closed once sess is set
}

// hijacker gives gorilla/websocket an inspectedConn when it hijacks, and
// tells the handler that the upgrade has happened.
type hijacker struct {
	w        http.ResponseWriter // nil once hijacked: the session must not keep the server's response (and its request) alive
	ws       *wsConn
	hijacked chan struct{} // closed by Hijack
}

func (h *hijacker) Header() http.Header {
	if h.w == nil {
		return http.Header{}
	}
	return h.w.Header()
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h.w == nil {
		return nil, nil, http.ErrHijacked
	}
	raw, brw, err := http.NewResponseController(h.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.w = nil
	h.ws.conn = raw
	ic := &inspectedConn{Conn: raw, r: brw.Reader, ws: h.ws, insp: frameInspector{max: h.ws.limit, text: textChecker{json: !h.ws.raw}}}
	close(h.hijacked)
	return ic, bufio.NewReadWriter(bufio.NewReader(ic), brw.Writer), nil
}

// Unwrap lets http.ResponseController reach the server's response until
// the hijack.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.w }

// WriteHeader and Write drop what sockjs-go writes after the hijack (an
// http.Error when closing an already closed connection fails), which
// net/http would log as a misuse.
func (h *hijacker) WriteHeader(status int) {
	if h.w != nil {
		h.w.WriteHeader(status)
	}
}

func (h *hijacker) Write(p []byte) (int, error) {
	if h.w == nil {
		return 0, http.ErrHijacked
	}
	return h.w.Write(p)
}

// errRefused fails gorilla/websocket's read of a frame the session refused.
var errRefused = errors.New("sockjs: frame refused")

// inspectedConn is the hijacked connection as gorilla/websocket reads it.
// Only gorilla/websocket's reading goroutine calls Read.
type inspectedConn struct {
	net.Conn
	r       *bufio.Reader // the server's reader, which may hold bytes already
	ws      *wsConn
	insp    frameInspector
	verdict verdict // what the inspector found wrong; frameOK while nothing
}

func (c *inspectedConn) Read(p []byte) (int, error) {
	if c.verdict != frameOK {
		return 0, c.refuse()
	}
	n, err := c.r.Read(p)
	k, v := c.insp.consume(p[:n])
	if v == frameOK {
		return n, err
	}
	c.verdict = v
	if k > 0 {
		// What came before the refused frame may hold whole messages:
		// let gorilla/websocket have them, and refuse at the next read.
		return k, nil
	}
	return 0, c.refuse()
}

// refuse closes the session with the code of the verdict (once the close
// frame is out) and returns the error that fails gorilla/websocket's read.
func (c *inspectedConn) refuse() error {
	// sockjs-go starts the session's goroutine before this reading one, so
	// its conn comes soon if it is not there yet.
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	select {
	case <-c.ws.ready:
	case <-timer.C:
		return errRefused
	}
	s := c.ws.sess.Load()
	switch c.verdict {
	case frameTooBig:
		s.closeTooBig() // c[1009,"Message too big"], then the session ends
	case frameBinary:
		s.closeBinary()
	case frameInvalidText:
		s.closeInvalid()
	}
	return errRefused
}

// verdict is what a frameInspector makes of a client's frames.
type verdict uint8

const (
	frameOK          verdict = iota
	frameTooBig              // a message over the limit
	frameBinary              // a binary message
	frameInvalidText         // a text message that is not valid text (see textChecker)
)

// frameInspector follows the WebSocket frames (RFC 6455, section 5.2) a
// client sends, in a byte stream split anywhere, and finds the first
// message that is over max bytes, binary, or not valid text. It checks the
// text of each message as the frames come, unmasking a copy of the payload;
// control frames are skipped.
type frameInspector struct {
	max     int64
	hdr     [14]byte
	n       int    // header bytes collected
	need    int    // header bytes needed; 0 before the first byte
	payload uint64 // payload bytes left in the current frame
	msg     uint64 // payload bytes of the current data message
	textMsg bool   // the current data message is text to check
	check   bool   // the current frame's payload is
	fin     bool   // the current frame ends its message
	mask    [4]byte
	pos     int // payload bytes of the current frame seen, for the mask
	text    textChecker
	found   verdict
	buf     [512]byte
}

// consume reads p. It returns frameOK and len(p) while all is well; once a
// message is refused, its verdict and how many bytes of p came before the
// refused frame's bytes in p (never one that completes the refused
// message).
func (l *frameInspector) consume(p []byte) (int, verdict) {
	if l.found != frameOK {
		return 0, l.found
	}
	for i := 0; i < len(p); {
		if l.payload > 0 {
			k := int(min(uint64(len(p)-i), l.payload))
			if l.check && !l.checkText(p[i:i+k]) {
				return l.refuse(i, frameInvalidText)
			}
			l.payload -= uint64(k)
			if l.payload == 0 && l.check && l.fin && !l.text.end() {
				return l.refuse(i, frameInvalidText)
			}
			i += k
			continue
		}
		if l.need == 0 {
			l.need = 2
		}
		for l.n < l.need && i < len(p) {
			l.hdr[l.n] = p[i]
			l.n++
			i++
			if l.n == 2 {
				l.need = 2 + extLen(l.hdr[1]&0x7f)
				if l.hdr[1]&0x80 != 0 {
					l.need += 4 // masking key
				}
			}
		}
		if l.n < l.need {
			break
		}
		last := i - 1 // the header's last byte
		var length uint64
		switch b := l.hdr[1] & 0x7f; b {
		case 126:
			length = uint64(binary.BigEndian.Uint16(l.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(l.hdr[2:10])
		default:
			length = uint64(b)
		}
		l.mask = [4]byte{}
		if l.hdr[1]&0x80 != 0 {
			copy(l.mask[:], l.hdr[l.need-4:l.need])
		}
		l.pos = 0
		l.payload = length
		l.n, l.need = 0, 0
		opcode := l.hdr[0] & 0x0f
		if opcode >= 8 { // a control frame
			l.check = false
			continue
		}
		switch opcode {
		case 0: // a continuation: the message's check goes on
		case 1:
			l.msg = 0
			l.textMsg = true
			l.text.reset()
		case 2:
			return l.refuse(last, frameBinary)
		default: // reserved: gorilla/websocket fails the connection
			l.msg = 0
			l.textMsg = false
		}
		l.check = l.textMsg
		if length > uint64(l.max) || l.msg > uint64(l.max)-length {
			return l.refuse(last, frameTooBig)
		}
		l.msg += length
		l.fin = l.hdr[0]&0x80 != 0
		if length == 0 && l.check && l.fin && !l.text.end() {
			return l.refuse(last, frameInvalidText)
		}
	}
	return len(p), frameOK
}

func (l *frameInspector) refuse(at int, v verdict) (int, verdict) {
	l.found = v
	return at, v
}

// checkText unmasks a copy of the payload bytes p and checks them.
func (l *frameInspector) checkText(p []byte) bool {
	for len(p) > 0 {
		k := copy(l.buf[:], p)
		for j := range k {
			l.buf[j] ^= l.mask[(l.pos+j)&3]
		}
		l.pos += k
		if !l.text.write(l.buf[:k]) {
			return false
		}
		p = p[k:]
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

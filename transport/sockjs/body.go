package sockjs

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Request bodies.
//
// Every body under the pathname is read by the handler, before sockjs-go
// sees the request, under a read deadline of BodyTimeout (set on the
// connection with http.ResponseController): the sends (xhr_send,
// jsonp_send) up to MaxFrameBytes, anything else (a poll's body, which
// SockJS leaves empty) up to otherBodyBytes. sockjs-go then gets the bytes
// read.
//
// A client that trickles a body has its request failed with 408 when the
// deadline passes, and its connection closed: the passed deadline makes
// net/http's attempt to read the rest of the body fail at once instead of
// waiting on the client. A body over its limit gets 413, and the deadline
// bounds net/http's reading of the rest too. Once a body is read, the
// deadline is cleared (net/http clears it as well when it starts reading
// ahead on the connection), so that it never reaches a receiving request,
// which stays open for many seconds: net/http's background read would fail
// at the deadline and cancel the request.

// otherBodyBytes bounds the body of a request other than a send.
const otherBodyBytes = 64 << 10

var (
	errBodyTooBig = errors.New("sockjs: request body too big")
	errBodyTime   = errors.New("sockjs: request body not received in time")
)

// readBody reads r's body, up to limit bytes, within BodyTimeout. It
// returns errBodyTooBig, errBodyTime, or the read's error.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.topts.BodyTimeout)); err != nil {
		h.noDeadline.Do(func() {
			h.topts.Logger.Warn("sockjs: request bodies are read without a deadline: the ResponseWriter does not support SetReadDeadline (a middleware's wrapper without an Unwrap method?)", "error", err)
		})
	}
	// When the body is refused as too big, the deadline stays: net/http
	// reads what is left of a body (up to 256 KiB) before it answers and
	// closes the connection, and the deadline bounds that too.
	if r.ContentLength > limit {
		return nil, errBodyTooBig
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errBodyTime // the deadline has passed: net/http will not wait either
	case err != nil:
		_ = rc.SetReadDeadline(time.Now())
		return nil, err
	case int64(len(body)) > limit:
		return nil, errBodyTooBig
	}
	_ = rc.SetReadDeadline(time.Time{})
	return body, nil
}

// bodyFailed answers a request whose body could not be read, and closes its
// connection.
func bodyFailed(w http.ResponseWriter, err error, limit int64) {
	w.Header().Set("Connection", "close")
	switch {
	case errors.Is(err, errBodyTooBig):
		http.Error(w, "sockjs: request body over "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
	case errors.Is(err, errBodyTime):
		http.Error(w, "sockjs: request body not received in time", http.StatusRequestTimeout)
	default:
		http.Error(w, "sockjs: failed to read the request body", http.StatusBadRequest)
	}
}

// sendPayload returns the SockJS frame a send request carries, found as
// sockjs-go finds it: an xhr_send's body; a jsonp_send's form field d, or
// its body when there is no such field.
func sendPayload(kind string, r *http.Request, body []byte) []byte {
	if kind != "jsonp_send" {
		return body
	}
	form := &http.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: io.NopCloser(bytes.NewReader(body))}
	if err := form.ParseForm(); err != nil {
		return body // sockjs-go refuses the request
	}
	if d := form.PostFormValue("d"); d != "" {
		return []byte(d)
	}
	return body
}

package sockjs

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-primus/primus/transport"
)

// What a session keeps of the request that opened it.
//
// sockjs-go keeps a session's latest receiving request (Session.Request) for
// as long as the session lives, and the handler hands that request to the
// core when the session opens. Keeping the client's request as it came would
// let a client make the server hold up to a megabyte of headers per session.
// So sockjs-go never sees the client's request itself, but a shallow copy
// whose header holds:
//
//   - the headers transport.TrimHeader keeps within Options.HeaderBytes
//     (32 KiB by default), smallest first;
//   - the forwarding headers the core computes the client's address from
//     (X-Forwarded-For, Forwarded, X-Real-IP, X-Forwarded-Proto), when the
//     trimming left them out, bounded: the last forwardHops hops, each of at
//     most forwardHopBytes. Trusted proxies append to the right, so the
//     address found from the right is the same as with the whole header,
//     and a client cannot hide its address behind a proxy's by padding its
//     headers;
//   - the headers sockjs-go and its WebSocket upgrade read (Origin for the
//     CORS answer, the Upgrade, Connection and Sec-WebSocket-* of the
//     handshake) when left out and not over protocolHeaderBytes each; and,
//     with Options.JSessionID, the JSESSIONID cookie alone when the Cookie
//     header was left out, so that sockjs-go sends the client's own cookie
//     back instead of overwriting it with its dummy value.
//
// A session therefore keeps at most HeaderBytes plus 28 KiB of headers
// (four forwarding headers of 16 hops of 258 bytes, seven protocol headers
// of 1 KiB, one cookie of 4 KiB), whatever the client sends; in practice
// the additions are a few hundred bytes. The core trims the header again
// for Spark.Header, so they do not show there beyond its budget.
const (
	forwardHops         = 16
	forwardHopBytes     = 256
	protocolHeaderBytes = 1 << 10
	jsessionCookieBytes = 4 << 10 // the most a browser keeps for one cookie
)

var forwardingHeaders = []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip", "X-Forwarded-Proto"}

var protocolHeaders = []string{
	"Origin", "Access-Control-Request-Headers",
	"Connection", "Upgrade", "Sec-Websocket-Version", "Sec-Websocket-Key", "Sec-Websocket-Extensions",
}

// keptHeader returns what a session keeps of h (see above).
func (h *handler) keptHeader(src http.Header) http.Header {
	kept := transport.TrimHeader(src, h.topts.HeaderBytes)
	for _, name := range forwardingHeaders {
		if _, ok := kept[name]; ok {
			continue
		}
		if vs, ok := src[name]; ok {
			kept[name] = []string{lastHops(vs)}
		}
	}
	for _, name := range protocolHeaders {
		if _, ok := kept[name]; ok {
			continue
		}
		if vs, ok := src[name]; ok && valuesSize(vs) <= protocolHeaderBytes {
			kept[name] = append([]string(nil), vs...)
		}
	}
	if h.opts.JSessionID {
		if _, ok := kept["Cookie"]; !ok {
			r := http.Request{Header: src}
			if c, err := r.Cookie("JSESSIONID"); err == nil && len(c.Value) <= jsessionCookieBytes {
				kept["Cookie"] = []string{"JSESSIONID=" + strings.Clone(c.Value)}
			}
		}
	}
	return kept
}

// lastHops returns the last forwardHops comma-separated elements of vs,
// each cut to forwardHopBytes, as one value.
func lastHops(vs []string) string {
	var hops []string
	for i := len(vs) - 1; i >= 0 && len(hops) < forwardHops; i-- {
		parts := strings.Split(vs[i], ",")
		for j := len(parts) - 1; j >= 0 && len(hops) < forwardHops; j-- {
			p := strings.TrimSpace(parts[j])
			if len(p) > forwardHopBytes {
				p = p[:forwardHopBytes]
			}
			hops = append(hops, p)
		}
	}
	for i, j := 0, len(hops)-1; i < j; i, j = i+1, j-1 {
		hops[i], hops[j] = hops[j], hops[i]
	}
	return strings.Clone(strings.Join(hops, ", "))
}

func valuesSize(vs []string) int {
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	return n
}

// sessionRequest returns the request sockjs-go is given for r (see above):
// a shallow copy with the kept header, the URL u (r's own, or the one naming
// the client's session; see handler.sessionKey), and, in its context, what
// serve needs to hand the session to the core.
func (h *handler) sessionRequest(r *http.Request, u *url.URL, ws *wsConn) *http.Request {
	info := &reqInfo{url: r.URL, ws: ws}
	sr := r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
	sr.Header = h.keptHeader(r.Header)
	sr.URL = u
	// Nothing else of the client's request may stay behind: the body is
	// read already (or never is), and the trailer is the client's too.
	sr.Body = http.NoBody
	sr.Trailer = nil
	sr.Form, sr.PostForm, sr.MultipartForm = nil, nil, nil
	return sr
}

// reqInfo travels in the context of the requests sockjs-go is given.
type reqInfo struct {
	url *url.URL // the client's URL (sockjs-go's copy names the session by its key)
	ws  *wsConn  // the WebSocket session's connection; nil for the HTTP transports
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	info, _ := r.Context().Value(reqInfoKey{}).(*reqInfo)
	return info
}

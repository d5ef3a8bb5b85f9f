package sockjs

import (
	"context"
	"net/http"
	"net/url"
)

// sessionRequest returns the request sockjs-go is given for r, the one a
// session keeps: a shallow copy with the URL u (r's own, or the one naming
// the client's session; see handler.sessionKey), and, in its context, what
// serve needs to hand the session to the core.
func (h *handler) sessionRequest(r *http.Request, u *url.URL, ws *wsConn) *http.Request {
	info := &reqInfo{url: r.URL, ws: ws}
	sr := r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
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

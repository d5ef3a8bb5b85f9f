package primus

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Middleware is ordinary net/http middleware. Layers added with Use run, in
// order, for every request under the pathname except <pathname>/spec and the
// client library, before authorization and the transformer. A layer refuses
// a request by answering it (Refuse does so the way Primus does) and not
// calling next; it can pass values on with r.WithContext, and they reach the
// spark's Context.
type Middleware func(next http.Handler) http.Handler

type layer struct {
	name string
	mw   Middleware
}

// Use adds a named middleware layer at the end of the chain; using a name
// again replaces that layer in place.
func (s *Server) Use(name string, mw Middleware) error {
	if name == "" || mw == nil {
		return errors.New("primus: Use needs a name and a middleware")
	}
	s.mwMu.Lock()
	defer s.mwMu.Unlock()
	for i := range s.layers {
		if s.layers[i].name == name {
			s.layers[i].mw = mw
			s.rebuildChainLocked()
			return nil
		}
	}
	s.layers = append(s.layers, layer{name, mw})
	s.rebuildChainLocked()
	return nil
}

// Remove removes the named middleware layer and reports whether it was
// there.
func (s *Server) Remove(name string) bool {
	s.mwMu.Lock()
	defer s.mwMu.Unlock()
	for i := range s.layers {
		if s.layers[i].name == name {
			s.layers = append(s.layers[:i:i], s.layers[i+1:]...)
			s.rebuildChainLocked()
			return true
		}
	}
	return false
}

// Middlewares returns the names of the layers, in order.
func (s *Server) Middlewares() []string {
	s.mwMu.Lock()
	defer s.mwMu.Unlock()
	names := make([]string, len(s.layers))
	for i, l := range s.layers {
		names[i] = l.name
	}
	return names
}

func (s *Server) rebuildChain() {
	s.mwMu.Lock()
	defer s.mwMu.Unlock()
	s.rebuildChainLocked()
}

func (s *Server) rebuildChainLocked() {
	var h http.Handler = http.HandlerFunc(s.final)
	for i := len(s.layers) - 1; i >= 0; i-- {
		h = s.layers[i].mw(h)
	}
	s.chain.Store(&h)
}

// AuthorizeFunc decides whether a request may connect. A nil error accepts
// it. Any other error refuses it with the status the error carries (an
// *HTTPError, or any error with a StatusCode() int method; 401 otherwise).
// The client gets the JSON body {"error": message}, where message is an
// *HTTPError's Message when the error is or wraps one, and the status's
// generic text otherwise: an error's own text (a database address, a user
// name) never reaches the client unless the application puts it in an
// HTTPError. The full error is logged. The stock Primus client then emits
// error and end, and does not retry.
type AuthorizeFunc func(r *http.Request) error

// Authorize sets the authorization function, run for every request under
// the pathname (each handshake, and each polling request of transformers
// that poll) after the middleware layers. nil removes it.
func (s *Server) Authorize(fn AuthorizeFunc) {
	if fn == nil {
		s.authorize.Store(nil)
		return
	}
	s.authorize.Store(&fn)
}

// ClientError is what a client refused with err may learn of it: the
// status err carries (401 by default, as Refuse answers), the Message of the
// *HTTPError it is or wraps, or else the status's generic text, and that
// error's Authenticate. For handlers of one's own that refuse requests in
// another format than Refuse's (package publish).
func ClientError(err error) *HTTPError {
	ce := &HTTPError{Status: statusOf(err)}
	ce.Message = http.StatusText(ce.Status)
	var he *HTTPError
	if errors.As(err, &he) {
		if he.Message != "" {
			ce.Message = he.Message
		}
		ce.Authenticate = he.Authenticate
	}
	return ce
}

// Refuse answers a request the way Primus refuses one: the status carried by
// err (401 by default), Content-Type application/json and the body
// {"error": message}, with WWW-Authenticate when err is an *HTTPError that
// sets it. The message is the Message of the *HTTPError that err is or
// wraps, the one kind of error meant for clients; for any other error it is
// the status's generic text ("Unauthorized", "Forbidden"…), so that
// internal details stay on the server (see ClientError).
func Refuse(w http.ResponseWriter, err error) {
	ce := ClientError(err)
	if ce.Authenticate != "" && ce.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", ce.Authenticate)
	}
	status, msg := ce.Status, ce.Message
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

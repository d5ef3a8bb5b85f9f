package publish

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/rooms"
)

// DefaultPath is where omega-supreme listens by default; mount the Handler
// there to keep existing tooling (primus.forward) working.
const DefaultPath = "/primus/omega/supreme"

// Cluster is what the Handler needs of a cluster (*cluster.Cluster): a
// broadcast to every node, and a write to a spark wherever it is.
type Cluster interface {
	Write(v any) error
	WriteTo(id string, v any) error
}

// Rooms is what the Handler needs of rooms (*rooms.Rooms). Give the rooms a
// relay (rooms.Options.Relay) for room writes to reach every node.
type Rooms interface {
	Room(name string) rooms.Room
}

// Options configure a Handler. Server and Authenticate are required; the
// zero value of every other field means its documented default.
type Options struct {
	// Server is the server whose sparks receive what is published.
	Server *primus.Server
	// Cluster, when set, makes broadcasts and writes by spark id reach every
	// node. Zero value means this server alone.
	Cluster Cluster
	// Rooms, when set, lets requests write to rooms (the "rooms" field).
	// Zero value means requests with rooms are refused.
	Rooms Rooms
	// Authenticate decides whether a request may publish: nil accepts it.
	// An error refuses it with the status the error carries (a
	// *primus.HTTPError, or any error with a StatusCode() int method; 401
	// otherwise). BasicAuth makes one that checks omega-supreme's basic
	// authentication. There is no default: an endpoint that writes to
	// every client must not be open by accident.
	Authenticate func(r *http.Request) error
	// MaxBodyBytes bounds a request's body. Zero value means 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds the reading of a request's body, so that a client
	// that trickles one cannot hold a goroutine. Zero value means 10 s.
	BodyTimeout time.Duration
	// Logger receives the handler's diagnostics. Zero value means silent.
	Logger *slog.Logger
}

const (
	defaultMaxBodyBytes = 1 << 20
	defaultBodyTimeout  = 10 * time.Second
)

// Handler is the publish endpoint, an http.Handler: mount it where the
// publishers expect it (DefaultPath for omega-supreme's).
//
// It takes PUT and POST requests whose body is a JSON object:
//
//	{"msg": <any JSON but null>, "sparks": "id" | ["id", …], "rooms": "name" | ["name", …], "except": "id" | ["id", …]}
//
// msg is written to the sparks listed, to the members of the rooms listed
// but those in except, or, when neither is given, to every spark. The
// answer is 200 with {"ok": true, "send": N}, N being the sparks of this
// node written to (on a cluster, "forwarded" counts the spark ids sent on
// to the other nodes, and broadcasts and room writes reach them too).
// Refusals answer {"ok": false, "reason": "…"} with 401 (Authenticate's
// status, for an error that carries one), 400 for a body that is not such
// an object, 413 for one over MaxBodyBytes, 408 for one not read within
// BodyTimeout, and 405 for another method.
//
// All methods are safe for concurrent use.
type Handler struct {
	srv     *primus.Server
	cluster Cluster
	rooms   Rooms
	auth    func(*http.Request) error
	maxBody int64
	timeout time.Duration
	log     *slog.Logger
}

// New returns the publish endpoint.
func New(opts Options) (*Handler, error) {
	if opts.Server == nil {
		return nil, errors.New("publish: Options.Server is required")
	}
	if opts.Authenticate == nil {
		return nil, errors.New("publish: Options.Authenticate is required (see BasicAuth)")
	}
	h := &Handler{
		srv:     opts.Server,
		cluster: opts.Cluster,
		rooms:   opts.Rooms,
		auth:    opts.Authenticate,
		maxBody: opts.MaxBodyBytes,
		timeout: opts.BodyTimeout,
		log:     opts.Logger,
	}
	if h.maxBody <= 0 {
		h.maxBody = defaultMaxBodyBytes
	}
	if h.timeout <= 0 {
		h.timeout = defaultBodyTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// BasicAuth returns an Authenticate function that accepts requests with
// these basic-authentication credentials (omega-supreme's scheme: its
// clients send "omega"/"supreme" unless configured otherwise; choose your
// own). The comparison takes the same time whatever the credentials sent.
func BasicAuth(username, password string) func(*http.Request) error {
	want := sha256.Sum256([]byte(username + "\x00" + password))
	return func(r *http.Request) error {
		u, p, ok := r.BasicAuth()
		got := sha256.Sum256([]byte(u + "\x00" + p))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return &primus.HTTPError{
				Status:       http.StatusUnauthorized,
				Message:      "invalid credentials",
				Authenticate: `Basic realm="primus publish", charset="UTF-8"`,
			}
		}
		return nil
	}
}

// request is the body of a publish request.
type request struct {
	Msg    json.RawMessage `json:"msg"`
	Sparks ids             `json:"sparks"`
	Rooms  ids             `json:"rooms"`
	Except ids             `json:"except"`
}

// ids is a string or an array of strings; an empty string is none.
type ids []string

func (s *ids) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		if one != "" {
			*s = ids{one}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*s = many
	return nil
}

// answer is the response body, omega-supreme's.
type answer struct {
	OK        bool   `json:"ok"`
	Send      int    `json:"send"`
	Forwarded int    `json:"forwarded,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// refuse answers omega-supreme's refusal: {"ok": false, "reason": …}.
func refuse(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}{false, reason})
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ServeHTTP publishes one request's message.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		w.Header().Set("Allow", "PUT, POST")
		refuse(w, http.StatusMethodNotAllowed, "use PUT or POST")
		return
	}
	if err := h.auth(r); err != nil {
		ce := primus.ClientError(err)
		if ce.Authenticate != "" && ce.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", ce.Authenticate)
		}
		h.log.Info("publish: request refused", "remote", r.RemoteAddr, "error", err)
		refuse(w, ce.Status, ce.Message)
		return
	}

	body, status, err := h.read(w, r)
	if err != nil {
		h.log.Info("publish: bad request", "remote", r.RemoteAddr, "error", err)
		refuse(w, status, err.Error())
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil || len(req.Msg) == 0 || bytes.Equal(req.Msg, []byte("null")) {
		refuse(w, http.StatusBadRequest, "invalid data structure")
		return
	}
	if len(req.Rooms) > 0 && h.rooms == nil {
		refuse(w, http.StatusBadRequest, "rooms are not available on this server")
		return
	}
	msg, err := h.encode(req.Msg)
	if err != nil {
		refuse(w, http.StatusBadRequest, "invalid data structure")
		return
	}
	a, err := h.publish(req, msg)
	if err != nil {
		h.log.Warn("publish: failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, answer{Send: a.Send, Forwarded: a.Forwarded, Reason: "failed to publish"})
		return
	}
	a.OK = true
	writeJSON(w, http.StatusOK, a)
}

// read reads the body within the bounds, or returns the status to refuse
// it with.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	// On a failure the deadline stays (or is set to now), so that
	// net/http, which reads what is left of a body before it answers,
	// does not wait on the client either; the connection is closed.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", h.maxBody)
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestTimeout, errors.New("body not read in time")
	case err != nil:
		_ = rc.SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		return nil, http.StatusBadRequest, errors.New("failed to read the body")
	}
	_ = rc.SetReadDeadline(time.Time{})
	if !utf8.Valid(body) {
		return nil, http.StatusBadRequest, errors.New("body is not UTF-8")
	}
	return body, 0, nil
}

// encode turns the request's msg into a message of the server's parser,
// encoded once for every recipient.
func (h *Handler) encode(msg json.RawMessage) (primus.Raw, error) {
	p := h.srv.Parser()
	if p == parser.JSON {
		var buf bytes.Buffer
		if err := json.Compact(&buf, msg); err != nil {
			return nil, err
		}
		return primus.Raw(buf.Bytes()), nil
	}
	var v any
	if err := json.Unmarshal(msg, &v); err != nil {
		return nil, err
	}
	b, err := p.Encode(v)
	if err != nil {
		return nil, err
	}
	return primus.Raw(b), nil
}

// publish writes msg as req asks.
func (h *Handler) publish(req request, msg primus.Raw) (answer, error) {
	var a answer
	switch {
	case len(req.Sparks) > 0 || len(req.Rooms) > 0:
		var errs []error
		for _, id := range req.Sparks {
			if sp, ok := h.srv.Spark(id); ok {
				if sp.Write(msg) == nil {
					a.Send++
				}
				continue
			}
			if h.cluster != nil {
				if err := h.cluster.WriteTo(id, msg); err != nil {
					errs = append(errs, err)
					continue
				}
				a.Forwarded++
			}
		}
		for _, name := range req.Rooms {
			room := h.rooms.Room(name).Except(req.Except...)
			for _, id := range room.Members() {
				if !slices.Contains(req.Except, id) {
					a.Send++
				}
			}
			if err := room.Write(msg); err != nil {
				errs = append(errs, err)
			}
		}
		return a, errors.Join(errs...)
	case h.cluster != nil:
		a.Send = h.srv.Count()
		return a, h.cluster.Write(msg)
	default:
		h.srv.ForEach(func(sp *primus.Spark) bool {
			if sp.Write(msg) == nil {
				a.Send++
			}
			return true
		})
		return a, nil
	}
}

package primus

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-primus/primus/parser"
	"github.com/go-primus/primus/transport"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrClosed is returned by writes to a spark or client that has ended.
	ErrClosed = errors.New("primus: connection closed")
	// ErrServerClosed is returned by writes and refused connections once
	// Shutdown has begun.
	ErrServerClosed = errors.New("primus: server closed")
	// ErrMessageTooBig reports a received message over MaxMessageSize; the
	// connection is closed with status 1009. It is the transport's own
	// sentinel, so errors.Is works on what transports return too.
	ErrMessageTooBig = transport.ErrMessageTooBig
	// ErrSlowConsumer reports a spark whose send queue went over
	// SendQueueBytes; the spark is closed (the client reconnects).
	ErrSlowConsumer = errors.New("primus: slow consumer: send queue full")
	// ErrHeartbeatTimeout reports a spark that did not answer a ping before
	// the next one was due, or a client that heard no ping for the ping
	// timeout.
	ErrHeartbeatTimeout = errors.New("primus: heartbeat timeout")
	// ErrWriteTimeout reports a spark whose transport did not accept a
	// message within WriteTimeout.
	ErrWriteTimeout = errors.New("primus: write timeout")
	// ErrInvalidUTF8 reports a text message that is not valid UTF-8: the
	// connection is closed with status 1007 (RFC 6455 §8.1) before any
	// handler, plugin or Raw() sees the message, so that it can never be
	// forwarded to browsers, which would drop their own connections on it.
	ErrInvalidUTF8 = parser.ErrInvalidUTF8
	// ErrUnsupportedData reports a binary frame sent to a server whose parser
	// is a text one, or a text frame to a binary parser: the connection is
	// closed with status 1003.
	ErrUnsupportedData = transport.ErrUnsupportedData
	// ErrRateLimited reports a spark that sent messages or bytes faster
	// than Options.Limits allow: the connection is closed with status 1008
	// and the reason "rate limited", and the message dropped.
	ErrRateLimited = errors.New("primus: rate limited")
	// ErrPanic is matched by every *PanicError.
	ErrPanic = errors.New("primus: handler panicked")
)

// PanicError is the reason a spark or client ended because code run for it
// (a handler, a plugin's hook or callback) panicked. The server recovers the
// panic, as net/http does for its handlers: the connection is closed with
// status 1011, the panic and its stack are logged and reported, and every
// other connection goes on. Test for it with errors.Is(err, ErrPanic) or
// errors.As.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("primus: handler panicked: %v", e.Value) }

// Is makes errors.Is(err, ErrPanic) true.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic's value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// HTTPError is an error with an HTTP status, returned by an Authorize
// function or a middleware to refuse a request. The client gets Status and
// the JSON body {"error": Message}: it is the one error whose text is meant
// for clients (see Refuse).
type HTTPError struct {
	// Status is the HTTP status code; 0 means 401 Unauthorized.
	Status int
	// Message is sent to the client as the "error" field.
	Message string
	// Authenticate, when set on a 401, is sent as the WWW-Authenticate
	// header.
	Authenticate string
}

func (e *HTTPError) Error() string { return e.Message }

// StatusCode returns the HTTP status of the refusal.
func (e *HTTPError) StatusCode() int {
	if e.Status == 0 {
		return http.StatusUnauthorized
	}
	return e.Status
}

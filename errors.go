package primus

import (
	"errors"
	"net/http"

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
)

// HTTPError is an error with an HTTP status, returned by an Authorize
// function or a middleware to refuse a request. The client gets Status and
// the JSON body {"error": Message}.
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

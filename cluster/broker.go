package cluster

import (
	"context"
	"time"
)

// Broker carries messages between the nodes of a cluster: publish/subscribe
// on named channels. Delivery is at most once: a message published while the
// publisher or a subscriber is cut off from the broker is lost for that
// subscriber. Messages from one publisher on one channel arrive in the order
// they were published.
//
// The NATS (cluster/nats) and Redis (cluster/redis) backends implement it.
// Implementations must be safe for concurrent use.
type Broker interface {
	// Publish sends data to every subscription of channel, on every node
	// (the publisher's own included). It must return within ctx; it does
	// not wait for the subscribers.
	Publish(ctx context.Context, channel string, data []byte) error

	// Subscribe calls f with each message published on channel until the
	// subscription is closed. Calls are sequential and in order; f owns
	// data and must return quickly. When the broker is unreachable the
	// subscription is still made, and takes effect when the broker is back:
	// an error means a request the broker can never serve. The subscription
	// survives reconnections by itself.
	Subscribe(ctx context.Context, channel string, f func(data []byte)) (Subscription, error)

	// Close releases the broker's resources; subscriptions end.
	Close() error
}

// Subscription is one Subscribe call's interest in a channel.
type Subscription interface {
	// Close ends the subscription: once it returns, f is not called again.
	Close() error
}

// Message is one message of a batch.
type Message struct {
	Channel string
	Data    []byte
}

// BatchPublisher is a Broker that sends several messages in one round trip.
// The cluster uses it when its Broker has it: a broker whose Publish waits
// for a reply (Redis) would otherwise pay one round trip per message.
type BatchPublisher interface {
	// PublishBatch publishes the messages in order; on error, any of them
	// may have been sent.
	PublishBatch(ctx context.Context, msgs []Message) error
}

// ErrorReporter is a Broker or Registry that learns of errors outside any
// call — a lost connection, messages dropped by a slow subscription — and
// reports them to the handlers added with OnError, then calls them with nil
// once the connection is back. The cluster adds its own, so that they reach
// Options.OnError and the logger.
type ErrorReporter interface {
	OnError(f func(error))
}

// DurableBroker is a Broker whose channels are durable streams (the NATS
// and Redis backends with their Durable option): a message it took is kept,
// in order, within the stream's limits, and a subscription cut off from the
// broker resumes where it stopped instead of missing what was published
// meanwhile. With one, the cluster keeps what it could not publish and
// publishes it again once the broker is back (within QueueBytes: only what
// does not fit is dropped and counted), and stamps each message so that
// subscribers drop the copies a retry made: delivery between nodes is then
// exactly once and in order, except for what the stream's own limits
// trimmed before a node read it (see Gaps).
type DurableBroker interface {
	Broker
	// Durable reports whether the channels are durable streams.
	Durable() bool
	// Gaps counts the times a subscription found that the stream had
	// trimmed messages it had not read yet (a node cut off longer than the
	// stream keeps messages): those messages are lost for it.
	Gaps() uint64
}

// LagReporter is a DurableBroker that tells how far behind the stream this
// node's reading is (both backends are).
type LagReporter interface {
	// Lag is the age of the entry this node delivered last: how long
	// before its delivery it was added to the stream, by the broker's
	// clock (as the backend stamps entries). While a node catches up on
	// what it missed, that is how far behind it is; otherwise it is the
	// delivery latency between nodes. Zero before the first entry.
	Lag() time.Duration
}

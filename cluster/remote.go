package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// rpc is a node's requests to other nodes waiting for their answer.
type rpc struct {
	next    atomic.Uint64
	mu      sync.Mutex
	waiting map[uint64]chan reply
}

// nextID returns a request id; they start at a random number, so that a
// late answer to a former process with the same node id matches nothing.
func (r *rpc) nextID() uint64 {
	if r.next.Load() == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.next.CompareAndSwap(0, binary.BigEndian.Uint64(b[:])>>1|1)
	}
	return r.next.Add(1)
}

type reply struct {
	code byte
	text string
}

// Answer codes.
const (
	replyOK       byte = 'o'
	replyNotFound byte = 'n'
	replyError    byte = 'e'
)

func validNode(id string) bool {
	return id != "" && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// PublishTo sends data to the handlers of topic (see Handle) on one other
// node, on that node's channel: the other nodes get nothing. It never
// waits for the broker, and returns ErrClosed or ErrQueueFull, or an error
// for an invalid node id or this node's own (whose handlers are not
// called).
func (c *Cluster) PublishTo(node, topic string, data []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !validNode(node) || node == c.id {
		return fmt.Errorf("cluster: PublishTo: %q is not another node's id", node)
	}
	return c.enqueue(channelNodePref+node, newEnvelope(kindTopic, c.origin, topic, data))
}

// Disconnect ends the spark with the id, on whichever node holds it, as
// primus.Spark.End does: its client is told, and does not reconnect. A
// spark of this node ends at once; for another, the node is looked up in
// the registry and asked, and its answer awaited within ctx and
// Options.Timeout. It returns ErrNotFound when no node holds the spark.
func (c *Cluster) Disconnect(ctx context.Context, spark string) error {
	return c.remote(ctx, opEnd, spark, "")
}

// Reconnect closes the connection of the spark with the id, on whichever
// node holds it, as primus.Spark.Close does: its client sees a lost
// connection and reconnects, through the load balancer, maybe to another
// node (with recovery, to the same spark if it comes back to this node).
// It is for moving clients off a node, and answers as Disconnect does.
func (c *Cluster) Reconnect(ctx context.Context, spark string) error {
	return c.remote(ctx, opReconnect, spark, "")
}

// remote applies op to the spark wherever it is.
func (c *Cluster) remote(ctx context.Context, op byte, spark, room string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	node, err := c.Lookup(ctx, spark)
	if err != nil {
		return err
	}
	if node == c.id {
		return c.applyLocal(op, spark, room)
	}
	_, err = c.askRoom(ctx, node, op, spark, room)
	return err
}

// ask sends a request to one node and returns its answer's text.
func (c *Cluster) ask(ctx context.Context, node string, op byte, spark string) (string, error) {
	return c.askRoom(ctx, node, op, spark, "")
}

func (c *Cluster) askRoom(ctx context.Context, node string, op byte, spark, room string) (string, error) {
	id := c.rpc.nextID()
	ch := make(chan reply, 1)
	c.rpc.mu.Lock()
	if c.rpc.waiting == nil {
		c.rpc.waiting = map[uint64]chan reply{}
	}
	c.rpc.waiting[id] = ch
	c.rpc.mu.Unlock()
	defer func() {
		c.rpc.mu.Lock()
		delete(c.rpc.waiting, id)
		c.rpc.mu.Unlock()
	}()
	if err := c.PublishTo(node, rpcTopic, appendRequest(c.id, id, op, spark, room)); err != nil {
		return "", err
	}
	select {
	case r := <-ch:
		switch r.code {
		case replyOK:
			return r.text, nil
		case replyNotFound:
			return "", fmt.Errorf("%w: node %s no longer holds spark %s", ErrNotFound, node, spark)
		default:
			return "", fmt.Errorf("cluster: node %s: %s", node, r.text)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("cluster: no answer from node %s about spark %s: %w", node, spark, ctx.Err())
	case <-c.stopped:
		return "", ErrClosed
	}
}

// applyLocal applies op to a spark of this node.
func (c *Cluster) applyLocal(op byte, spark, room string) error {
	switch op {
	case opJoin, opLeave:
		p := c.presence.Load()
		if p == nil {
			return fmt.Errorf("cluster: node %s keeps no rooms (no Presence)", c.id)
		}
		if op == opJoin {
			return p.h.JoinByID(spark, room)
		}
		return p.h.LeaveByID(spark, room)
	case opEnd, opReconnect:
		sp, ok := c.srv.Spark(spark)
		if !ok {
			return fmt.Errorf("%w: spark %s", ErrNotFound, spark)
		}
		if op == opEnd {
			return sp.End()
		}
		return sp.Close()
	}
	return fmt.Errorf("cluster: unknown operation %q", op)
}

// handleRPC answers another node's request, or hands an answer to the
// request waiting for it.
func (c *Cluster) handleRPC(data []byte) {
	r := newReader(data)
	switch r.byte() {
	case msgRequest:
		from, id, op, spark, room := r.str(), r.num(), r.byte(), r.str(), r.str()
		if !r.done() || !validNode(from) {
			c.stats.malformed.Add(1)
			return
		}
		answer := func(text string, err error) {
			code := replyOK
			if errors.Is(err, ErrNotFound) {
				code = replyNotFound
			} else if err != nil {
				code, text = replyError, err.Error()
			}
			_ = c.PublishTo(from, rpcTopic, appendReply(id, code, text))
		}
		if op == opRelease {
			// It waits for the spark to end and the journal: not in the
			// broker's delivery goroutine.
			if c.jn == nil {
				answer("", fmt.Errorf("%w: node %s keeps no journal", ErrNotFound, c.id))
				return
			}
			if c.closed.Load() {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				answer(c.jn.answerRelease(spark))
			}()
			return
		}
		answer("", c.applyLocal(op, spark, room))
	case msgReply:
		id, code, text := r.num(), r.byte(), r.str()
		if !r.done() {
			c.stats.malformed.Add(1)
			return
		}
		c.rpc.mu.Lock()
		ch := c.rpc.waiting[id]
		c.rpc.mu.Unlock()
		if ch != nil {
			select {
			case ch <- reply{code: code, text: text}:
			default:
			}
		}
	default:
		c.stats.malformed.Add(1)
	}
}

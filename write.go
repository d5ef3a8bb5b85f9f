package primus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-primus/primus/transport"
)

// The write path.
//
// A message written to a spark is encoded once and either written at once
// by the goroutine that wrote it, or queued for a writer goroutine. Whoever
// writes holds the spark's write turn (Spark.writing), so messages go out in
// the order they were written. The writing goroutine writes inline when it
// is alone (no turn held, nothing queued) and the transport says the write
// completes at once (transport.WriteSpace: the kernel has room), which is
// what an echo or a broadcast to healthy clients looks like: no hand-over,
// no goroutine. Otherwise the message is queued, bounded by SendQueueBytes,
// and a writer goroutine is started for the occasion; it ends when the queue
// is empty. So an idle spark has no writer goroutine, a slow client never
// blocks the goroutine that writes to it (a broadcast, its reading
// goroutine), and order is kept.

type outFrame struct {
	data []byte
	end  bool // close the connection after writing this frame
}

// frameOverhead is what one queued frame costs beyond its buffer: its slot
// in the queue (twice over, since the queue's array grows by doubling) and
// the batch the writer holds.
const frameOverhead = 64

// frameCost is what a queued frame holds in memory: the whole buffer its
// bytes live in (a small message read into a larger buffer pins all of it),
// not only its length, so that SendQueueBytes bounds real memory.
func frameCost(data []byte) int64 { return int64(cap(data)) + frameOverhead }

// spareKeep is the largest queue array the writer keeps for reuse; a larger
// one, grown by a burst, is left to the garbage collector.
const spareKeep = 256

// closeGrace bounds how long a close frame may take to go out when the
// server closes a connection with a status (slow consumer, panic, invalid
// data) before the connection is cut.
const closeGrace = time.Second

// Write encodes v with the server's parser and sends it. It never blocks on
// the network: what cannot be written at once is queued, and when the queue
// would go over Options.SendQueueBytes the spark is closed and
// ErrSlowConsumer returned. It returns ErrClosed once the spark has ended
// (or is ending).
func (sp *Spark) Write(v any) error {
	if sp.srv.hasOutgoing {
		for _, h := range sp.srv.hooks {
			if h.Outgoing == nil {
				continue
			}
			out, pass, err := h.Outgoing(sp, v)
			if err != nil {
				return fmt.Errorf("primus: outgoing transform: %w", err)
			}
			if !pass {
				return nil
			}
			v = out
		}
	}
	data, err := sp.srv.encode(v)
	if err != nil {
		return err
	}
	return sp.enqueue(data, false)
}

// End writes "primus::server::close" after everything already queued and
// then closes the connection: the client ends and does not reconnect. It
// returns at once; Done tells when the spark has ended.
func (sp *Spark) End() error {
	b, err := sp.srv.parser.Encode(serverClose)
	if err != nil {
		return err
	}
	return sp.enqueue(b, true)
}

// Close closes the connection at once, dropping queued messages, without
// "primus::server::close": the client sees a lost connection and reconnects.
func (sp *Spark) Close() error {
	sp.abort(nil)
	return nil
}

// enqueue sends an encoded frame: inline when possible, otherwise through
// the queue and a writer goroutine.
func (sp *Spark) enqueue(data []byte, end bool) error {
	n := frameCost(data)
	sp.mu.Lock()
	if sp.state != stateOpen {
		sp.mu.Unlock()
		return ErrClosed
	}
	if !end && sp.queued > 0 && sp.queued+n > sp.srv.queueBytes {
		sp.mu.Unlock()
		sp.closeWith(ErrSlowConsumer, transport.StatusPolicyViolation, "slow consumer")
		return ErrSlowConsumer
	}
	if end {
		sp.state = stateEnding
	}
	if !sp.writing && !end && sp.space != nil {
		// Alone: take the turn and try to write inline.
		sp.writing = true
		sp.queued += n
		sp.mu.Unlock()
		if sp.space.Writable(len(data)) {
			err := sp.conn.Write(context.Background(), sp.srv.frameType, data)
			sp.mu.Lock()
			sp.queued -= n
			if err != nil {
				sp.mu.Unlock()
				sp.writeFailed(err)
				sp.releaseTurn()
				return nil // the connection is gone; the read loop ends the spark
			}
			sp.releaseTurnLocked()
			sp.mu.Unlock()
			return nil
		}
		// No room: queue it, ahead of anything queued meanwhile.
		sp.mu.Lock()
		sp.queued -= n
		if sp.state == stateClosed {
			sp.releaseTurnLocked()
			sp.mu.Unlock()
			return ErrClosed
		}
		sp.queue = append(sp.queue, outFrame{})
		copy(sp.queue[1:], sp.queue)
		sp.queue[0] = outFrame{data: data}
		sp.queued += n
		go sp.writeLoop() // the turn passes to the writer
		sp.mu.Unlock()
		return nil
	}
	sp.queue = append(sp.queue, outFrame{data: data, end: end})
	sp.queued += n
	if !sp.writing {
		sp.writing = true
		go sp.writeLoop()
	}
	sp.mu.Unlock()
	return nil
}

// releaseTurnLocked gives up the write turn, or hands it to a writer
// goroutine when frames were queued meanwhile. sp.mu is held.
func (sp *Spark) releaseTurnLocked() {
	if len(sp.queue) > 0 && sp.state != stateClosed {
		go sp.writeLoop()
		return
	}
	sp.writing = false
	if sp.writerDone != nil {
		close(sp.writerDone)
		sp.writerDone = nil
	}
}

func (sp *Spark) releaseTurn() {
	sp.mu.Lock()
	sp.releaseTurnLocked()
	sp.mu.Unlock()
}

// waitWriter waits until no one holds the write turn; the spark is closed,
// so no one takes it again.
func (sp *Spark) waitWriter() {
	sp.mu.Lock()
	if !sp.writing {
		sp.mu.Unlock()
		return
	}
	if sp.writerDone == nil {
		sp.writerDone = make(chan struct{})
	}
	ch := sp.writerDone
	sp.mu.Unlock()
	<-ch
}

// writeLoop is a writer goroutine: it holds the write turn and writes the
// queue until it is empty, then ends.
func (sp *Spark) writeLoop() {
	for {
		sp.mu.Lock()
		if sp.state == stateClosed || len(sp.queue) == 0 {
			sp.queue = sp.queue[:0]
			sp.releaseTurnLocked()
			sp.mu.Unlock()
			return
		}
		batch := sp.queue
		sp.queue, sp.spare = sp.spare[:0], nil
		sp.mu.Unlock()
		for i := range batch {
			f := batch[i]
			batch[i] = outFrame{}
			if !sp.writeFrame(f) {
				sp.releaseTurn()
				return
			}
		}
		if cap(batch) <= spareKeep {
			sp.mu.Lock()
			if sp.spare == nil && sp.state != stateClosed {
				sp.spare = batch[:0]
			}
			sp.mu.Unlock()
		}
	}
}

// writeFrame writes one frame from the writer goroutine, bounded by
// WriteTimeout, and reports whether the writer goes on.
func (sp *Spark) writeFrame(f outFrame) bool {
	var err error
	if sp.wdl != nil {
		_ = sp.wdl.SetWriteDeadline(time.Now().Add(sp.srv.writeTimeout))
		err = sp.conn.Write(context.Background(), sp.srv.frameType, f.data)
		_ = sp.wdl.SetWriteDeadline(time.Time{})
	} else {
		if sp.writeTimer == nil {
			// One timer for the spark's life, made by its first queued
			// write: resetting it costs nothing, where a context with a
			// deadline per write allocates.
			sp.writeTimer = time.AfterFunc(time.Hour, func() { sp.abort(ErrWriteTimeout) })
		}
		sp.writeTimer.Reset(sp.srv.writeTimeout)
		err = sp.conn.Write(context.Background(), sp.srv.frameType, f.data)
		sp.writeTimer.Stop()
	}
	sp.mu.Lock()
	sp.queued -= frameCost(f.data)
	closed := sp.state == stateClosed
	sp.mu.Unlock()
	if closed {
		return false
	}
	if err != nil {
		sp.writeFailed(err)
		return false
	}
	if f.end {
		// Close with a handshake (bounded by the transport); the read loop
		// receives the peer's answer and ends the spark.
		_ = sp.conn.Close(transport.StatusNormalClosure, "")
		_ = sp.conn.CloseNow()
		return false
	}
	return true
}

// writeFailed ends the spark after a failed write: a write deadline that
// passed is a write timeout; anything else means the connection is gone
// (the read loop sees it too).
func (sp *Spark) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		sp.abort(ErrWriteTimeout)
		return
	}
	sp.abort(nil)
}

// writeControl queues a protocol message, bypassing outgoing hooks.
func (sp *Spark) writeControl(msg string) {
	if b, err := sp.srv.parser.Encode(msg); err == nil {
		_ = sp.enqueue(b, false)
	}
}

// abort closes the connection at once. reason is reported to the error and
// end handlers; nil means an intentional close.
func (sp *Spark) abort(reason error) {
	if sp.markAborted(reason) {
		_ = sp.conn.CloseNow()
	}
}

// abortAsync is abort for the fan-out paths (a heartbeat tick): closing a
// transport can wait for its goroutines, and one slow client must not hold
// up the others.
func (sp *Spark) abortAsync(reason error) {
	if sp.markAborted(reason) {
		go func() { _ = sp.conn.CloseNow() }()
	}
}

// closeWith closes the connection with a status and reason the client can
// see, without waiting: the close frame is given closeGrace to go out, then
// the connection is cut. Queued messages are dropped. reason is what the
// error and end handlers are told.
func (sp *Spark) closeWith(reason error, code int, text string) {
	if sp.markAborted(reason) {
		go closeConn(sp.conn, code, text)
	}
}

// closeConn closes c with a status, bounded by closeGrace.
func closeConn(c transport.Conn, code int, text string) {
	t := time.AfterFunc(closeGrace, func() { _ = c.CloseNow() })
	_ = c.Close(code, text)
	t.Stop()
	_ = c.CloseNow()
}

// markAborted moves the spark to closed and reports whether it was this call
// that did.
func (sp *Spark) markAborted(reason error) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.state == stateClosed {
		return false
	}
	sp.state = stateClosed
	sp.dead.Store(true)
	sp.reason = reason
	sp.queue, sp.spare, sp.queued = nil, nil, 0
	return true
}

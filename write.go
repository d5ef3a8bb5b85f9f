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
//
// With recovery (recovery.go), every data frame carries a sequence number;
// once written it is retained until the client confirms it, and a frame
// whose write failed goes back to the front of the queue, so that a resumed
// client gets everything it missed, in order.

type outFrame struct {
	data []byte
	seq  uint64 // the data frame's number with recovery; 0 otherwise
	end  bool   // close the connection after writing this frame
	ctl  bool   // a control message: never counted, retained or replayed
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
// ErrSlowConsumer returned (with recovery, the spark is dropped instead and
// the message kept for its client). It returns ErrClosed once the spark has
// ended (or is ending).
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
	if sp.srv.journal != nil {
		return sp.journalWrite(data)
	}
	return sp.enqueue(data, false, false)
}

// End writes "primus::server::close" after everything already queued and
// then closes the connection: the client ends and does not reconnect. It
// returns at once; Done tells when the spark has ended. A dropped spark
// (recovery) ends at once.
func (sp *Spark) End() error {
	return sp.end(true)
}

// end is End; journaled, an open spark's end goes through the journal,
// after the messages written before, which are in it.
func (sp *Spark) end(journaled bool) error {
	b, err := sp.srv.parser.Encode(serverClose)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	dropped := sp.state == stateDropped
	sp.mu.Unlock()
	if dropped {
		sp.endDropped(nil, dropEnded)
		return nil
	}
	if j := sp.srv.journal; j != nil && journaled {
		return j.AppendEnd(sp)
	}
	return sp.enqueue(b, true, true)
}

// closeForRestart writes what is queued and closes the connection with 1001
// and without "primus::server::close", so that the client reconnects; the
// spark ends with ErrServerClosed (ShutdownReconnect).
func (sp *Spark) closeForRestart() error {
	sp.mu.Lock()
	if sp.state == stateOpen {
		sp.reason = ErrServerClosed
	}
	sp.mu.Unlock()
	return sp.enqueue(nil, true, true)
}

// Close closes the connection at once, dropping queued messages, without
// "primus::server::close": the client sees a lost connection and reconnects.
// With recovery, it resumes this spark and gets the queued messages then.
func (sp *Spark) Close() error {
	sp.abort(nil)
	return nil
}

// enqueue sends an encoded frame: inline when possible, otherwise through
// the queue and a writer goroutine. ctl marks a control message.
func (sp *Spark) enqueue(data []byte, end, ctl bool) error {
	n := frameCost(data)
	sp.mu.Lock()
	switch sp.state {
	case stateDropped:
		if ctl {
			sp.mu.Unlock()
			return nil // control messages belong to a connection
		}
		f := outFrame{data: data, seq: sp.rec.nextSeq()}
		sp.queue = append(sp.queue, f)
		sp.queued += n
		over := sp.rec.over(sp.queued, len(sp.queue))
		sp.mu.Unlock()
		if over {
			sp.endDropped(ErrRecoveryOverflow, dropOverflow)
			return ErrRecoveryOverflow
		}
		return nil
	case stateOpen:
	default:
		sp.mu.Unlock()
		return ErrClosed
	}
	f := outFrame{data: data, end: end, ctl: ctl}
	if !ctl && sp.rec != nil {
		f.seq = sp.rec.nextSeq()
	}
	if !end && sp.queued > 0 && sp.queued+n > sp.srv.queueBytes {
		if sp.rec != nil {
			// Kept for the resume: the client gets it when it is back.
			sp.queue = append(sp.queue, f)
			sp.queued += n
		}
		sp.mu.Unlock()
		sp.closeWith(ErrSlowConsumer, transport.StatusPolicyViolation, "slow consumer")
		if sp.rec != nil {
			return nil
		}
		return ErrSlowConsumer
	}
	if end {
		sp.state = stateEnding
	}
	l := sp.link.Load()
	if !sp.writing && !end && l.space != nil {
		// Alone: take the turn and try to write inline.
		sp.writing = true
		sp.queued += n
		sp.mu.Unlock()
		if l.space.Writable(len(data)) {
			t0 := sp.startWrite(l)
			err := l.conn.Write(context.Background(), sp.srv.frameType, data)
			sp.mu.Lock()
			sp.queued -= n
			if err != nil {
				sp.putBackLocked([]outFrame{f}, l)
				sp.mu.Unlock()
				sp.writeFailed(l, err)
				sp.releaseTurn()
				return nil // the connection is gone; the read loop ends (or drops) the spark
			}
			if f.seq != 0 {
				sp.rec.retain(f)
			}
			sp.releaseTurnLocked()
			sp.mu.Unlock()
			sp.wrote(t0, len(data))
			return nil
		}
		// No room: queue it, ahead of anything queued meanwhile; the turn
		// passes to a writer goroutine.
		sp.mu.Lock()
		sp.queued -= n
		if sp.state == stateClosed {
			sp.releaseTurnLocked()
			sp.mu.Unlock()
			return ErrClosed
		}
		sp.queue = append(sp.queue, outFrame{})
		copy(sp.queue[1:], sp.queue)
		sp.queue[0] = f
		sp.queued += n
		queued := sp.queued
		go sp.writeLoop()
		sp.mu.Unlock()
		sp.observeQueued(queued)
		return nil
	}
	sp.queue = append(sp.queue, f)
	sp.queued += n
	queued := sp.queued
	if !sp.writing {
		sp.writing = true
		go sp.writeLoop()
	}
	sp.mu.Unlock()
	sp.observeQueued(queued)
	return nil
}

// putBackLocked returns frames that were taken for link l but not written
// to the front of the queue, when the spark keeps them for a resume: data
// frames only, control messages belong to l. sp.mu is held.
func (sp *Spark) putBackLocked(frames []outFrame, l *link) {
	if sp.rec == nil {
		return
	}
	var keep []outFrame
	for _, f := range frames {
		if !f.ctl && f.seq != 0 {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return
	}
	for _, f := range keep {
		sp.queued += frameCost(f.data)
	}
	sp.queue = append(keep, sp.queue...)
}

// releaseTurnLocked gives up the write turn, or hands it to a writer
// goroutine when frames were queued meanwhile for a link that can take
// them. sp.mu is held.
func (sp *Spark) releaseTurnLocked() {
	if len(sp.queue) > 0 && (sp.state == stateOpen || sp.state == stateEnding) {
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

// waitWriter waits until no one holds the write turn. The caller has made
// sure that no one takes it again for the link it is done with (the spark is
// closed or dropped).
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
// queue to the current link until it is empty, then ends.
func (sp *Spark) writeLoop() {
	for {
		sp.mu.Lock()
		l := sp.link.Load()
		if (sp.state != stateOpen && sp.state != stateEnding) || l == nil || len(sp.queue) == 0 {
			if sp.state == stateClosed {
				sp.queue = sp.queue[:0]
			}
			sp.writing = false
			if sp.writerDone != nil {
				close(sp.writerDone)
				sp.writerDone = nil
			}
			sp.mu.Unlock()
			return
		}
		batch := sp.queue
		sp.queue, sp.spare = sp.spare[:0], nil
		sp.mu.Unlock()
		for i := range batch {
			goOn, written := sp.writeFrame(l, batch[i])
			if !goOn {
				if written {
					i++ // retained already: not to be written again
				}
				sp.mu.Lock()
				sp.putBackLocked(batch[i:], l)
				sp.mu.Unlock()
				sp.releaseTurn()
				return
			}
			batch[i] = outFrame{}
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

// writeFrame writes one frame to l from the writer goroutine, bounded by
// WriteTimeout, and reports whether the writer goes on, and whether the
// frame was written.
func (sp *Spark) writeFrame(l *link, f outFrame) (goOn, written bool) {
	var err error
	t0 := sp.startWrite(l)
	if f.data == nil {
		// Nothing to write: a close for a restart.
	} else if l.wdl != nil {
		_ = l.wdl.SetWriteDeadline(time.Now().Add(sp.srv.writeTimeout))
		err = l.conn.Write(context.Background(), sp.srv.frameType, f.data)
		_ = l.wdl.SetWriteDeadline(time.Time{})
	} else {
		if l.writeTimer == nil {
			// One timer for the link's life, made by its first queued
			// write: resetting it costs nothing, where a context with a
			// deadline per write allocates.
			l.writeTimer = time.AfterFunc(time.Hour, func() { sp.abortLink(l, ErrWriteTimeout) })
		}
		l.writeTimer.Reset(sp.srv.writeTimeout)
		err = l.conn.Write(context.Background(), sp.srv.frameType, f.data)
		l.writeTimer.Stop()
	}
	sp.mu.Lock()
	current := sp.link.Load() == l && (sp.state == stateOpen || sp.state == stateEnding)
	if err == nil {
		sp.queued -= frameCost(f.data)
		if f.seq != 0 && sp.rec != nil {
			sp.rec.retain(f)
		}
	}
	sp.mu.Unlock()
	if err != nil {
		sp.writeFailed(l, err)
		return false, false
	}
	if f.data != nil {
		sp.wrote(t0, len(f.data))
	}
	if !current {
		return false, true
	}
	if f.end {
		// Close with a handshake (bounded by the transport); the read loop
		// receives the peer's answer and ends the spark.
		code, text := transport.StatusNormalClosure, ""
		if f.data == nil {
			code, text = transport.StatusGoingAway, "server restarting" // closeForRestart
		}
		_ = l.conn.Close(code, text)
		_ = l.conn.CloseNow()
		return false, true
	}
	return true, true
}

// writeFailed cuts link l after a failed write: a write deadline that
// passed is a write timeout; anything else means the connection is gone
// (the read loop sees it too).
func (sp *Spark) writeFailed(l *link, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		sp.abortLink(l, ErrWriteTimeout)
		return
	}
	sp.abortLink(l, nil)
}

// writeControl queues a protocol message, bypassing outgoing hooks.
func (sp *Spark) writeControl(msg string) {
	if b, err := sp.srv.parser.Encode(msg); err == nil {
		_ = sp.enqueue(b, false, true)
	}
}

// abort closes the connection at once. reason is reported to the error and
// end handlers; nil means an intentional close. With recovery, a reason
// that a client can come back from (nil, a heartbeat or write timeout, a
// slow consumer) drops the spark instead of ending it.
func (sp *Spark) abort(reason error) {
	if l := sp.cut(reason); l != nil {
		_ = l.conn.CloseNow()
	}
}

// abortLink is abort for link l only: nothing happens when the spark has
// moved on to another link.
func (sp *Spark) abortLink(l *link, reason error) {
	if sp.link.Load() != l {
		_ = l.conn.CloseNow()
		return
	}
	sp.abort(reason)
}

// abortAsync is abort for the fan-out paths (a heartbeat tick): closing a
// transport can wait for its goroutines, and one slow client must not hold
// up the others.
func (sp *Spark) abortAsync(reason error) {
	if l := sp.cut(reason); l != nil {
		go func() { _ = l.conn.CloseNow() }()
	}
}

// closeWith closes the connection with a status and reason the client can
// see, without waiting: the close frame is given closeGrace to go out, then
// the connection is cut. reason is what the error and end handlers are
// told.
func (sp *Spark) closeWith(reason error, code int, text string) {
	if l := sp.cut(reason); l != nil {
		go closeConn(l.conn, code, text)
	}
}

// closeConn closes c with a status, bounded by closeGrace.
func closeConn(c transport.Conn, code int, text string) {
	t := time.AfterFunc(closeGrace, func() { _ = c.CloseNow() })
	_ = c.Close(code, text)
	t.Stop()
	_ = c.CloseNow()
}

// cut marks the current link as cut by the server for reason and returns
// it, for the caller to close; nil when there is nothing to cut (the spark
// has ended, is being ended, or is dropped). A reason the client can resume
// from leaves the spark's state to linkEnded, which drops it; any other one
// closes the spark: queued messages are dropped and the spark ends with
// reason once its read loop has stopped.
func (sp *Spark) cut(reason error) *link {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	l := sp.link.Load()
	if l == nil || sp.state == stateClosed || sp.state == stateDropped || l.dead.Load() {
		return nil
	}
	l.dead.Store(true)
	l.lost = reason
	if sp.rec != nil && sp.state == stateOpen && resumable(reason) {
		return l
	}
	sp.state = stateClosed
	sp.reason = reason
	sp.queue, sp.spare, sp.queued = nil, nil, 0
	return l
}

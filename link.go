package primus

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-primus/primus/transport"
)

// A link is one transport connection of a spark. A spark has one at a time;
// with recovery (recovery.go), a spark whose link was lost keeps its state,
// its queue and its unconfirmed messages, and gets a new link when its
// client resumes.
type link struct {
	sp    *Spark
	conn  transport.Conn
	space transport.WriteSpace     // nil when conn cannot say; see write.go
	wdl   transport.WriteDeadliner // nil when conn has no write deadline
	idle  transport.IdleReader     // nil when conn cannot move its reading

	alive atomic.Bool   // heard from since the last heartbeat
	dead  atomic.Bool   // lost or closing: what it still reads is dropped
	reads atomic.Uint32 // messages read, for sweepIdle
	fresh atomic.Bool   // the reading goroutine is new and has read nothing
	swept uint32        // reads at sweepIdle's last look; the housekeeping loop's
	// detached is set once the reading left the transformer's goroutine;
	// the reading goroutine's.
	detached bool
	// readDone is closed when the read loop has ended (and handed the link
	// to linkEnded).
	readDone chan struct{}

	// lost is why the server cut the link (nil: the peer went away); set
	// under sp.mu before the connection is closed.
	lost error

	// oldCreds are, after a resume, the credentials the client held before
	// it, good until its first frame on this link (recovery.go); the
	// reading goroutine's once the link runs.
	oldCreds []string
	claim    *claim // the hold on the credential this link resumed with

	writeTimer *time.Timer // for transports without write deadlines; the write turn holder's
	writes     uint32      // writes, for sampling their durations (observe.go); the write turn holder's
}

func newLink(sp *Spark, c transport.Conn) *link {
	l := &link{sp: sp, conn: c, readDone: make(chan struct{})}
	l.space, _ = c.(transport.WriteSpace)
	l.wdl, _ = c.(transport.WriteDeadliner)
	l.idle, _ = c.(transport.IdleReader)
	l.alive.Store(true)
	return l
}

// run drives the link: start (the connection or resume handlers) runs
// first, in the transformer's goroutine, then the read loop, which ends the
// link. It is called by Server.accept.
func (l *link) run(start func()) {
	if po, ok := l.conn.(transport.PingObserver); ok {
		po.OnPing(func() { l.alive.Store(true) })
	}
	start()
	if l.idle != nil {
		// Read from a goroutine of its own from the start, so that the
		// handshake's (grown) stack is not what the connection keeps.
		l.detached = true
		l.idle.Detach()
		l.fresh.Store(true)
		go l.readLoop()
		return
	}
	l.readLoop()
}

// readLoop reads the link until it ends. When the housekeeping loop wakes
// an idle connection's read (transport.IdleReader), the loop goes on in a
// fresh goroutine, whose small stack is all the idle spark then holds, and
// this one (its stack grown by the messages it handled) ends.
func (l *link) readLoop() {
	var readErr error
	for {
		typ, data, err := l.conn.Read(context.Background()) // a cancellable context costs two allocations per read in coder/websocket; CloseNow ends the read instead
		if err != nil {
			if errors.Is(err, transport.ErrWoken) && l.detached {
				l.fresh.Store(true)
				go l.readLoop()
				return
			}
			readErr = err
			break
		}
		l.reads.Add(1)
		if l.fresh.Load() {
			l.fresh.Store(false)
		}
		l.sp.handle(l, typ, data)
	}
	close(l.readDone)
	l.sp.linkEnded(l, readErr)
}

// sweepIdle is the housekeeping loop's look at a link: one whose reading
// goroutine has handled messages and that has read nothing since the last
// look is woken, so that its reading moves to a fresh goroutine.
func (l *link) sweepIdle() {
	if l.idle == nil || l.fresh.Load() {
		return
	}
	if r := l.reads.Load(); r != l.swept {
		l.swept = r
		return
	}
	l.idle.Wake()
}

// idleSweep is how often the housekeeping loop looks for idle links to move
// to a fresh reading goroutine: a link is moved after one to two of these
// without a message.
const idleSweep = time.Second

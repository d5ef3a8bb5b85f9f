package primus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/internal/tcpproxy"
)

// answerJournal is a Journal that delivers writes at once and answers
// resumes with the errors it is given, one per call.
type answerJournal struct {
	host    *primus.JournalHost
	answers []error
	calls   atomic.Int32
}

func (j *answerJournal) Opened(*primus.Spark) {}
func (j *answerJournal) Append(sp *primus.Spark, data []byte) error {
	return j.host.Deliver(sp, data)
}
func (j *answerJournal) AppendEnd(sp *primus.Spark) error { return j.host.End(sp) }
func (j *answerJournal) Resume(context.Context, string, uint64) (primus.Handoff, error) {
	i := int(j.calls.Add(1)) - 1
	return primus.Handoff{}, j.answers[min(i, len(j.answers)-1)]
}
func (j *answerJournal) Issued(*primus.Spark, string)            {}
func (j *answerJournal) Revoked(*primus.Spark, []string)         {}
func (j *answerJournal) Confirmed(*primus.Spark, uint64, uint64) {}
func (j *answerJournal) Ended(*primus.Spark, error)              {}
func (j *answerJournal) Kept(*primus.Spark)                      {}

// TestJournalResumeAnswers: a client that resumes on a server that does
// not know its credential is answered by the server's Journal. An error
// that is not about the spark (its broker is slow) closes the connection,
// and the client tries again; ErrRecoveryOverflow and ErrRecoveryUnknown
// give it a new spark, with that reason.
func TestJournalResumeAnswers(t *testing.T) {
	t.Parallel()
	for _, last := range []error{primus.ErrRecoveryOverflow, primus.ErrRecoveryUnknown} {
		t.Run(last.Error(), func(t *testing.T) {
			t.Parallel()
			first := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
			second := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
			j := &answerJournal{answers: []error{errors.New("the broker is slow"), last}}
			var err error
			if j.host, err = second.srv.SetJournal(j); err != nil {
				t.Fatal(err)
			}
			if _, err := second.srv.SetJournal(j); err == nil {
				t.Error("a second SetJournal did not fail")
			}
			ev := waitFor(t, moveClient(t, first, second), "OnResume")
			if ev.Recovered || !errors.Is(ev.Reason, last) {
				t.Errorf("OnResume(%+v), want not recovered, %v", ev, last)
			}
			if n := j.calls.Load(); n != 2 {
				t.Errorf("the journal was asked %d times, want 2 (the client tries again after the first answer)", n)
			}
			waitFor(t, second.sparks, "a new spark")
		})
	}
}

// TestJournalTryAgainBacksOff: a server whose journal keeps failing (its
// broker is away) closes each resuming connection before the greeting; the
// client counts each as a failed attempt and gives up after its Retries,
// instead of reconnecting in a tight loop.
func TestJournalTryAgainBacksOff(t *testing.T) {
	t.Parallel()
	first := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	second := startRecoveryServer(t, &primus.Recovery{Window: time.Minute}, nil)
	j := &answerJournal{answers: []error{errors.New("the broker is away")}}
	var err error
	if j.host, err = second.srv.SetJournal(j); err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.New(t, first.ts.Listener.Addr().String())
	c := first.dial(t, "", &primus.ClientOptions{Reconnect: primus.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond, Retries: 3}}, proxy)
	c.id()
	proxy.SetTarget(second.ts.Listener.Addr().String())
	if err := first.srv.ShutdownReconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("the client still reconnects after %d answers", j.calls.Load())
	}
	if err := c.Err(); !errors.Is(err, primus.ErrReconnectFailed) {
		t.Errorf("the client ended with %v, want ErrReconnectFailed", err)
	}
	if n := j.calls.Load(); n != 3 {
		t.Errorf("the journal was asked %d times, want 3 (Retries)", n)
	}
}

package primus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
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

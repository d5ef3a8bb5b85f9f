package rooms_test

import (
	"slices"
	"testing"

	"github.com/go-primus/primus"
	pt "github.com/go-primus/primus/internal/plugintest"
)

// TestPanickingMemberLeaves: rooms run no user code of their own, but a
// member whose handler panics ends like any other spark (1011, a
// *primus.PanicError), leaves its rooms with it, and the room's writes
// still reach everyone else.
func TestPanickingMemberLeaves(t *testing.T) {
	t.Parallel()
	pt.ForEach(t, func(t *testing.T, fl pt.Flavour) {
		w := newWorld(t, fl, 3, false)
		for _, m := range w.m {
			join(t, w.rooms, m, "r")
		}
		ended := make(chan error, 1)
		victim := w.m[0]
		victim.spark.OnEnd(func(err error) { ended <- err })
		victim.spark.OnData(func(*primus.Message) { panic("boom") })
		if err := victim.client.Write("trigger"); err != nil {
			t.Fatal(err)
		}
		pt.IsPanic(t, pt.Recv(t, ended, "the victim's end"), "boom")
		pt.Recv(t, victim.spark.Done(), "the victim's Done")
		if got, want := w.rooms.Room("r").Members(), []string{w.m[1].spark.ID(), w.m[2].spark.ID()}; !slices.Equal(got, sortedCopy(want)) {
			t.Errorf("members %v, want %v", got, want)
		}
		if err := w.rooms.Room("r").Write(note{"after"}); err != nil {
			t.Fatal(err)
		}
		for _, m := range w.m[1:] {
			if got := m.next(t); got != "after" {
				t.Errorf("a member got %q, want the room's write", got)
			}
		}
	})
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var nodeURLRE = regexp.MustCompile(`^node \d+: open (http://\S+) in a browser`)

// startClusterExample runs examples/cluster with its embedded NATS and n
// nodes on free loopback ports, and returns the nodes' URLs. It gets
// SIGTERM when the test ends and must exit cleanly.
func startClusterExample(t *testing.T, n int) []string {
	t.Helper()
	bin, err := exampleBinary("cluster")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-nodes", strconv.Itoa(n))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, n)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := nodeURLRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	var logMu sync.Mutex
	var logLines []string
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logLines = append(logLines, sc.Text())
			logMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() {
			readers.Wait()
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("examples/cluster did not exit cleanly on SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("examples/cluster did not exit within 10 s of SIGTERM; killed")
		}
		logMu.Lock()
		defer logMu.Unlock()
		for _, l := range logLines {
			t.Logf("examples/cluster: %s", l)
		}
	})
	var out []string
	for range n {
		select {
		case u := <-urls:
			out = append(out, u)
		case <-time.After(testTimeout):
			t.Fatalf("examples/cluster printed %d node URLs within %v, want %d", len(out), testTimeout, n)
		}
	}
	return out
}

// TestClusterExample runs examples/cluster's chat with Ann on node 1 and Bob
// on node 2, in two tabs: each sees the other in the room (Bob learns of
// Ann from node 1), messages cross nodes both ways, and Ann sees Bob leave
// when his tab closes. The screenshot of Ann's tab is kept (see
// artifactDir).
func TestClusterExample(t *testing.T) {
	t.Parallel()
	urls := startClusterExample(t, 2)
	b := newBrowser(t)
	ann, _ := b.tab(1)
	bob, closeBob := b.tab(2)
	screenshotAtEnd(t, ann, "cluster.png")

	join := func(ctx context.Context, url, name, node string) {
		t.Helper()
		do(t, ctx,
			chromedp.Navigate(url),
			waitJS(textOf("status")+` === 'connected'`),
			chromedp.SendKeys(chromedp.CSS("#name"), name),
			chromedp.SetValue(chromedp.CSS("#room"), "gophers"),
			chromedp.Click(chromedp.CSS("#join-button")),
			waitJS(textOf("room-title")+` === 'Room gophers' && `+textOf("node")+` === 'on `+node+`'`),
		)
	}
	join(ann, urls[0], "Ann", "node 1")
	join(bob, urls[1], "Bob", "node 2")
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob joined.') && `+textOf("members")+`.includes('Bob')`))
	do(t, bob, waitJS(textOf("members")+`.includes('Ann') && `+textOf("members")+`.includes('Bob (you)')`))

	say := func(ctx context.Context, text string) {
		t.Helper()
		do(t, ctx, chromedp.SendKeys(chromedp.CSS("#text"), text), chromedp.Click(chromedp.CSS("#send")))
	}
	say(bob, "hello from node 2")
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob: hello from node 2')`))
	say(ann, "hi Bob, node 1 here")
	do(t, bob, waitJS(textOf("messages")+`.includes('Ann: hi Bob, node 1 here')`))

	closeBob()
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob left.') && !`+textOf("members")+`.includes('Bob')`))
}

package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// screenshotAtEnd takes a screenshot of the tab when the test ends, passed
// or failed, before the browser closes.
func screenshotAtEnd(t *testing.T, ctx context.Context, name string) {
	dir := artifactDir(t)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, testTimeout)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		saveArtifact(t, dir, name, png)
	})
}

// textOf is a JavaScript expression for the text of the element with the id.
func textOf(id string) string {
	return fmt.Sprintf("document.getElementById(%q).textContent", id)
}

// TestEchoExample opens examples/echo, which now uses the served client,
// and echoes a message.
func TestEchoExample(t *testing.T) {
	t.Parallel()
	ex := startExample(t, "echo")
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	do(t, ctx,
		chromedp.Navigate(ex.URL),
		waitJS(textOf("status")+` === 'open'`),
		waitJS(textOf("log")+`.includes('spark id ')`),
		chromedp.SendKeys(chromedp.CSS("#text"), "hello echo"),
		chromedp.Click(chromedp.CSS("#form button")),
		waitJS(textOf("log")+`.includes('← "hello echo"')`),
	)
}

// TestChatExample runs examples/chat between two tabs: both join a room,
// each sees the other join, messages go both ways, and the first sees the
// second leave when its tab closes. The screenshot of the first tab is kept
// (see artifactDir).
func TestChatExample(t *testing.T) {
	t.Parallel()
	ex := startExample(t, "chat")
	b := newBrowser(t)
	ann, _ := b.tab(1)
	bob, closeBob := b.tab(2)
	screenshotAtEnd(t, ann, "chat.png")

	join := func(ctx context.Context, name string) {
		t.Helper()
		do(t, ctx,
			chromedp.Navigate(ex.URL),
			waitJS(textOf("status")+` === 'connected'`),
			chromedp.SendKeys(chromedp.CSS("#name"), name),
			chromedp.SetValue(chromedp.CSS("#room"), "gophers"),
			chromedp.Click(chromedp.CSS("#join-button")),
			waitJS(textOf("room-title")+` === 'Room gophers'`),
		)
	}
	join(ann, "Ann")
	join(bob, "Bob")
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob joined.') && `+textOf("members")+`.includes('Bob')`))
	do(t, bob, waitJS(textOf("members")+`.includes('Ann') && `+textOf("members")+`.includes('Bob (you)')`))

	say := func(ctx context.Context, text string) {
		t.Helper()
		do(t, ctx, chromedp.SendKeys(chromedp.CSS("#text"), text), chromedp.Click(chromedp.CSS("#send")))
	}
	say(bob, "hello from Bob")
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob: hello from Bob')`))
	say(ann, "hi Bob, Ann here")
	do(t, bob, waitJS(textOf("messages")+`.includes('Ann: hi Bob, Ann here')`))
	do(t, ann, waitJS(textOf("messages")+`.includes('Ann: hi Bob, Ann here')`))

	closeBob()
	do(t, ann, waitJS(textOf("messages")+`.includes('Bob left.') && !`+textOf("members")+`.includes('Bob')`))
	ex.waitLog(t, "Bob left gophers")
}

// TestActionsExample runs examples/actions through its story: an anonymous
// visitor may list items but not add one; carol logs in, adds an item (the
// backend is called), is refused a delete that needs the Admin role (the
// error is shown and the backend never sees the call), and logs out; a
// forged session cookie makes the server refuse the connection.
func TestActionsExample(t *testing.T) {
	t.Parallel()
	ex := startExample(t, "actions")
	b := newBrowser(t)
	ctx, _ := b.tab(1)
	screenshotAtEnd(t, ctx, "actions.png")
	latest := `(document.querySelector('#results div')?.textContent ?? '')`

	do(t, ctx,
		chromedp.Navigate(ex.URL),
		waitJS(textOf("who")+` === 'nobody (anonymous)'`),
		// Without authorisation: anybody may list.
		chromedp.Click(chromedp.CSS("#list")),
		waitJS(latest+`.startsWith('items.list ✓') && `+latest+`.includes('welcome kit')`),
		// An action that needs a user is refused.
		chromedp.Click(chromedp.CSS("#add")),
		waitJS(latest+`.startsWith('items.add ✗ not allowed: log in')`),
	)
	ex.waitLog(t, "backend: GET /items by anonymous")
	if n := ex.countLog("backend: POST"); n != 0 {
		t.Fatalf("the backend got %d POSTs from an anonymous user", n)
	}

	// Log in as carol: the form sets the signed cookie and reloads the page.
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#password"), "demo"),
	)
	navigate(t, ctx, chromedp.Click(chromedp.CSS("#login-button")))
	do(t, ctx,
		waitJS(textOf("who")+` === 'carol (user)'`),
		// Allowed: carol adds an item through the backend.
		chromedp.SetValue(chromedp.CSS("#item-name"), "e2e item"),
		chromedp.Click(chromedp.CSS("#add")),
		waitJS(latest+`.startsWith('items.add ✓') && `+latest+`.includes('"by":"carol"')`),
	)
	ex.waitLog(t, "backend: POST /items by carol (user)")

	// Forbidden: deleting needs Admin. The error is shown, and the next
	// action's reply (actions of a connection are handled in order) proves
	// the delete was finished without reaching the backend.
	do(t, ctx,
		chromedp.Click(chromedp.CSS("#delete")),
		waitJS(latest+` === 'items.delete ✗ forbidden: items.delete needs the Admin role, and carol is a user'`),
		waitJS(`getComputedStyle(document.querySelector('#results div')).color === 'rgb(187, 0, 0)'`),
		chromedp.Click(chromedp.CSS("#list")),
		waitJS(latest+`.startsWith('items.list ✓') && `+latest+`.includes('e2e item')`),
	)
	ex.waitLog(t, "refused items.delete for carol")
	if n := ex.countLog("backend: DELETE"); n != 0 {
		t.Fatalf("the backend got %d DELETEs: a forbidden action reached it", n)
	}

	// Log out: anonymous again, and adding is refused again.
	navigate(t, ctx, chromedp.Click(chromedp.CSS("#logout-button")))
	do(t, ctx,
		waitJS(textOf("who")+` === 'nobody (anonymous)'`),
		chromedp.Click(chromedp.CSS("#add")),
		waitJS(latest+`.startsWith('items.add ✗ not allowed: log in')`),
	)

	// A forged session cookie: srv.Authorize refuses the connection, and
	// the client gives up instead of retrying.
	eval[chromedp.Void](t, ctx, `document.cookie = 'session=Y2Fyb2x8OTk5OTk5OTk5OQ.forged; path=/'`)
	do(t, ctx,
		chromedp.Navigate(ex.URL),
		waitJS(textOf("status")+` === 'disconnected (log in again)'`),
		waitJS(textOf("results")+`.includes('could not connect (the WebSocket connection to ws://') && `+textOf("who")+` === 'nobody (not connected)'`),
	)
}

// navigate runs an action that makes the tab navigate (a form submission)
// and waits for the new page's response.
func navigate(t *testing.T, ctx context.Context, action chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, action); err != nil {
		t.Fatalf("browser: navigation: %v", err)
	}
}

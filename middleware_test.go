package primus_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-primus/primus"
)

// recorder returns a middleware that records its name when it runs.
func recorder(mu *sync.Mutex, ran *[]string, name string) primus.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			*ran = append(*ran, name)
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
}

func TestMiddlewareOrder(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		var mu sync.Mutex
		var ran []string
		take := func() []string {
			mu.Lock()
			defer mu.Unlock()
			r := ran
			ran = nil
			return r
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(h.srv.Use("a", recorder(&mu, &ran, "a")))
		must(h.srv.Use("b", recorder(&mu, &ran, "b")))
		h.srv.Authorize(func(*http.Request) error {
			mu.Lock()
			ran = append(ran, "authorize")
			mu.Unlock()
			return nil
		})

		h.dial(t, "", nil)
		var want []string
		for range max(fl.handshakeRequests, 1) {
			want = append(want, "a", "b", "authorize")
		}
		if got := take(); !slices.Equal(got, want) {
			t.Errorf("handshake ran %v, want %v", got, want)
		}
		// Plain HTTP under the pathname runs them too; the spec does not.
		get(t, h.url, nil)
		if got, want := take(), []string{"a", "b", "authorize"}; !slices.Equal(got, want) {
			t.Errorf("plain GET ran %v, want %v", got, want)
		}
		get(t, h.url+"/spec", nil)
		if got := take(); len(got) != 0 {
			t.Errorf("the spec ran %v, want nothing", got)
		}

		// Using a name again replaces the layer in place.
		must(h.srv.Use("a", recorder(&mu, &ran, "a2")))
		if got, want := h.srv.Middlewares(), []string{"a", "b"}; !slices.Equal(got, want) {
			t.Errorf("Middlewares() = %v, want %v", got, want)
		}
		get(t, h.url, nil)
		if got, want := take(), []string{"a2", "b", "authorize"}; !slices.Equal(got, want) {
			t.Errorf("after replacing a: ran %v, want %v", got, want)
		}

		if !h.srv.Remove("b") {
			t.Error(`Remove("b") = false`)
		}
		if h.srv.Remove("b") || h.srv.Remove("nope") {
			t.Error("Remove of a missing layer = true")
		}
		h.srv.Authorize(nil)
		get(t, h.url, nil)
		if got, want := take(), []string{"a2"}; !slices.Equal(got, want) {
			t.Errorf("after Remove and Authorize(nil): ran %v, want %v", got, want)
		}
		if got := h.srv.Middlewares(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("Middlewares() = %v, want [a]", got)
		}

		if err := h.srv.Use("", recorder(&mu, &ran, "x")); err == nil {
			t.Error(`Use("") succeeded`)
		}
		if err := h.srv.Use("x", nil); err == nil {
			t.Error("Use with a nil middleware succeeded")
		}
	})
}

type ctxKey struct{}

func TestMiddlewareContextReachesSpark(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		err := h.srv.Use("user", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := context.WithValue(r.Context(), ctxKey{}, "user-42")
				next.ServeHTTP(w, r.WithContext(ctx))
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		se := watchSparks(h.srv)
		h.dial(t, "", nil)
		sp := se.conns.next(t, "spark")
		if got := sp.Context().Value(ctxKey{}); got != "user-42" {
			t.Errorf("spark.Context().Value = %v, want user-42", got)
		}
		if err := sp.Context().Err(); err != nil {
			t.Errorf("spark.Context() already done: %v", err)
		}
	})
}

func TestMiddlewareRefusals(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		for _, tc := range []struct {
			name       string
			err        error
			status     int
			body       string
			authHeader string
		}{
			{"forbidden", &primus.HTTPError{Status: http.StatusForbidden, Message: "Go away!"}, 403, `{"error":"Go away!"}`, ""},
			{"authenticate", &primus.HTTPError{Message: "Authentication required", Authenticate: `Basic realm="x"`}, 401, `{"error":"Authentication required"}`, `Basic realm="x"`},
			{"authenticate only on 401", &primus.HTTPError{Status: 403, Message: "no", Authenticate: `Basic realm="x"`}, 403, `{"error":"no"}`, ""},
			// Only an HTTPError's Message is for clients: other errors' text
			// (a database address, a user name) stays on the server.
			{"plain error", errors.New("db 10.0.0.7:5432: user alice not found"), 401, `{"error":"Unauthorized"}`, ""},
			{"status method", statusErr{429}, 429, `{"error":"Too Many Requests"}`, ""},
			{"wrapped", wrapErr{&primus.HTTPError{Status: 418, Message: "teapot"}}, 418, `{"error":"teapot"}`, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				h := startServer(t, fl, nil)
				h.srv.Authorize(func(*http.Request) error { return tc.err })

				check := func(what string, status int, header http.Header, body string) {
					t.Helper()
					if status != tc.status || body != tc.body {
						t.Errorf("%s: %d %s, want %d %s", what, status, body, tc.status, tc.body)
					}
					if got := header.Get("WWW-Authenticate"); got != tc.authHeader {
						t.Errorf("%s: WWW-Authenticate %q, want %q", what, got, tc.authHeader)
					}
					if ct := header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("%s: Content-Type %q", what, ct)
					}
				}
				resp, body := get(t, h.url, nil)
				check("plain GET", resp.StatusCode, resp.Header, body)
				_, err := h.dialErr(t, "", nil)
				he := handshakeError(t, err)
				check("handshake", he.StatusCode, he.Header, string(he.Body))

				// The spec stays public.
				if resp, _ := get(t, h.url+"/spec", nil); resp.StatusCode != 200 {
					t.Errorf("spec: %d, want 200", resp.StatusCode)
				}
			})
		}
	})
}

// statusErr carries its status through a StatusCode method.
type statusErr struct{ code int }

func (statusErr) Error() string     { return "slow down" }
func (e statusErr) StatusCode() int { return e.code }

// wrapErr wraps an *HTTPError.
type wrapErr struct{ err error }

func (e wrapErr) Error() string { return "wrapped: " + e.err.Error() }
func (e wrapErr) Unwrap() error { return e.err }

func TestMiddlewareRefuse(t *testing.T) {
	t.Parallel()
	forEachFlavour(t, func(t *testing.T, fl flavour) {
		h := startServer(t, fl, nil)
		var authorized atomic.Bool
		h.srv.Authorize(func(*http.Request) error { authorized.Store(true); return nil })
		err := h.srv.Use("limit", func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("limited") != "" {
					primus.Refuse(w, &primus.HTTPError{Status: http.StatusTooManyRequests, Message: "slow down"})
					return
				}
				next.ServeHTTP(w, r)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.dialErr(t, "limited=1", nil)
		if he := handshakeError(t, err); he.StatusCode != http.StatusTooManyRequests || string(he.Body) != `{"error":"slow down"}` {
			t.Errorf("refusal %d %s", he.StatusCode, he.Body)
		}
		if authorized.Load() {
			t.Error("Authorize ran after a middleware refused the request")
		}
		c := h.dial(t, "", nil)
		c.id()
	})
}

func TestRefuseDefault(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	primus.Refuse(rec, nil)
	if rec.Code != 401 || rec.Body.String() != `{"error":"Unauthorized"}` {
		t.Errorf("Refuse(nil): %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	primus.Refuse(rec, statusErr{200}) // not an error status: 401
	if rec.Code != 401 {
		t.Errorf("Refuse with status 200: %d, want 401", rec.Code)
	}
}

// TestPreflightSkipsAuthorize: a CORS preflight has no credentials to show,
// so Authorize does not see it; the request that follows is checked.
func TestPreflightSkipsAuthorize(t *testing.T) {
	t.Parallel()
	h := startServer(t, flavours()[0], nil)
	var calls atomic.Int32
	h.srv.Authorize(func(*http.Request) error {
		calls.Add(1)
		return errors.New("no credentials")
	})
	req, err := http.NewRequest(http.MethodOptions, h.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://other.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || calls.Load() != 0 {
		t.Fatalf("preflight: status %d, Authorize called %d times", resp.StatusCode, calls.Load())
	}
	if resp, _ := get(t, h.url, nil); resp.StatusCode != http.StatusUnauthorized || calls.Load() != 1 {
		t.Fatalf("GET after preflight: status %d, Authorize called %d times", resp.StatusCode, calls.Load())
	}
}

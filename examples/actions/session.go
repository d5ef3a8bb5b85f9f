package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-primus/primus"
)

// User is who a connection belongs to; nil means nobody has logged in.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// users is the demo's user directory: name → role. Every password is
// "demo".
var users = map[string]Role{
	"alice": SuperAdmin,
	"bob":   Admin,
	"carol": RoleUser,
}

const (
	cookieName  = "session"
	sessionLife = 8 * time.Hour
)

// sessions signs and checks session cookies: "<name>|<expiry>" and its
// HMAC-SHA256 under a key made at start-up (so restarting the example logs
// everybody out).
type sessions struct {
	key []byte
}

func newSessions() *sessions {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &sessions{key: key}
}

func (s *sessions) sign(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sessions) cookie(name string, now time.Time) *http.Cookie {
	payload := name + "|" + strconv.FormatInt(now.Add(sessionLife).Unix(), 10)
	return &http.Cookie{
		Name:     cookieName,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + s.sign(payload),
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(sessionLife / time.Second),
	}
}

var errBadSession = errors.New("your session is invalid or has expired: log in again")

// user returns the request's user: nil without a session cookie,
// errBadSession when the cookie is not one we signed or has expired.
func (s *sessions) user(r *http.Request) (*User, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, nil
	}
	enc, sig, ok := strings.Cut(c.Value, ".")
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil {
		return nil, errBadSession
	}
	payload := string(raw)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(s.sign(payload))) != 1 {
		return nil, errBadSession
	}
	name, exp, _ := strings.Cut(payload, "|")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	role, known := users[name]
	if err != nil || !known || time.Now().Unix() > expiry {
		return nil, errBadSession
	}
	return &User{Name: name, Role: role}, nil
}

type ctxKey struct{}

type sessionState struct {
	user *User
	err  error
}

// middleware is the session layer (the seed's session and passport
// middleware): it reads the cookie of every request under the pathname and
// puts the outcome in the request's context, which reaches the spark.
func (s *sessions) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.user(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, sessionState{u, err})))
	})
}

// authorize refuses a connection that came with a forged or expired
// session cookie; anonymous connections are let in, and each action checks
// its own role.
func authorize(r *http.Request) error {
	if st, _ := r.Context().Value(ctxKey{}).(sessionState); st.err != nil {
		return &primus.HTTPError{Status: http.StatusUnauthorized, Message: st.err.Error()}
	}
	return nil
}

// userOf returns the user a spark's handshake carried.
func userOf(ctx context.Context) *User {
	st, _ := ctx.Value(ctxKey{}).(sessionState)
	return st.user
}

// login checks the form and sets the session cookie.
func (s *sessions) login(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("username")
	if _, ok := users[name]; !ok || subtle.ConstantTimeCompare([]byte(r.PostFormValue("password")), []byte("demo")) != 1 {
		http.Redirect(w, r, "/?error=wrong+name+or+password", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, s.cookie(name, time.Now()))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout clears the session cookie.
func logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

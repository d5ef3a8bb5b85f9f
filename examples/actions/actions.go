package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// backendClient calls the backend service on behalf of a user.
type backendClient struct {
	base string
	http *http.Client
}

// call sends method path with body (JSON, may be nil) and decodes the JSON
// answer; a non-2xx answer is an error carrying the backend's message.
func (b *backendClient) call(ctx context.Context, u *User, method, path string, body any) (any, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if u != nil {
		req.Header.Set("X-User", u.Name)
		req.Header.Set("X-Role", u.Role.String())
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the backend is unavailable: %w", err)
	}
	defer resp.Body.Close()
	var out any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("the backend answered %s without JSON", resp.Status)
	}
	if resp.StatusCode >= 300 {
		if m, ok := out.(map[string]any); ok {
			if msg, ok := m["error"].(string); ok {
				return nil, errors.New(msg)
			}
		}
		return nil, fmt.Errorf("the backend answered %s", resp.Status)
	}
	return out, nil
}

// routes registers the example's actions: who may take each, and what it
// asks of the backend.
func routes(d *Dispatcher, b *backendClient) {
	d.Handle("whoami", Anonymous, func(_ context.Context, u *User, _ json.RawMessage) (any, error) {
		if u == nil {
			return map[string]any{"name": nil, "role": Anonymous}, nil
		}
		return u, nil
	})
	d.Handle("items.list", Anonymous, func(ctx context.Context, u *User, _ json.RawMessage) (any, error) {
		return b.call(ctx, u, http.MethodGet, "/items", nil)
	})
	d.Handle("items.add", RoleUser, func(ctx context.Context, u *User, p json.RawMessage) (any, error) {
		var in struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(p, &in); err != nil {
			return nil, errors.New("items.add needs {name}")
		}
		return b.call(ctx, u, http.MethodPost, "/items", in)
	})
	d.Handle("items.delete", Admin, func(ctx context.Context, u *User, p json.RawMessage) (any, error) {
		var in struct {
			ID int `json:"id"`
		}
		if err := json.Unmarshal(p, &in); err != nil || in.ID <= 0 {
			return nil, errors.New("items.delete needs {id}")
		}
		return b.call(ctx, u, http.MethodDelete, "/items/"+strconv.Itoa(in.ID), nil)
	})
	d.Handle("users.setRole", SuperAdmin, func(ctx context.Context, u *User, p json.RawMessage) (any, error) {
		var in struct {
			User string `json:"user"`
			Role string `json:"role"`
		}
		if err := json.Unmarshal(p, &in); err != nil || in.User == "" || in.Role == "" {
			return nil, errors.New("users.setRole needs {user, role}")
		}
		return b.call(ctx, u, http.MethodPut, "/roles/"+url.PathEscape(in.User), map[string]string{"role": in.Role})
	})
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The backend is a separate HTTP service (an inventory of items), started
// by the example on loopback. The actions server calls it with the user's
// name and role in headers, as a gateway calls the services behind it.

type item struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	By   string `json:"by"`
}

type inventory struct {
	mu     sync.Mutex
	items  []item
	nextID int
	roles  map[string]string // role changes made by SuperAdmins
}

// startBackend serves the inventory on 127.0.0.1 and returns its base URL
// and a function that stops it.
func startBackend() (string, func(context.Context) error, error) {
	inv := &inventory{nextID: 1, roles: map[string]string{}}
	inv.items = append(inv.items, item{ID: inv.nextID, Name: "welcome kit", By: "system"})
	inv.nextID++

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		writeJSON(w, http.StatusOK, append([]item{}, inv.items...))
	})
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Name == "" || len(in.Name) > 100 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "an item needs a name of 1 to 100 bytes"})
			return
		}
		inv.mu.Lock()
		it := item{ID: inv.nextID, Name: in.Name, By: r.Header.Get("X-User")}
		inv.nextID++
		inv.items = append(inv.items, it)
		inv.mu.Unlock()
		writeJSON(w, http.StatusCreated, it)
	})
	mux.HandleFunc("DELETE /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		inv.mu.Lock()
		defer inv.mu.Unlock()
		for i, it := range inv.items {
			if it.ID == id {
				inv.items = append(inv.items[:i], inv.items[i+1:]...)
				writeJSON(w, http.StatusOK, it)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no item %d", id)})
	})
	mux.HandleFunc("PUT /roles/{user}", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Role string `json:"role"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Role == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "a role is needed"})
			return
		}
		inv.mu.Lock()
		inv.roles[r.PathValue("user")] = in.Role
		inv.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"user": r.PathValue("user"), "role": in.Role, "by": r.Header.Get("X-User")})
	})

	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The e2e test reads these lines to know which calls reached the
		// backend.
		who := "anonymous"
		if u := r.Header.Get("X-User"); u != "" {
			who = fmt.Sprintf("%s (%s)", u, r.Header.Get("X-Role"))
		}
		log.Printf("backend: %s %s by %s", r.Method, r.URL.Path, who)
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: logged, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return "http://" + ln.Addr().String(), hs.Shutdown, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// startCPUProfile fetches a CPU profile of the next d from the server's
// net/http/pprof when profiling, and returns a function that waits for it
// and saves it as <dir>/<server>-<scenario>-cpu.pprof.
func (e *env) startCPUProfile(ctx context.Context, d time.Duration) func() error {
	if e.proc.pprof == "" || e.profileDir == "" {
		return func() error { return nil }
	}
	secs := max(1, int(math.Ceil(d.Seconds())))
	done := make(chan error, 1)
	go func() {
		done <- e.fetchProfile(ctx, fmt.Sprintf("profile?seconds=%d", secs), "cpu.pprof")
	}()
	return func() error { return <-done }
}

// snapshotProfiles saves the heap (after a GC), allocation, goroutine and
// memory-statistics profiles of the server when profiling.
func (e *env) snapshotProfiles(ctx context.Context) error {
	if e.proc.pprof == "" || e.profileDir == "" {
		return nil
	}
	for _, p := range []struct{ query, file string }{
		{"heap?gc=1", "heap.pprof"},
		{"heap?debug=1", "heap.txt"}, // ends with runtime.MemStats
		{"allocs", "allocs.pprof"},
		{"goroutine?debug=1", "goroutine.txt"},
	} {
		if err := e.fetchProfile(ctx, p.query, p.file); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) fetchProfile(ctx context.Context, query, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.proc.pprof+"/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("bench: failed to fetch the %s profile: %w", query, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("bench: the %s profile: HTTP %d: %s", query, resp.StatusCode, b)
	}
	path := filepath.Join(e.profileDir, e.proc.name+"-"+e.scenario+"-"+file)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("bench: failed to save %s: %w", path, err)
	}
	return f.Close()
}

package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// The -pprof flag serves net/http/pprof for the benchmark (bench/), which
// profiles this server under load. It lives in its own file so that the
// contract's flags in main.go stay as they are; it is off unless given.
func init() {
	flag.Var(pprofFlag{}, "pprof", "serve net/http/pprof on this address (e.g. 127.0.0.1:0) and print \"pprof <host:port>\" on standard error")
}

// pprofFlag starts the profiling server when the flag is parsed.
type pprofFlag struct{}

func (pprofFlag) String() string { return "" }

func (pprofFlag) Set(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(os.Stderr, "pprof %s\n", ln.Addr())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

// Package profiling serves Go's runtime profiles (net/http/pprof) on an
// address of its own, for `tollgate webhook --profiling-address` and
// `tollgate signer --profiling-address`. It is off unless asked for: the
// profiles show the process's internals (stacks, allocation sites,
// command line) to whoever reaches the address, so bind it to loopback
// (127.0.0.1:6060) and reach it with kubectl port-forward.
package profiling

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Handler serves the profiles under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Start listens on addr (an error now if it cannot) and serves the
// profiles until ctx ends. It returns the address it listens on.
func Start(ctx context.Context, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--profiling-address: %w", err)
	}
	// A CPU profile or trace runs for its ?seconds=N (30 by default).
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	// Serve ends with the listener (ctx's end closes it); the process goes on.
	go func() { _ = srv.Serve(l) }()
	return l.Addr(), nil
}

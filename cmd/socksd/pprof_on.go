//go:build pprof

package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"

	"go.uber.org/zap"
)

// startPprof serves net/http/pprof on the loopback address in
// $SOCKSD_PPROF, only in binaries built with -tags pprof: it lets the
// benchmark (test/bench, -pprof) profile the real binary with its torup
// upstream, tracker and metrics, which test/bench/prof leaves out.
func startPprof(log *zap.Logger) {
	a := os.Getenv("SOCKSD_PPROF")
	if a == "" {
		return
	}
	// SOCKSD_MEMPROFILERATE=1 records every allocation: what each idle
	// connection retains, exactly (the default samples one per 512 KiB).
	if r, err := strconv.Atoi(os.Getenv("SOCKSD_MEMPROFILERATE")); err == nil && r > 0 {
		runtime.MemProfileRate = r
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		log.Warn("pprof listener", zap.Error(err))
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go http.Serve(l, mux)
}

// Command prof is a profiling stand-in for cmd/socksd: the same config
// file, the same dispatcher and chain upstream, plus net/http/pprof on
// the loopback address in $SOCKSD_PPROF (e.g. 127.0.0.1:29760). Run the
// bench against it with `socksbench run -socksd ./prof` and fetch
// profiles with `go tool pprof http://$SOCKSD_PPROF/debug/pprof/profile`.
// It exists because cmd/socksd has no profiling flag; it wires no
// logging and no metrics endpoint, like the bench's socksd config.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"socksd/chain"
	"socksd/config"
	"socksd/dispatch"
)

func main() {
	path := flag.String("config", "", "socksd config file")
	flag.Parse()
	if err := run(*path); err != nil {
		fmt.Fprintln(os.Stderr, "prof:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	up := chain.New(cfg.Tor.SOCKS, nil)
	srv, err := dispatch.New(dispatch.Options{Upstream: up, Resolver: up})
	if err != nil {
		return err
	}
	if err := srv.Configure(cfg.Settings(), cfg.Listeners()); err != nil {
		return err
	}
	if a := os.Getenv("SOCKSD_PPROF"); a != "" {
		// Pick a port outside the ephemeral range (32768-60999 by
		// default), or a busy bench may have it in use as a source port.
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
		go http.Serve(l, nil)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return srv.Close()
}

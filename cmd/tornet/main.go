// Command tornet brings up socksd's private Tor network (test/tornet) by
// hand, for debugging and demos:
//
//	go run ./cmd/tornet up [DIR]     # prints KEY=VALUE env, then waits; Ctrl-C tears down
//	set -a; . DIR/env; set +a
//	curl --socks5-hostname 127.0.0.1:$SOCKS_PORT http://$ONION_HOST/
//
// Flags (before DIR): -profile P (zero, flat, real, lossy: the links'
// latency and faults), -exits N, -no-client, -no-onion, -keep, -timeout D,
// -loglevel L. With no DIR a temp dir is used and removed on exit (unless
// -keep). Environment: TORNET_KEYCACHE (reuse authority keys).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"socksd/test/tornet"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 || os.Args[1] != "up" {
		fmt.Fprintln(os.Stderr, "usage: tornet up [-profile P] [-exits N] [-no-client] [-no-onion] [-keep] [-timeout D] [-loglevel L] [DIR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	profile := fs.String("profile", "", "links' profile: "+strings.Join(tornet.ProfileNames(), ", ")+` ("" = $TORNET_PROFILE, else zero)`)
	exits := fs.Int("exits", 3, "number of exit relays")
	noClient := fs.Bool("no-client", false, "do not start the client tor (use -print-client-torrc for a managed tor)")
	noOnion := fs.Bool("no-onion", false, "no onion service")
	keep := fs.Bool("keep", false, "keep DIR (a temp dir) after teardown")
	timeout := fs.Duration("timeout", 120*time.Second, "bring-up deadline")
	logLevel := fs.String("loglevel", "", "extra per-node log file at this level (info, debug)")
	printClient := fs.Bool("print-client-torrc", false, "print the torrc lines a client of this network needs")
	fs.Parse(os.Args[2:])
	opt := tornet.Options{
		Profile: *profile, Exits: *exits, NoClient: *noClient, NoOnion: *noOnion, Keep: *keep || fs.Arg(0) != "",
		Timeout: *timeout, LogLevel: *logLevel, Dir: fs.Arg(0), Logf: log.Printf,
	}

	// SIGINT/SIGTERM during bring-up cancels it; afterwards they tear down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := tornet.Start(ctx, opt)
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range n.Env() {
		fmt.Println(kv)
	}
	if *printClient {
		fmt.Print("# client torrc lines:\n" + n.ClientTorrc())
	}
	rss := n.RSS()
	names := make([]string, 0, len(rss))
	var total int64
	for name, b := range rss {
		names = append(names, name)
		total += b
	}
	sort.Strings(names)
	for _, name := range names {
		log.Printf("rss %-7s %6.1f MiB", name, float64(rss[name])/(1<<20))
	}
	log.Printf("rss total   %6.1f MiB; env in %s/env; Ctrl-C to tear down", float64(total)/(1<<20), n.Dir)
	<-ctx.Done()
	t0 := time.Now()
	if err := n.Close(); err != nil {
		log.Fatal(err)
	}
	log.Printf("torn down in %.2fs", time.Since(t0).Seconds())
}

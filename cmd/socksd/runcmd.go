package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"socksd/netjail"
)

// defaultRunSocket is the Unix-socket listener socksd run talks to unless
// -socket or $SOCKSD_SOCKET says otherwise: the one deploy/socksd.toml
// configures.
const defaultRunSocket = "/run/socksd/socks.sock"

// runCommand is `socksd run [-identity NAME] [-socket PATH] -- program
// args...`. Its exit status is the program's; 125-127 mean the program did
// not run (as env(1)).
func runCommand(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("socksd run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: socksd run [-identity NAME] [-socket PATH] -- program [args...]\n\n"+
			"Runs program in its own network namespace where every TCP connection goes\n"+
			"through socksd (and so through Tor) and names are resolved by the Tor exit.\n\n")
		fs.PrintDefaults()
	}
	socket := os.Getenv("SOCKSD_SOCKET")
	if socket == "" {
		socket = defaultRunSocket
	}
	fs.StringVar(&socket, "socket", socket, "socksd's Unix-socket listener (default from $SOCKSD_SOCKET)")
	identity := fs.String("identity", "", "share an isolation identity (circuits) with other runs of the same NAME; default: a new identity per run")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return netjail.ExitSetup
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return netjail.ExitSetup
	}
	if !filepath.IsAbs(socket) {
		fmt.Fprintf(stderr, "socksd run: -socket %q: want an absolute path\n", socket)
		return netjail.ExitSetup
	}
	code, err := netjail.Run(netjail.Options{Socket: socket, Identity: *identity, Argv: fs.Args()})
	if err != nil {
		fmt.Fprintf(stderr, "socksd run: %v\n", err)
	}
	return code
}

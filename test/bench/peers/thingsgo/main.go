// Command thingsgo runs github.com/things-go/go-socks5 as a benchmark peer.
// It accepts no-auth and any username/password, so it can also stand in
// as the upstream SOCKS5 server behind socksd.
package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	socks5 "github.com/things-go/go-socks5"

	"socksd/internal/endpoint"
)

type anyCreds struct{}

func (anyCreds) Valid(user, password, userAddr string) bool { return true }

func main() {
	listen := flag.String("listen", "127.0.0.1:1080", "listen address (loopback), or unix:/path")
	flag.Parse()
	srv := socks5.NewServer(
		socks5.WithAuthMethods([]socks5.Authenticator{
			socks5.NoAuthAuthenticator{},
			socks5.UserPassAuthenticator{Credentials: anyCreds{}},
		}),
		socks5.WithLogger(socks5.NewLogger(log.New(io.Discard, "", 0))),
	)
	network, address := endpoint.Split(*listen)
	l, err := net.Listen(network, address)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString("ready " + l.Addr().String() + "\n")
	log.Fatal(srv.Serve(patientListener{l}))
}

// patientListener retries failed accepts (EMFILE when the idle test
// exhausts descriptors) instead of letting Serve return and the peer exit:
// the benchmark must see the limit, not a crash.
type patientListener struct{ net.Listener }

func (p patientListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := p.Listener.Accept()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return c, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// Command armon runs github.com/armon/go-socks5 as a benchmark peer. It
// accepts no-auth and any username/password, so it can also stand in as
// the upstream SOCKS5 server behind socksd (which always authenticates
// with its isolation credentials).
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

	socks5 "github.com/armon/go-socks5"

	"socksd/internal/endpoint"
)

type anyCreds struct{}

func (anyCreds) Valid(user, password string) bool { return true }

func main() {
	listen := flag.String("listen", "127.0.0.1:1080", "listen address (loopback), or unix:/path")
	flag.Parse()
	srv, err := socks5.New(&socks5.Config{
		AuthMethods: []socks5.Authenticator{
			socks5.NoAuthAuthenticator{},
			socks5.UserPassAuthenticator{Credentials: anyCreds{}},
		},
		Logger: log.New(io.Discard, "", 0),
	})
	if err != nil {
		log.Fatal(err)
	}
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

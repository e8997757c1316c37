// Command fetcher is the statically linked program socksd run's tests run
// inside and outside the jail: net/http with no proxy and Go's own
// resolver, exactly what LD_PRELOAD tools such as torsocks cannot see.
//
//	fetcher [-dns ip:53] URL...   GET each URL, print "OK <body>" or "ERR <error>"
//
// With -dns, names are resolved by asking that server directly (the
// canary's resolver) instead of /etc/resolv.conf. Exit 0 when every GET
// succeeded, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	dnsServer := flag.String("dns", "", "resolve names with this DNS server (ip:port) instead of the system's")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	flag.Parse()
	r := &net.Resolver{PreferGo: true}
	if *dnsServer != "" {
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", *dnsServer)
		}
	}
	d := &net.Dialer{Resolver: r}
	c := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			Proxy:             nil, // no proxy: the jail must catch the connection
			DialContext:       d.DialContext,
			DisableKeepAlives: true,
		},
	}
	code := 0
	for _, u := range flag.Args() {
		resp, err := c.Get(u)
		if err != nil {
			fmt.Printf("ERR %v\n", err)
			code = 1
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Printf("ERR status %d: %v\n", resp.StatusCode, err)
			code = 1
			continue
		}
		fmt.Printf("OK %s\n", strings.TrimSpace(string(b)))
	}
	os.Exit(code)
}

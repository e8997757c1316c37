// Command fetcher is the statically linked program socksd run's tests run
// inside and outside the jail: net/http with no proxy and Go's own
// resolver, exactly what LD_PRELOAD tools such as torsocks cannot see.
//
//	fetcher [-dns ip:53] URL...   GET each URL, print "OK <body>" or "ERR <error>"
//	fetcher -icmp IP              send one ICMP echo request to IP, print "OK sent" or "ERR <error>"
//	fetcher -n N [-proxy socks5h://ip:port] URL
//	                              GET URL N times on fresh connections and print
//	                              "STATS ttfb_p50_us=.. ttfb_p90_us=.. bytes=.. seconds=.."
//
// With -dns, names are resolved by asking that server directly (the
// canary's resolver) instead of /etc/resolv.conf. With -proxy the
// requests go through that SOCKS5 proxy (the benchmarks' direct case).
// Exit 0 when every GET succeeded, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	dnsServer := flag.String("dns", "", "resolve names with this DNS server (ip:port) instead of the system's")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	repeat := flag.Int("n", 0, "benchmark: GET the URL this many times and print statistics")
	proxy := flag.String("proxy", "", "benchmark: a socks5h:// proxy URL")
	icmpTo := flag.String("icmp", "", "send one ICMP echo request to this IPv4 address and exit")
	flag.Parse()
	if *icmpTo != "" {
		os.Exit(ping(*icmpTo))
	}
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
	if *proxy != "" {
		u, err := url.Parse(*proxy)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		c.Transport.(*http.Transport).Proxy = http.ProxyURL(u)
	}
	if *repeat > 0 {
		os.Exit(bench(c, flag.Arg(0), *repeat))
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

// bench GETs u n times, each on a new connection, and prints the time to
// first byte (from the start of the request: name lookup, connect and the
// proxy's handshake included) and the bytes and seconds of the bodies.
func bench(c *http.Client, u string, n int) int {
	ttfb := make([]time.Duration, 0, n)
	var total int64
	var bodyTime time.Duration
	for range n {
		var first time.Time
		trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", u, nil)
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		m, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Println("ERR", resp.StatusCode, err)
			return 1
		}
		ttfb = append(ttfb, first.Sub(start))
		bodyTime += time.Since(first)
		total += m
	}
	slices.Sort(ttfb)
	fmt.Printf("STATS ttfb_p50_us=%d ttfb_p90_us=%d bytes=%d seconds=%.6f\n",
		ttfb[len(ttfb)/2].Microseconds(), ttfb[len(ttfb)*9/10].Microseconds(), total, bodyTime.Seconds())
	return 0
}

// ping sends one ICMP echo request (RFC 792) on a raw socket: root only,
// which the tests are.
func ping(addr string) int {
	c, err := net.Dial("ip4:icmp", addr)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	defer c.Close()
	msg := []byte{8, 0, 0, 0, 0x50, 0x51, 0, 1, 'c', 'a', 'n', 'a', 'r', 'y'}
	var sum uint32
	for i := 0; i < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
	}
	sum = (sum >> 16) + (sum & 0xffff)
	sum += sum >> 16
	msg[2], msg[3] = byte(^sum>>8), byte(^sum)
	if _, err := c.Write(msg); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("OK sent")
	return 0
}

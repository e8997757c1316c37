package socks5_test

import (
	"fmt"
	"net/netip"

	"socksd/socks5"
)

// The dispatcher's loop: Step on everything unread, write each Reply,
// and after Done forward in[Consumed:] upstream as optimistic data.
func ExampleHandshake() {
	// A client that pipelined greeting, credentials, request and data.
	in := []byte("\x05\x01\x02" + "\x01\x01u\x01p" + "\x05\x01\x00\x03\x0bexample.com\x00\x50" + "GET /")
	var h socks5.Handshake
	for {
		a, err := h.Step(in)
		if a.Reply != nil {
			fmt.Printf("write % x\n", a.Reply)
		}
		in = in[a.Consumed:]
		if err != nil {
			fmt.Println("close:", err) // socksproto.ErrShortBuffer would mean: read more
			return
		}
		if a.Done {
			r := h.Request()
			fmt.Printf("%v %s:%d user=%q early=%q\n", r.Command, r.Host, r.Port, r.Username, in)
			break
		}
	}
	// After the upstream accepted the stream: CONNECT success, zeroed BND.
	fmt.Printf("write % x\n", socks5.AppendReply(nil, socks5.ReplySucceeded, netip.Addr{}, 0))
	// Output:
	// write 05 02
	// write 01 00
	// CONNECT example.com:80 user="u" early="GET /"
	// write 05 00 00 01 00 00 00 00 00 00
}

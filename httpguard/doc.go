// Package httpguard handles clients that speak HTTP to socksd's SOCKS port
// (socks-extensions.txt §4, "HTTP-resistance"), sans-IO: it parses a bounded
// request head and builds the responses, and knows nothing of sockets.
//
// A CONNECT request becomes a tunnel through the same dispatcher and
// upstream as SOCKS (the way C Tor's HTTPTunnelPort serves it); anything
// else gets WarningPage, which tells the user that this is a SOCKS proxy and
// how to configure a browser for it, as C Tor does with its "Tor is not an
// HTTP Proxy" page.
package httpguard

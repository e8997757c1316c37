// Package httpguard handles clients that speak HTTP to socksd's SOCKS port
// (socks-extensions.txt §4, "HTTP-resistance"; Tor's http-connect spec and
// proposal 365), sans-IO: it parses a bounded request head and builds the
// responses, and knows nothing of sockets.
//
// A CONNECT request becomes a tunnel through the same dispatcher and
// upstream as SOCKS (the way C Tor's HTTPTunnelPort serves it), isolated by
// its Proxy-Authorization and Tor-Stream-Isolation headers. Every other
// request is first checked for a Host naming this machine
// (AddressedToProxy): a foreign or missing Host gets no answer at all, so a
// web page cannot probe the port through DNS rebinding. Addressed to this
// machine, OPTIONS gets the methods and identification headers
// (AppendOptions), anything else WarningPage, which tells the user that this
// is a SOCKS proxy and how to configure a browser for it, as C Tor does with
// its "Tor is not an HTTP Proxy" page.
package httpguard

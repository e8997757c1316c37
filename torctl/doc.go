// Package torctl is a client for Tor's control port (control-spec.txt, v1
// protocol), standard library only.
//
//	c, err := torctl.Dial(ctx, "127.0.0.1:9051") // or "unix:/run/tor/control"
//	defer c.Close()
//	err = c.Authenticate(ctx, torctl.AuthOptions{})  // SAFECOOKIE > COOKIE > HASHEDPASSWORD > NULL
//	err = c.SetEvents(ctx, "STREAM", "CIRC")
//	for e := range c.Events() {                      // closed when the connection ends
//		if e.Type == "STREAM" { s, _ := torctl.ParseStreamEvent(e); ... }
//	}
//	// c.Done() is closed and c.Err() says why: reconnect with a new Conn.
//
// # Demultiplexing
//
// One reader goroutine splits what Tor sends into replies and asynchronous
// 650 events (control-spec §4.1: events are never interleaved with the lines
// of a reply, but may come between a command and its reply). A reply goes to
// the command in flight; events go, in order, to the channel returned by
// Events. Lines are routed by status code, so even an event line inside a
// reply (which Tor never sends) reaches Events and the reply stays whole. A
// line that is not §2.3 grammar, a line over MaxLineLength, or a reply when
// no command is in flight ends the connection with an error: a
// desynchronised stream is never reused.
//
// # Commands
//
// Commands are serialised: callers take turns in the order they asked
// (FIFO), and at most one command is on the wire. The in-flight slot is
// released by the reader when the reply arrives, not by the caller, so a
// command whose context ends after it was written returns ctx.Err() at once
// while its reply is still consumed; the next command is written only then
// and cannot be handed the wrong reply. Authenticate holds its turn across
// PROTOCOLINFO, AUTHCHALLENGE and AUTHENTICATE. Arguments that would break
// the line (SP, CR, LF in a token) are refused with ErrBadArgument before
// anything is sent; configuration values and passwords are QuotedStrings.
//
// # Events
//
// Events are queued without bound (a slice, not a fixed buffer), so a slow
// consumer never stalls the reader and with it every command's reply; the
// cost is memory, visible as EventBacklog. Subscribe only to what you read.
// After Tor ends the connection, queued events are still delivered and then
// the channel is closed; Close discards them. Always call Close: it stops
// both goroutines and waits for them.
//
// The line and reply grammar lives in reply.go as a sans-IO assembler fed one
// line at a time; keyword arguments and QuotedStrings in quote.go; event and
// GETINFO value parsers in events.go and info.go. torctltest is a scripted
// fake control port for tests.
package torctl

// Package torctl is a client for Tor's control port (control-spec.txt, v1
// protocol).
//
// One Conn carries one control connection. A single reader goroutine splits
// what Tor sends into replies and asynchronous 650 events (control-spec §4.1:
// events are never interleaved with the lines of a reply, but may arrive
// between a command and its reply). Replies go to the command that is in
// flight; events go, in order, to the channel returned by Events.
//
// Commands are serialised: at most one is in flight, and callers are served
// in the order they asked (FIFO). The slot is released by the reader when the
// reply arrives, not by the caller, so a command whose context is cancelled
// after it was written still has its reply consumed and the next command
// cannot be handed the wrong reply.
//
// The line and reply grammar (control-spec §2) lives in reply.go as a sans-IO
// assembler fed one line at a time; the keyword/QuotedString grammar used by
// events and replies lives in args.go and quote.go.
package torctl

package torup

import (
	"context"
	"errors"
	"time"

	"socksd/socks5"
	"socksd/torctl"
)

// outcomeWait bounds how long a generic SOCKS failure waits for the STREAM
// event that explains it: Tor gives no order between the SOCKS reply and
// the control event (proposal 304 §1), and only failures pay this.
const outcomeWait = 250 * time.Millisecond

// replyFromReason maps a STREAM event's REASON / REMOTE_REASON
// (control-spec §4.1.2, tor-spec §6.3) to a SOCKS5 reply the way C Tor does
// for its own SOCKS replies (relay.c, connection_edge_end_reason_socks5_response).
// REASON=END means "the other side sent RELAY_END": the remote reason is the
// real one. ok is false for reasons that say nothing beyond "failure".
func replyFromReason(reason, remote string) (socks5.Reply, bool) {
	r := reason
	if r == torctl.ReasonEnd && remote != "" {
		r = remote
	}
	switch r {
	case torctl.ReasonResolveFailed, torctl.ReasonNoRoute:
		return socks5.ReplyHostUnreachable, true
	case torctl.ReasonConnectRefused, torctl.ReasonConnReset:
		return socks5.ReplyConnectionRefused, true
	case torctl.ReasonExitPolicy, torctl.ReasonEntryPolicy:
		return socks5.ReplyNotAllowed, true
	case torctl.ReasonTimeout:
		return socks5.ReplyTTLExpired, true
	case torctl.ReasonNetUnreachable:
		return socks5.ReplyNetworkUnreachable, true
	}
	return socks5.ReplyGeneralFailure, false
}

// refine sharpens a failure from Tor's SOCKS reply with what the control
// port said about the stream. Tor's own code wins unless it is the generic
// 0x01 (or no reply at all, e.g. the connection dropped): then a stream
// socksd closed for socks_timeout is 0x06, and a specific end reason gives
// its code.
func refine(ctx context.Context, reg *registration, err error) error {
	if err == nil || reg == nil {
		return err
	}
	var re *socks5.ReplyError
	if errors.As(err, &re) && re.Code != socks5.ReplyGeneralFailure {
		return err
	}
	t := time.NewTimer(outcomeWait)
	defer t.Stop()
	select {
	case <-reg.done:
	case <-t.C:
	case <-ctx.Done():
	}
	o := reg.result()
	if o.TimedOut {
		return &socks5.ReplyError{Code: socks5.ReplyTTLExpired, Err: err}
	}
	if code, ok := replyFromReason(o.Reason, o.RemoteReason); ok {
		return &socks5.ReplyError{Code: code, Err: err}
	}
	if re == nil {
		return &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
	}
	return err
}

package dispatch

import (
	"errors"
	"strings"

	"socksd/socks5"
	"socksd/socksproto"
)

// Stream-option refusals, wrapped in *socks5.ReplyError.
var (
	// ErrStreamOptions: pt-spec arguments (a pt_args listener) that name
	// an unknown option or carry a bad value; answered 0x01 (SOCKS4:
	// 0x5B), the failure the client's own arguments caused.
	ErrStreamOptions = errors.New("dispatch: invalid stream options")
	// ErrOnionOnly: onion_only refused a destination that is not .onion;
	// answered 0x02 not allowed, as Tor's OnionTrafficOnly refuses it.
	ErrOnionOnly = errors.New("dispatch: onion_only refused a destination that is not an onion service")
)

// applyStreamOptions reads the stream options a request carries into
// req.opts and applies the ones that decide the request's identity:
//
//   - SOCKS5 method 0x97 brought them parsed (socks5.Request.Options);
//   - on a pt_args listener, the SOCKS5 username and password (joined
//     as pt-spec says) or the SOCKS4 userid are an argument list, which
//     then is not an identity of its own;
//   - an isolation token becomes the credentials "<torS0X>0" / token,
//     the form every other carrier of a token uses (SOCKS5's proposal
//     351 username, HTTP CONNECT's Tor-Stream-Isolation): one token is
//     one identity whichever form carried it. With 0x97's USERNAME or
//     PASSWD as well, both count: the password is the token, a NUL, the
//     username, a NUL and the password.
//
// Other options are applied where they act: fresh in fillKey, keep_alive
// and lifetime on the request to the upstream, onion_only in
// checkOnionOnly, extended_errors when the reply is written.
func applyStreamOptions(req *Request, lc *ListenerConfig) error {
	if lc.PTArgs && !req.extAuth && req.HasAuth && req.Protocol != ProtoHTTPConnect {
		args := socksproto.JoinArgs(nil, req.Username, req.Password)
		req.HasAuth, req.Username, req.Password = false, nil, nil
		if err := socksproto.ParseArgs(args, &req.opts); err != nil {
			return &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: errors.Join(ErrStreamOptions, err)}
		}
	}
	o := &req.opts
	if o.HasIsolation && len(o.Isolation) > 0 {
		pass := o.Isolation
		if req.HasAuth {
			pass = append(append(append(append(append([]byte(nil), pass...), 0), req.Username...), 0), req.Password...)
		}
		req.HasAuth = true
		req.Username, req.Password = []byte(socksproto.TorIsolationUsername), pass
	}
	req.Lifetime = o.Lifetime
	return nil
}

// checkOnionOnly refuses, for a stream with onion_only, every destination
// but an onion service, and every RESOLVE (Tor's OnionTrafficOnly implies
// NoDNSRequest: there is nothing to resolve for an onion service).
func checkOnionOnly(req *Request) error {
	if !req.opts.OnionOnly {
		return nil
	}
	h := strings.TrimSuffix(strings.ToLower(req.Host), ".")
	if req.Command == CmdConnect && strings.HasSuffix(h, ".onion") {
		return nil
	}
	return &socks5.ReplyError{Code: socks5.ReplyNotAllowed, Err: ErrOnionOnly}
}

// extendedErrors reports whether req's client gets Tor's onion-service
// reply codes: the stream's extended_errors option if it gave one, else
// yes when it negotiated proposal 229's method 0x97 (which says it
// understands them), else the listener's extended_errors.
func extendedErrors(req *Request, st *Settings) bool {
	return req.opts.ExtendedErrors.Or(req.extAuth || st.ExtendedErrors)
}

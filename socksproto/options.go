package socksproto

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// StreamOptions is the one per-stream options model. Three wire forms
// feed it, all with the same keys and value syntax:
//
//   - pt-spec arguments "k=v;k=v" in the SOCKS5 username and password or
//     the SOCKS4 userid (ParseArgs; a listener opts in, since it turns
//     what are otherwise plain isolation strings into arguments);
//   - the key/value list of SOCKS5 method 0x97 (proposal 229);
//   - the Tor-Stream-Options header of HTTP CONNECT, whose value is a
//     pt-spec argument list (ParseArgs), and its Tor-Stream-Isolation
//     header, which sets Isolation.
//
// The keys ask per stream for what C Tor offers only per port:
//
//	isolation=T        the identity token T: the stream shares circuits only
//	                   with streams carrying the same token (what the
//	                   password of username "<torS0X>0" is, and the same
//	                   identity: a token is one identity whichever form
//	                   carried it)
//	lifetime=D         new streams of this identity take its circuit for at
//	                   most D (seconds, or a duration such as "90s", "5m");
//	                   capped at the listener's circuit_lifetime
//	keep_alive=B       keep the identity's circuit while it has streams
//	                   (Tor's KeepAliveIsolateSOCKSAuth)
//	fresh=B            a circuit no other stream has used or will use
//	                   (Tor's per-stream isolation)
//	onion_only=B       refuse anything but a .onion destination (Tor's
//	                   OnionTrafficOnly): reply 0x02, not allowed
//	extended_errors=B  Tor's onion-service reply codes 0xF0–0xF7 for this
//	                   stream, whatever the listener says
//
// B is "1", "true", "0" or "false". Keys are lower case. An unknown key, a
// bad value or a key given twice is an error (ErrOption): a client asking
// for isolation must never be silently given less.
type StreamOptions struct {
	Isolation    []byte // nil: none given
	HasIsolation bool
	Lifetime     time.Duration // 0: the listener's
	// KeepAlive and ExtendedErrors are tri-state: Set says whether the
	// stream chose, the value what it chose.
	KeepAlive, ExtendedErrors Choice
	Fresh                     bool
	OnionOnly                 bool

	seen uint8 // keys set so far, to refuse duplicates
}

// Choice is a per-stream boolean that may be left to the listener.
type Choice struct {
	Set, Value bool
}

// Or is the stream's choice, or def when it made none.
func (c Choice) Or(def bool) bool {
	if c.Set {
		return c.Value
	}
	return def
}

// ErrOption: an unknown stream option, a bad value or a repeated key.
var ErrOption = errors.New("socks: invalid stream option")

// MaxLifetime bounds the lifetime option; the listener's
// circuit_lifetime caps it further.
const MaxLifetime = 24 * time.Hour

var optionKeys = [...]string{"isolation", "lifetime", "keep_alive", "fresh", "onion_only", "extended_errors"}

// Set applies one key/value pair. value is copied where kept.
func (o *StreamOptions) Set(key, value []byte) error {
	k := -1
	for i, name := range optionKeys {
		if string(key) == name {
			k = i
			break
		}
	}
	if k < 0 {
		return fmt.Errorf("%w: unknown key %.32q", ErrOption, key)
	}
	if o.seen&(1<<k) != 0 {
		return fmt.Errorf("%w: %s given twice", ErrOption, optionKeys[k])
	}
	o.seen |= 1 << k
	switch k {
	case 0:
		o.Isolation, o.HasIsolation = append([]byte{}, value...), true
		return nil
	case 1:
		d, err := parseLifetime(value)
		if err != nil {
			return err
		}
		o.Lifetime = d
		return nil
	}
	b, ok := parseBool(value)
	if !ok {
		return fmt.Errorf("%w: %s wants 1, 0, true or false", ErrOption, optionKeys[k])
	}
	switch k {
	case 2:
		o.KeepAlive = Choice{true, b}
	case 3:
		o.Fresh = b
	case 4:
		o.OnionOnly = b
	case 5:
		o.ExtendedErrors = Choice{true, b}
	}
	return nil
}

func parseBool(v []byte) (bool, bool) {
	switch string(v) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

func parseLifetime(v []byte) (time.Duration, error) {
	bad := fmt.Errorf("%w: lifetime wants seconds or a duration between 1s and %v", ErrOption, MaxLifetime)
	if len(v) == 0 || len(v) > 16 {
		return 0, bad
	}
	var d time.Duration
	if n, err := strconv.ParseUint(string(v), 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(string(v)); err != nil {
		return 0, bad
	}
	if d < time.Second || d > MaxLifetime {
		return 0, bad
	}
	return d, nil
}

// Pairs lists the options that were set, as key/value pairs in the syntax
// Set reads (for clients, tests and round trips).
func (o *StreamOptions) Pairs() [][2]string {
	var p [][2]string
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	for k, name := range optionKeys {
		if o.seen&(1<<k) == 0 {
			continue
		}
		var v string
		switch k {
		case 0:
			v = string(o.Isolation)
		case 1:
			v = strconv.FormatInt(int64(o.Lifetime/time.Second), 10)
		case 2:
			v = b(o.KeepAlive.Value)
		case 3:
			v = b(o.Fresh)
		case 4:
			v = b(o.OnionOnly)
		case 5:
			v = b(o.ExtendedErrors.Value)
		}
		p = append(p, [2]string{name, v})
	}
	return p
}

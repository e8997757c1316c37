package socksproto

import (
	"bytes"
	"fmt"
)

// pt-spec ("Pluggable Transport Specification", SOCKS arguments): a client
// passes arguments as "k=v;k=v" in the SOCKS5 username and password or in
// the SOCKS4 userid. '\' escapes ';', '=' and '\' in keys and values. An
// argument list longer than the 255 bytes of the username continues in the
// password; a list that fits leaves the password a single NUL.

// MaxArgs bounds an argument list: two RFC 1929 fields of 255 bytes.
const MaxArgs = 2 * 255

// JoinArgs returns the argument list a SOCKS5 client sent: the username,
// followed by the password unless that is the single NUL of a list that
// fit the username. dst is reused when it has room.
func JoinArgs(dst, user, pass []byte) []byte {
	dst = append(dst[:0], user...)
	if len(pass) == 1 && pass[0] == 0 {
		return dst
	}
	return append(dst, pass...)
}

// SplitArgs is JoinArgs' inverse for a client: the username and password
// that carry args.
func SplitArgs(args []byte) (user, pass []byte) {
	switch {
	case len(args) <= 255:
		return args, []byte{0}
	case len(args) == 256 && args[255] == 0:
		// A password of one NUL would read as "the list fit the
		// username": move one more byte into the password.
		return args[:254], args[254:]
	}
	return args[:255], args[255:]
}

// ParseArgs applies the pt-spec argument list args to o. An empty list
// sets nothing. A pair without '=', an empty key, a dangling '\', an
// unknown key or a bad value is ErrOption; so is a list over MaxArgs.
func ParseArgs(args []byte, o *StreamOptions) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("%w: argument list over %d bytes", ErrOption, MaxArgs)
	}
	var key, val [MaxArgs]byte
	for len(args) > 0 {
		k, rest, err := unescape(args, key[:0], '=')
		if err != nil {
			return err
		}
		if len(rest) == 0 || rest[0] != '=' {
			return fmt.Errorf("%w: argument %.32q has no '='", ErrOption, k)
		}
		if len(k) == 0 {
			return fmt.Errorf("%w: empty key", ErrOption)
		}
		v, rest, err := unescape(rest[1:], val[:0], ';')
		if err != nil {
			return err
		}
		if err := o.Set(k, v); err != nil {
			return err
		}
		if len(rest) > 0 {
			rest = rest[1:] // the ';'
		}
		args = rest
	}
	return nil
}

// unescape copies in up to the first unescaped stop byte or ';' into dst,
// dropping each escaping '\', and returns the rest starting at that byte.
func unescape(in, dst []byte, stop byte) ([]byte, []byte, error) {
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '\\':
			if i+1 == len(in) {
				return nil, nil, fmt.Errorf("%w: '\\' at the end", ErrOption)
			}
			i++
			dst = append(dst, in[i])
		case c == stop || c == ';':
			return dst, in[i:], nil
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil, nil
}

// AppendArgs appends the pt-spec encoding of key=value pairs (escaping
// '\', ';' and '='), for clients and tests.
func AppendArgs(dst []byte, pairs ...[2]string) []byte {
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = appendEscaped(dst, p[0])
		dst = append(dst, '=')
		dst = appendEscaped(dst, p[1])
	}
	return dst
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if bytes.IndexByte([]byte(`\;=`), s[i]) >= 0 {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}

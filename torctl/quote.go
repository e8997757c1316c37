package torctl

import (
	"fmt"
	"strings"
)

// Quote encodes s as a QuotedString for a command (control-spec §2.1).
// Backslash and DQUOTE are escaped as the spec requires. CR and LF are
// escaped as \r and \n, other control bytes as three-digit octal: Tor decodes
// controller strings with C escapes (unescape_string), and a raw CR or LF
// would end the command line and let the rest be read as a new command.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Unquote decodes a QuotedString as Tor emits it, surrounding quotes
// included. Following control-spec §2.1.1 (Tor's CString bug), \n \t \r and
// octal \0 ... \377 are C escapes; a backslash before any other character
// stands for that character.
func Unquote(s string) (string, error) {
	n, err := quotedLen(s)
	if err != nil {
		return "", err
	}
	if n != len(s) {
		return "", fmt.Errorf("%w: data after closing quote", ErrQuote)
	}
	return unescape(s[1 : n-1])
}

// quotedLen returns the length of the QuotedString at the start of s,
// quotes included.
func quotedLen(s string) (int, error) {
	if len(s) == 0 || s[0] != '"' {
		return 0, fmt.Errorf("%w: missing opening quote", ErrQuote)
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // skip the escaped byte
		case '"':
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: missing closing quote", ErrQuote)
}

// unescape decodes the inside of a QuotedString.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("%w: trailing backslash", ErrQuote)
		}
		switch c = s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := 0
			j := i
			for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
				v = v*8 + int(s[j]-'0')
			}
			if v > 0377 {
				return "", fmt.Errorf("%w: octal escape over \\377", ErrQuote)
			}
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// Arg is one space-separated argument of a reply or event line: either a
// positional value or KEY=VALUE (control-spec §4.1: SP KEYWORD ["="
// (QuotedString / *NonSpDquote)]). Quoted values are unquoted.
type Arg struct {
	Key   string // "" for a positional argument
	Value string
}

// ParseArgs splits a reply or event line into arguments. A token is a
// keyword argument when it starts with 1*(ALNUM / "_") "="; anything else
// ("$FP=nick" path elements, "<error>", quoted times) is positional.
func ParseArgs(s string) ([]Arg, error) {
	var out []Arg
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		if s[i] == '"' {
			n, err := quotedLen(s[i:])
			if err != nil {
				return out, err
			}
			v, err := unescape(s[i+1 : i+n-1])
			if err != nil {
				return out, err
			}
			out = append(out, Arg{Value: v})
			i += n
			if i < len(s) && s[i] != ' ' {
				return out, fmt.Errorf("%w: data after closing quote", ErrQuote)
			}
			continue
		}
		k := i
		for k < len(s) && isKeywordByte(s[k]) {
			k++
		}
		if k > i && k < len(s) && s[k] == '=' {
			key := s[i:k]
			i = k + 1
			if i < len(s) && s[i] == '"' {
				n, err := quotedLen(s[i:])
				if err != nil {
					return out, err
				}
				v, err := unescape(s[i+1 : i+n-1])
				if err != nil {
					return out, err
				}
				out = append(out, Arg{Key: key, Value: v})
				i += n
				if i < len(s) && s[i] != ' ' {
					return out, fmt.Errorf("%w: data after closing quote", ErrQuote)
				}
				continue
			}
			e := strings.IndexByte(s[i:], ' ')
			if e < 0 {
				e = len(s) - i
			}
			out = append(out, Arg{Key: key, Value: s[i : i+e]})
			i += e
			continue
		}
		e := strings.IndexByte(s[i:], ' ')
		if e < 0 {
			e = len(s) - i
		}
		out = append(out, Arg{Value: s[i : i+e]})
		i += e
	}
	return out, nil
}

func isKeywordByte(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// splitArgs separates positional arguments from keyword arguments. The first
// occurrence of a keyword wins (CIRC may repeat REASON, §4.1.1).
func splitArgs(args []Arg) (pos []string, kw map[string]string) {
	kw = make(map[string]string)
	for _, a := range args {
		if a.Key == "" {
			pos = append(pos, a.Value)
			continue
		}
		if _, dup := kw[a.Key]; !dup {
			kw[a.Key] = a.Value
		}
	}
	return pos, kw
}

// checkToken rejects arguments that would break a command line: empty, or
// containing SP, CR, LF or NUL.
func checkToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrBadArgument, what)
	}
	if strings.ContainsAny(s, " \r\n\x00") {
		return fmt.Errorf("%w: %s contains space or line break", ErrBadArgument, what)
	}
	return nil
}

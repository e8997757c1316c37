package socksproto

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	tok := func(s string) StreamOptions {
		var o StreamOptions
		o.Set([]byte("isolation"), []byte(s))
		return o
	}
	for _, tc := range []struct {
		in   string
		want []([2]string) // nil with ok false: an error
		ok   bool
	}{
		{"", nil, true},
		{"isolation=abc", [][2]string{{"isolation", "abc"}}, true},
		{"isolation=", [][2]string{{"isolation", ""}}, true},
		{`isolation=a\;b\=c\\d`, [][2]string{{"isolation", `a;b=c\d`}}, true},
		{"isolation=a=b", [][2]string{{"isolation", "a=b"}}, true}, // '=' in a value needs no escape
		{"fresh=1;onion_only=true;keep_alive=0;extended_errors=false;lifetime=90",
			[][2]string{{"lifetime", "90"}, {"keep_alive", "0"}, {"fresh", "1"}, {"onion_only", "1"}, {"extended_errors", "0"}}, true},
		{"lifetime=5m", [][2]string{{"lifetime", "300"}}, true},
		{"isolation=x;", [][2]string{{"isolation", "x"}}, true}, // a trailing ';' ends the list
		{`i\solation=x`, [][2]string{{"isolation", "x"}}, true}, // '\' escapes any byte
		{"isolation", nil, false},
		{"=x", nil, false},
		{"isolation=x;;fresh=1", nil, false},
		{"isolation=a;isolation=b", nil, false},
		{"Isolation=a", nil, false},
		{"colour=red", nil, false},
		{"fresh=yes", nil, false},
		{"fresh=", nil, false},
		{"lifetime=0", nil, false},
		{"lifetime=-5s", nil, false},
		{"lifetime=25h", nil, false},
		{"lifetime=abc", nil, false},
		{`isolation=x\`, nil, false},
		{"isolation=" + strings.Repeat("a", MaxArgs), nil, false},
	} {
		var o StreamOptions
		err := ParseArgs([]byte(tc.in), &o)
		if (err == nil) != tc.ok {
			t.Errorf("ParseArgs(%.40q) err = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrOption) {
				t.Errorf("ParseArgs(%.40q) err = %v, not ErrOption", tc.in, err)
			}
			continue
		}
		if got := o.Pairs(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseArgs(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	o := tok("t")
	if !o.HasIsolation || string(o.Isolation) != "t" || o.Lifetime != 0 || o.KeepAlive.Set || o.Fresh {
		t.Errorf("isolation alone set %+v", o)
	}
	var l StreamOptions
	if ParseArgs([]byte("lifetime=90s"), &l) != nil || l.Lifetime != 90*time.Second {
		t.Errorf("lifetime=90s gave %v", l.Lifetime)
	}
}

// TestArgsSplit: pt-spec's 255-byte rule. A list that fits the username
// leaves the password one NUL; a longer one continues in the password.
func TestArgsSplit(t *testing.T) {
	for _, n := range []int{0, 1, 254, 255, 256, 400, MaxArgs} {
		tokLen := n - len("isolation=")
		if tokLen < 0 {
			tokLen = 0
		}
		args := AppendArgs(nil, [2]string{"isolation", strings.Repeat("t", tokLen)})
		user, pass := SplitArgs(args)
		if len(user) > 255 || len(pass) > 255 || len(pass) == 0 {
			t.Fatalf("%d bytes: user %d, pass %d", len(args), len(user), len(pass))
		}
		if len(args) <= 255 && !bytes.Equal(pass, []byte{0}) {
			t.Errorf("%d bytes: pass %q, want one NUL", len(args), pass)
		}
		joined := JoinArgs(nil, user, pass)
		if !bytes.Equal(joined, args) {
			t.Errorf("%d bytes: join gave %d bytes", len(args), len(joined))
		}
		var o StreamOptions
		if err := ParseArgs(joined, &o); err != nil || len(o.Isolation) != tokLen {
			t.Errorf("%d bytes: %v, token %d bytes", len(args), err, len(o.Isolation))
		}
	}
	// An escape split across the two fields joins back whole.
	args := []byte("isolation=" + strings.Repeat("a", 244) + `\;b`)
	user, pass := SplitArgs(args)
	if user[len(user)-1] != '\\' {
		t.Fatalf("test wants the escape at the split, user ends %q", user[len(user)-2:])
	}
	var o StreamOptions
	if err := ParseArgs(JoinArgs(nil, user, pass), &o); err != nil || !bytes.HasSuffix(o.Isolation, []byte("a;b")) {
		t.Errorf("escape across the split: %v %q", err, o.Isolation)
	}
}

// TestArgsPrefixes: every prefix of a valid list parses or is refused
// with ErrOption; none panics or yields a value the list did not hold.
func TestArgsPrefixes(t *testing.T) {
	full := []byte(`isolation=a\;b;fresh=1;lifetime=60;onion_only=0`)
	for i := 0; i <= len(full); i++ {
		var o StreamOptions
		err := ParseArgs(full[:i], &o)
		if err != nil && !errors.Is(err, ErrOption) {
			t.Fatalf("prefix %q: %v", full[:i], err)
		}
		if err == nil && o.HasIsolation && !bytes.HasPrefix([]byte("a;b"), o.Isolation) {
			t.Fatalf("prefix %q: token %q", full[:i], o.Isolation)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"", "isolation=abc", `isolation=a\;b\=c\\d`, "fresh=1;onion_only=true;lifetime=90",
		"isolation=a;isolation=b", "colour=red", `x\`, "lifetime=5m;keep_alive=0;extended_errors=1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var o StreamOptions
		err := ParseArgs(in, &o)
		if err != nil {
			if !errors.Is(err, ErrOption) {
				t.Fatalf("error %v is not ErrOption", err)
			}
			return
		}
		// Round trip: the options re-encode to a list that parses to
		// the same options, and that list survives the 255-byte split.
		enc := AppendArgs(nil, o.Pairs()...)
		if len(enc) > MaxArgs {
			return
		}
		var back StreamOptions
		u, p := SplitArgs(enc)
		if err := ParseArgs(JoinArgs(nil, u, p), &back); err != nil {
			t.Fatalf("re-encoded %q: %v", enc, err)
		}
		if !reflect.DeepEqual(back.Pairs(), o.Pairs()) {
			t.Fatalf("round trip %v, want %v", back.Pairs(), o.Pairs())
		}
	})
}

// TestCommandRules: the one table of accepted commands, as each parser
// and the dispatcher read it.
func TestCommandRules(t *testing.T) {
	for _, tc := range []struct {
		c              Command
		socks4, socks5 bool
		lookup         bool
	}{
		{CmdConnect, true, true, false},
		{CmdResolve, true, true, true},
		{CmdResolvePTR, false, true, true},
		{CmdBind, false, false, false},
		{CmdUDPAssociate, false, false, false},
		{0x42, false, false, false},
	} {
		if tc.c.Accepted(4) != tc.socks4 || tc.c.Accepted(5) != tc.socks5 || tc.c.Lookup() != tc.lookup || tc.c.Accepted(6) {
			t.Errorf("%s: Accepted(4)=%v Accepted(5)=%v Lookup=%v, want %v %v %v",
				tc.c, tc.c.Accepted(4), tc.c.Accepted(5), tc.c.Lookup(), tc.socks4, tc.socks5, tc.lookup)
		}
	}
}

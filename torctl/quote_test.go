package torctl

import (
	"errors"
	"reflect"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`a"b`, `"a\"b"`},
		{`back\slash`, `"back\\slash"`},
		{"two words", `"two words"`},
		{"line\r\nbreak", `"line\r\nbreak"`},
		{"tab\tnul\x00del\x7f", `"tab\tnul\000del\177"`},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		back, err := Unquote(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tt.want, back, err, tt.in)
		}
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct{ in, want string }{
		{`""`, ""},
		{`"/var/lib/tor/control_auth_cookie"`, "/var/lib/tor/control_auth_cookie"},
		{`"a\"b"`, `a"b`},
		{`"\\"`, `\`},
		// control-spec §2.1.1: Tor's CStrings use C escapes.
		{`"\n\t\r"`, "\n\t\r"},
		{`"\0"`, "\x00"},
		{`"\101BC"`, "ABC"},
		{`"\377"`, "\xff"},
		{`"\1234"`, "S4"}, // at most three octal digits
		{`"\x41"`, "x41"}, // any other character stands for itself
		{`"\q\'"`, "q'"},
		{`"C:\\tor\\cookie"`, `C:\tor\cookie`},
	}
	for _, tt := range tests {
		got, err := Unquote(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestUnquoteRejects(t *testing.T) {
	for _, in := range []string{``, `abc`, `"abc`, `"abc\"`, `"a"b`, `"\400"`, `"\777"`, `"a" `, `"\`} {
		if got, err := Unquote(in); !errors.Is(err, ErrQuote) {
			t.Errorf("Unquote(%q) = %q, %v; want ErrQuote", in, got, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []Arg
	}{
		{"", nil},
		{"  ", nil},
		{"153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER",
			[]Arg{{"", "153"}, {"", "NEW"}, {"", "0"}, {"", "127.0.0.1:15120"}, {"SOURCE_ADDR", "127.0.0.1:58538"}, {"PURPOSE", "USER"}}},
		{`SOCKS_USERNAME="al ice" SOCKS_PASSWORD="p\"w"`, []Arg{{"SOCKS_USERNAME", "al ice"}, {"SOCKS_PASSWORD", `p"w`}}},
		{`example.test 127.0.0.1 "2026-11-22 11:18:57" EXPIRES="2026-11-22 11:18:57" CACHED="NO" STREAMID=159`,
			[]Arg{{"", "example.test"}, {"", "127.0.0.1"}, {"", "2026-11-22 11:18:57"}, {"EXPIRES", "2026-11-22 11:18:57"}, {"CACHED", "NO"}, {"STREAMID", "159"}}},
		{`nx.invalid <error> "2026-11-22 11:18:57" error=yes`, []Arg{{"", "nx.invalid"}, {"", "<error>"}, {"", "2026-11-22 11:18:57"}, {"error", "yes"}}},
		// "$FP=nick" (old LongName) is positional: keywords start with ALNUM/_.
		{"94 BUILT $AAAA=auth0,$BBBB~exit0 BUILD_FLAGS=NEED_CAPACITY", []Arg{{"", "94"}, {"", "BUILT"}, {"", "$AAAA=auth0,$BBBB~exit0"}, {"BUILD_FLAGS", "NEED_CAPACITY"}}},
		{"K= L=x=y", []Arg{{"K", ""}, {"L", "x=y"}}},
		{"=x a b", []Arg{{"", "=x"}, {"", "a"}, {"", "b"}}},
		{`K="" "" x`, []Arg{{"K", ""}, {"", ""}, {"", "x"}}},
		{`SUMMARY="Done"`, []Arg{{"SUMMARY", "Done"}}},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q)\n = %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseArgsRejects(t *testing.T) {
	for _, in := range []string{`K="open`, `"open`, `K="a"b`, `"a"b`, `K="\400"`} {
		if _, err := ParseArgs(in); !errors.Is(err, ErrQuote) {
			t.Errorf("ParseArgs(%q): err %v, want ErrQuote", in, err)
		}
	}
}

func TestCheckToken(t *testing.T) {
	for _, bad := range []string{"", "a b", "a\r\nQUIT", "x\n", "nul\x00"} {
		if err := checkToken("x", bad); !errors.Is(err, ErrBadArgument) {
			t.Errorf("checkToken(%q) = %v", bad, err)
		}
	}
	if err := checkToken("x", "example.test"); err != nil {
		t.Error(err)
	}
}

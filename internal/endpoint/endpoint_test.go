package endpoint

import "testing"

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:9350", true},
		{"[::1]:9350", true},
		{"localhost:1", true},
		{"unix:/run/socksd.sock", true},
		{"unix:relative", false},
		{"example.com:80", false}, // a name would need a local lookup
		{"127.0.0.1", false},
		{"9050", false},
		{"localhost", false},
		{"", false},
	} {
		if err := Check(tc.in); (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ in, net, addr string }{
		{"127.0.0.1:1", "tcp", "127.0.0.1:1"},
		{"localhost:1", "tcp", "localhost:1"},
		{"unix:/run/x", "unix", "/run/x"},
	} {
		n, a := Split(tc.in)
		if n != tc.net || a != tc.addr {
			t.Errorf("%s: got %s %s", tc.in, n, a)
		}
	}
}

package torup

import (
	"strings"
	"testing"
)

func TestParseStreamStatus(t *testing.T) {
	got := streamEntries("12 NEW 0 1.2.3.4:80\n13 SUCCEEDED 5 example.test:443\nbroken\n")
	want := []statusEntry{{"12", "NEW", "0", "1.2.3.4:80"}, {"13", "SUCCEEDED", "5", "example.test:443"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseCircuitStatus(t *testing.T) {
	got := circuitEntries("7 BUILT $AA~a,$BB~b,$CC~c BUILD_FLAGS=NEED_CAPACITY PURPOSE=CONTROLLER\n8 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL\n")
	want := []statusEntry{{ID: "7", Status: "BUILT", Target: "$CC"}, {ID: "8", Status: "LAUNCHED"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// FuzzStatus feeds arbitrary GETINFO values to both parsers: they must not
// panic, and every entry must come from one line's fields.
func FuzzStatus(f *testing.F) {
	f.Add("12 NEW 0 1.2.3.4:80\n13 SUCCEEDED 5 x:1")
	f.Add("7 BUILT $AA~a,$BB~b BUILD_FLAGS=X PURPOSE=GENERAL\n8 LAUNCHED")
	f.Add("")
	f.Add("\n\n  \t\n1 2")
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range streamEntries(s) {
			if e.ID == "" || strings.ContainsAny(e.ID+e.Status+e.CircID+e.Target, " \n") {
				t.Fatalf("bad stream entry %+v", e)
			}
		}
		for _, e := range circuitEntries(s) {
			if e.ID == "" || strings.ContainsAny(e.ID+e.Status+e.Target, " \n") {
				t.Fatalf("bad circuit entry %+v", e)
			}
		}
		_ = exitOf(strings.Split(s, ","))
		_ = isOnion(s)
	})
}

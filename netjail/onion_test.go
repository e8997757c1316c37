package netjail

import (
	"slices"
	"testing"
)

func TestOnionNames(t *testing.T) {
	const v3 = "vaimz44t2lv6j4sl652rykbep4uiytfjnlpscqate3wlkyz346ccnkid.onion"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"http://" + v3 + "/x"}, []string{v3}},
		{[]string{"git@WWW." + v3 + ":repo.git"}, []string{"www." + v3}},
		{[]string{"-u", v3 + ":80", "https://" + v3}, []string{v3}},
		{[]string{"a.onionfoo.com", "onion", ".onion", "x.onion.evil.com"}, nil},
		{[]string{"http://example.com/"}, nil},
	} {
		if got := onionNames(tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("onionNames(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func FuzzOnionNames(f *testing.F) {
	f.Add("http://vaimz44t2lv6j4sl652rykbep4uiytfjnlpscqate3wlkyz346ccnkid.onion/")
	f.Add("x.onion.onion..onion")
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range onionNames([]string{s}) {
			if len(n) > 253 || n == "" {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}

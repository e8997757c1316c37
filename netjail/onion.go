package netjail

import (
	"strings"

	"socksd/resolve"
)

// onionNames returns the .onion host names that appear in args (in URLs,
// user@host forms or alone), normalised, each once.
//
// Go's resolver and curl refuse to ask DNS for .onion names (RFC 7686
// §2), so the run's resolver never hears of them. Go (and glibc) read
// /etc/hosts first, so the run lists these names there with their virtual
// addresses: a Go program given an onion address on its command line
// reaches it. curl checks the name before any lookup and still refuses.
func onionNames(args []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range args {
		a = strings.ToLower(a)
		for {
			i := strings.Index(a, ".onion")
			if i < 0 {
				break
			}
			end := i + len(".onion")
			// "x.onionfoo" and "x.onion.example" are not onion names;
			// "x.onion." (fully qualified) is.
			next := end
			if next < len(a) && a[next] == '.' {
				next++
			}
			if next < len(a) && isHostChar(a[next]) {
				a = a[end:]
				continue
			}
			start := i
			for start > 0 && isHostChar(a[start-1]) {
				start--
			}
			if name, err := resolve.NormalizeName(strings.Trim(a[start:end], ".")); err == nil && name != "onion" && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
			a = a[end:]
		}
	}
	return out
}

func isHostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

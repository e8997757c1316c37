package run

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnprivileged: a user without privileges runs the static program
// through socksd run (user namespaces) and reaches the network's HTTP
// server by name. (SOCKSD_RUN_AS runs the whole package that way.) Skips where the kernel does not allow unprivileged user
// namespaces, or without root to switch users with.
func TestUnprivileged(t *testing.T) {
	n := needTornet(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to start socksd run as another user (setpriv --reuid)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	argv := append(asUser("65534"), socksdBin, "run", "-socket", sd.socket, "--", fetcherBin, n.NameURL("/via"))
	r := command(t, argv...)
	if strings.Contains(r.stderr, "does not allow unprivileged user namespaces") {
		t.Skipf("this machine does not allow unprivileged user namespaces: %s", r.stderr)
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, "OK exit") {
		t.Fatalf("unprivileged socksd run: %v", r)
	}
	// And the program runs as that user, not as root of a namespace.
	r = command(t, append(asUser("65534"), socksdBin, "run", "-socket", sd.socket, "--", "id", "-u")...)
	if strings.TrimSpace(r.stdout) != "65534" {
		t.Fatalf("id -u inside the unprivileged run: %v", r)
	}
}

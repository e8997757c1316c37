package run

import (
	"debug/elf"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"socksd/test/tornet"
)

// TestStaticGoProgram: a statically linked Go program (net/http, no
// proxy, Go's own resolver) fetches the network's HTTP server by name and
// the onion service inside `socksd run`; Tor's STREAM events show the
// name's stream on a circuit socksd built (PURPOSE=CONTROLLER) and the
// onion stream succeeding.
func TestStaticGoProgram(t *testing.T) {
	n := needTornet(t)
	wantStatic(t, fetcherBin)
	w := watchStreams(t)
	r := jail(t, nil, fetcherBin, n.NameURL("/via"), n.OnionURL("/"))
	if r.code != 0 {
		t.Fatalf("fetcher in socksd run: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "OK exit") || lines[1] != "OK "+strings.TrimSpace(tornet.HelloBody) {
		t.Fatalf("fetcher output %q, want OK exitN and OK %q", lines, tornet.HelloBody)
	}
	nameNew, name := w.succeeded(t, tornet.HostName+":"+strconv.Itoa(n.HTTPPort))
	if p := circuitPurpose(t, name.Circ); p != "CONTROLLER" {
		t.Errorf("stream %s by name on circuit %s with purpose %q, want socksd's (CONTROLLER)", name.ID, name.Circ, p)
	}
	onionNew, onion := w.succeeded(t, n.OnionHost+":80")
	// socksd's chain sends <torS0X>0 credentials; the forwarder's own
	// would be different.
	for _, e := range []streamEv{nameNew, onionNew} {
		if !strings.Contains(e.Line, `SOCKS_USERNAME="<torS0X>0"`) {
			t.Errorf("stream %s did not come from socksd: %s", e.ID, e.Line)
		}
	}
	t.Logf("name: stream %s on socksd circuit %s (%s); onion: stream %s on circuit %s", name.ID, name.Circ, lines[0], onion.ID, onion.Circ)
}

// wantStatic fails unless path is a statically linked ELF binary (no
// program interpreter): the dynamic loader, and so LD_PRELOAD, never
// runs for it.
func wantStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a program interpreter: not statically linked", path)
		}
	}
}

// TestCurlNoProxy: curl, given no proxy option and no proxy variable,
// reaches the network's HTTP server by name through the jail.
// -4 and -6 force each family: the name's virtual IPv4 and IPv6 addresses
// are both redirected and both become the same hostname request.
func TestCurlNoProxy(t *testing.T) {
	n := needTornet(t)
	for _, family := range []string{"", "-4", "-6"} {
		args := []string{"curl", "-sS", "--max-time", "60", n.NameURL("/via")}
		if family != "" {
			args = append(args, family)
		}
		r := jail(t, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "exit") {
			t.Fatalf("curl %s in socksd run: %v", family, r)
		}
	}
}

// TestGitClone: git clones over http from a repository the test serves on
// loopback, reached through a Tor exit by name.
func TestGitClone(t *testing.T) {
	needTornet(t)
	dir := sharedTempDir(t) // the clone may run as SOCKSD_RUN_AS
	repo := filepath.Join(dir, "src")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = append(cleanEnv(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	const content = "cloned through socksd run\n"
	git("init", "-q", "-b", "main", repo)
	if err := os.WriteFile(filepath.Join(repo, "README"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	git("-C", repo, "add", "README")
	git("-C", repo, "commit", "-q", "-m", "first")
	bare := filepath.Join(dir, "served", "repo.git")
	git("clone", "-q", "--bare", repo, bare)
	git("-C", bare, "update-server-info") // git's "dumb" HTTP protocol: plain files

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(dir, "served")))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	dst := filepath.Join(dir, "clone")
	r := jail(t, nil, "env", "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1",
		"git", "clone", "-q", "http://"+tornet.HostName+":"+port+"/repo.git", dst)
	if r.code != 0 {
		t.Fatalf("git clone in socksd run: %v", r)
	}
	got, err := os.ReadFile(filepath.Join(dst, "README"))
	if err != nil || string(got) != content {
		t.Fatalf("cloned README = %q, %v; want %q", got, err, content)
	}
}

package systest

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// session is a running "probe session" inside the box: tunnels through
// socksd that stay open while the test reloads or renews identities.
type session struct {
	t      *testing.T
	stdin  io.WriteCloser
	lines  chan string
	cancel context.CancelFunc
}

func (e *env) session(t *testing.T, socks string) *session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := e.box.Command(ctx, "/srv/systest/probe", "session", socks, e.target)
	stdin, stdout := startPiped(t, cmd)
	s := &session{t: t, stdin: stdin, lines: make(chan string, 16), cancel: cancel}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		io.WriteString(stdin, "quit\n")
		stdin.Close()
		cmd.Wait()
		cancel()
	})
	return s
}

// startPiped starts cmd (a probe in the box) with pipes to its stdin and
// from its stdout, failing the test if it cannot start.
func startPiped(t *testing.T, cmd *exec.Cmd) (io.WriteCloser, io.Reader) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdin, stdout
}

// do sends one command and returns the body of its "ok" answer.
func (s *session) do(cmd string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
		s.t.Fatal(err)
	}
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("%s: probe exited", cmd)
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 || f[0] != "ok" {
			s.t.Fatalf("%s: %s", cmd, l)
		}
		if len(f) == 3 {
			return f[2]
		}
		return ""
	case <-time.After(90 * time.Second):
		s.t.Fatalf("%s: no answer in 90 s", cmd)
	}
	return ""
}

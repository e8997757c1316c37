package run

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// result is what a process run by a test did.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// runAsEnv, set to a uid, runs every socksd run of the package as that
// user (and its group of the same number) through setpriv: the whole
// suite unprivileged, through user namespaces.
//
//	SOCKSD_RUN_AS=65534 SOCKSD_TORNET=1 go test ./test/run/
const runAsEnv = "SOCKSD_RUN_AS"

// asUser is setpriv's command line for running as uid, with no
// supplementary groups.
func asUser(uid string) []string {
	return []string{"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--"}
}

// jailArgs is the command line of `socksd run` with the package's socksd.
func jailArgs(flags []string, argv ...string) []string {
	return jailArgsSocket(sd.socket, flags, argv...)
}

// jailArgsSocket is jailArgs with another socket.
func jailArgsSocket(socket string, flags []string, argv ...string) []string {
	var a []string
	if uid := os.Getenv(runAsEnv); uid != "" {
		a = asUser(uid)
	}
	a = append(append(a, socksdBin, "run", "-socket", socket), flags...)
	return append(append(a, "--"), argv...)
}

// sharedTempDir is t.TempDir opened to every user (mode 0777), for files
// a run as SOCKSD_RUN_AS must read or write.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// jail runs argv under `socksd run` (extra flags first) and waits for it,
// at most 2 minutes.
func jail(t *testing.T, flags []string, argv ...string) result {
	t.Helper()
	needTornet(t)
	return command(t, jailArgs(flags, argv...)...)
}

// command runs argv outside the jail, at most 2 minutes.
func command(t testing.TB, argv ...string) result {
	t.Helper()
	return commandFor(t, 2*time.Minute, argv...)
}

// commandFor runs argv, killing it after limit.
func commandFor(t testing.TB, limit time.Duration, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(t0)}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			// Errorf, not Fatalf: command also runs on goroutines.
			t.Errorf("%v: %v", argv, err)
			r.code = -1
		}
	}
	return r
}

// cleanEnv is the environment without any proxy variable: the programs
// must not be told about socksd at all.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}

package tornet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// authority holds what the other nodes' DirAuthority lines need.
type authority struct {
	name    string
	orPort  int
	dirPort int
	v3ident string // fingerprint of the authority identity key (tor-gencert)
	fp      string // relay identity fingerprint
}

func (a authority) dirAuthorityLine() string {
	return fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s",
		a.name, a.orPort, a.v3ident, a.dirPort, a.fp)
}

// makeAuthorityKeys creates, in parallel, each authority's v3 keys
// (tor-gencert, RSA-3072: seconds on a loaded 2-core box) and relay identity
// (tor --list-fingerprint). With a cache dir it reuses keys from an earlier
// run.
func makeAuthorityKeys(ctx context.Context, cfg *config, auths []authority) error {
	var cacheDir string
	if cfg.keyCache != "" {
		// Not keyed by port: the certificate carries no dir-address (no
		// -a below; DirAuthority lines say where each authority is), so
		// one set of keys serves every port block and concurrent networks.
		cacheDir = filepath.Join(cfg.keyCache, "v1")
	}
	var wg sync.WaitGroup
	errs := make([]error, len(auths))
	for i := range auths {
		wg.Add(1)
		go func(a *authority, errp *error) {
			defer wg.Done()
			*errp = makeOneAuthority(ctx, cfg, a, cacheDir)
		}(&auths[i], &errs[i])
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func makeOneAuthority(ctx context.Context, cfg *config, a *authority, cacheDir string) error {
	dir := filepath.Join(cfg.dir, a.name)
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	var cached string
	if cacheDir != "" {
		cached = filepath.Join(cacheDir, a.name)
		if fileNonEmpty(filepath.Join(cached, "fingerprint")) && fileNonEmpty(filepath.Join(cached, "keys", "authority_certificate")) {
			if err := exec.CommandContext(ctx, "cp", "-a", cached+"/.", dir+"/").Run(); err != nil {
				return fmt.Errorf("tornet: copy cached keys for %s: %w", a.name, err)
			}
			return readAuthorityIDs(dir, a)
		}
	}
	gencert := exec.CommandContext(ctx, "tor-gencert", "--create-identity-key", "-m", "12",
		"-i", "authority_identity_key", "-s", "authority_signing_key", "-c", "authority_certificate",
		"--passphrase-fd", "0")
	gencert.Dir = keys
	gencert.Stdin = strings.NewReader("")
	var errGen, errFP error
	var outGen, outFP []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		outGen, errGen = gencert.CombinedOutput()
	}()
	fpCmd := exec.CommandContext(ctx, cfg.tor, "--defaults-torrc", cfg.emptyTorrc, "-f", cfg.emptyTorrc,
		"--list-fingerprint", "--orport", "1",
		"--dirserver", "xyzzy 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
		"--datadirectory", dir, "--log", "err stderr")
	outFP, errFP = fpCmd.CombinedOutput()
	wg.Wait()
	if errGen != nil {
		return fmt.Errorf("tornet: tor-gencert for %s: %w: %s", a.name, errGen, outGen)
	}
	if errFP != nil {
		return fmt.Errorf("tornet: tor --list-fingerprint for %s: %w: %s", a.name, errFP, outFP)
	}
	if err := readAuthorityIDs(dir, a); err != nil {
		return err
	}
	if cached != "" {
		// Best effort: a failed cache write only costs the next run time.
		// Written to a temp dir and renamed into place, so concurrent
		// networks filling a cold cache never mix two key sets.
		if err := os.MkdirAll(cacheDir, 0o700); err == nil {
			if tmp, err := os.MkdirTemp(cacheDir, a.name+".tmp-"); err == nil {
				err := exec.Command("cp", "-a", keys, filepath.Join(dir, "fingerprint"), tmp+"/").Run()
				if err != nil || os.Rename(tmp, cached) != nil { // rename fails if another run won
					os.RemoveAll(tmp)
				}
			}
		}
	}
	return nil
}

func readAuthorityIDs(dir string, a *authority) error {
	v3, err := fieldAfter(filepath.Join(dir, "keys", "authority_certificate"), "fingerprint")
	if err != nil {
		return err
	}
	fp, err := relayFingerprint(dir)
	if err != nil {
		return err
	}
	if len(v3) != 40 || len(fp) != 40 {
		return fmt.Errorf("tornet: bad keys for %s (v3ident %q, fingerprint %q)", a.name, v3, fp)
	}
	a.v3ident, a.fp = v3, fp
	return nil
}

// relayFingerprint reads DataDirectory/fingerprint ("nickname FP").
func relayFingerprint(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "fingerprint"))
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", fmt.Errorf("tornet: malformed %s/fingerprint: %q", dataDir, b)
	}
	return f[1], nil
}

// fieldAfter returns the first word after a line starting with key.
func fieldAfter(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) >= 2 && w[0] == key {
			return w[1], nil
		}
	}
	return "", fmt.Errorf("tornet: no %q line in %s", key, path)
}

func fileNonEmpty(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() > 0
}

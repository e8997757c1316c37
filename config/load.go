package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Sentinel errors of this package.
var (
	// ErrUnknownKey marks a key the file sets that socksd does not know:
	// a typo must not silently fall back to a default.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid marks a value that decoded but failed validation.
	ErrInvalid = errors.New("config: invalid value")
)

// Load reads, strictly decodes and validates the file at path. Keys the
// file omits keep their Default() value.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse strictly decodes a TOML document over Default() and validates it.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	// A TOML array replaces the default slice rather than appending to it,
	// which is what a user writing `listen = [...]` means.
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var errs []error
		for _, k := range und {
			name := k.String()
			if line := findKeyLine(data, k); line > 0 {
				errs = append(errs, fmt.Errorf("%w %q (line %d)", ErrUnknownKey, name, line))
			} else {
				errs = append(errs, fmt.Errorf("%w %q", ErrUnknownKey, name))
			}
		}
		return Config{}, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// findKeyLine returns the 1-based line where key is set, or 0. The TOML
// library keeps key positions private, so this scans the text: it tracks
// the current [table] / [[array]] header and matches `last = ...` lines, or
// a header naming the key itself. Dotted keys and inline tables are not
// traced; the error then names the key without a line.
func findKeyLine(data []byte, key toml.Key) int {
	if len(key) == 0 {
		return 0
	}
	want := strings.Join(key, ".")
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			h := strings.Trim(strings.SplitN(line, "#", 2)[0], " \t")
			h = strings.Trim(h, "[] \t")
			table = strings.ReplaceAll(h, " ", "")
			if table == want {
				return n
			}
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(line[:eq]), `"'`)
		full := name
		if table != "" {
			full = table + "." + name
		}
		if full == want {
			return n
		}
	}
	return 0
}

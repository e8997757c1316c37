package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"socksd/config"
)

func TestLoggerFormats(t *testing.T) {
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d`)
	for _, tc := range []struct {
		name    string
		format  string
		journal string
		json    bool
		stamped bool
	}{
		{"auto, not a terminal: JSON", "auto", "", true, true},
		{"auto under systemd: console without timestamps", "auto", "8:12345", false, false},
		{"console", "console", "", false, true},
		{"json under systemd", "json", "8:12345", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.journal)
			var out bytes.Buffer
			log, err := newLogger(config.Log{Level: "info", Format: tc.format}, zap.NewAtomicLevel(), &out)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			log.Debug("hidden at info")
			line := strings.TrimSpace(out.String())
			if strings.Contains(line, "hidden") || strings.Count(line, "\n") != 0 {
				t.Fatalf("level not applied: %q", line)
			}
			if isJSON := json.Valid([]byte(line)); isJSON != tc.json {
				t.Fatalf("JSON = %v, want %v: %q", isJSON, tc.json, line)
			}
			if got := stamp.MatchString(line); got != tc.stamped {
				t.Fatalf("timestamp = %v, want %v: %q", got, tc.stamped, line)
			}
		})
	}
	if _, err := newLogger(config.Log{Level: "loud", Format: "json"}, zap.NewAtomicLevel(), &bytes.Buffer{}); err == nil {
		t.Fatal("bad level accepted")
	}
}

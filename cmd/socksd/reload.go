package main

import (
	"reflect"
	"strings"

	"socksd/config"
	"socksd/dispatch"
)

// Every key of the file ends up in what start builds: the parts a reload
// applies (live) or the parts built once (fixedOf). A reload builds both
// from the new file with the same functions start uses and compares them
// with the running ones, so a setting is either applied or named in a
// warning; TestReloadEveryKey changes each key once to hold that.

// live is what a reload applies without a restart.
type live struct {
	Settings  dispatch.Settings
	Listeners []dispatch.ListenerConfig // isolation, keep_alive and session groups included
	LogLevel  string
}

func liveOf(cfg config.Config) live {
	return live{Settings: cfg.Settings(), Listeners: cfg.Listeners(), LogLevel: cfg.Log.Level}
}

// fixedPart is something start builds once from one section of the file
// (or one top-level key): the Tor connection, the DNS bridge, the metrics
// listener, the logger's encoder, the state directory.
type fixedPart struct {
	key   string // the section or key in the file
	built any
}

func fixedOf(cfg config.Config) []fixedPart {
	return []fixedPart{
		{"tor", torConfig(cfg)},
		{"dns", dnsConfig(cfg)},
		{"metrics", cfg.Metrics},
		{"log.format", cfg.Log.Format},
		{"state_dir", cfg.StateDir},
	}
}

// changes compares the running configuration with a new one as reload
// applies it: applied reports whether the live part differs, restart names
// every key of a fixed part that differs.
func changes(old, cfg config.Config) (applied bool, restart []string) {
	applied = !reflect.DeepEqual(liveOf(old), liveOf(cfg))
	was := fixedOf(old)
	for i, p := range fixedOf(cfg) {
		restart = append(restart, changedKeys(p.key, was[i].built, p.built)...)
	}
	return applied, restart
}

// changedKeys names what differs between a and b: for a struct, each
// differing field by its TOML key (a field tagged "-" is filled from
// another part of the file, which is compared on its own; an untagged one
// is named by the part's key); otherwise key.
func changedKeys(key string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() != reflect.Struct {
		if reflect.DeepEqual(a, b) {
			return nil
		}
		return []string{key}
	}
	var out []string
	for i := 0; i < va.NumField(); i++ {
		tag, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("toml"), ",")
		if tag == "-" || reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		name := key
		if tag != "" {
			name = key + "." + tag
		}
		if len(out) == 0 || out[len(out)-1] != name {
			out = append(out, name)
		}
	}
	return out
}

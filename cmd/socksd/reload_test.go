package main

import (
	"encoding"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"socksd/config"
	"socksd/dispatch"
	"socksd/isolation"
)

// TestReloadChanges: a reload applies listeners, [socks], [isolation] and
// log.level, and names every other change by its key.
func TestReloadChanges(t *testing.T) {
	base := config.Default()
	for _, tc := range []struct {
		name    string
		mod     func(*config.Config)
		applied bool
		restart []string
	}{
		{"nothing", func(*config.Config) {}, false, nil},
		{"listeners and [socks] apply", func(c *config.Config) {
			c.SOCKS.Listen = append(c.SOCKS.Listen, "127.0.0.1:1")
			c.SOCKS.SafeSOCKS = true
			c.Isolation.DestPort = true
			c.Log.Level = "debug"
		}, true, nil},
		{"keep_alive applies", func(c *config.Config) { c.Isolation.KeepAlive = true }, true, nil},
		{"tor", func(c *config.Config) { c.Tor.Control = "127.0.0.1:9051" }, false, []string{"tor.control"}},
		{"socks_timeout: the dispatcher's wait applies, the attacher's needs a restart",
			func(c *config.Config) { c.Tor.SOCKSTimeout = time.Minute }, true, []string{"tor.socks_timeout"}},
		{"metrics", func(c *config.Config) { c.Metrics.Listen = "" }, false, []string{"metrics.listen"}},
		{"dns listen", func(c *config.Config) { c.DNS.Listen = []string{"127.0.0.1:5353"} }, false, []string{"dns.listen"}},
		{"dns ttl", func(c *config.Config) { c.DNS.TTL = time.Minute * 2 }, false, []string{"dns.ttl"}},
		{"state_dir and format", func(c *config.Config) { c.StateDir = "/x"; c.Log.Format = "json" }, false, []string{"log.format", "state_dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.mod(&cfg)
			applied, restart := changes(base, cfg)
			if applied != tc.applied || !reflect.DeepEqual(restart, tc.restart) {
				t.Fatalf("changes = %v %q, want %v %q", applied, restart, tc.applied, tc.restart)
			}
		})
	}
}

// TestReloadEveryKey changes every key of the configuration file once,
// found by walking config.Config's TOML fields (so a key added later is
// covered without editing this test), and requires the reload to apply
// it or to name it in a restart warning. A per-listener table with every
// override set stands in for [[socks.listener]].
func TestReloadEveryKey(t *testing.T) {
	base := config.Default()
	on := true
	base.SOCKS.Listener = []dispatch.ListenerTable{{Listen: "127.0.0.1:2", SessionGroup: "g", Isolation: &isolation.Override{}}}
	ov := reflect.ValueOf(base.SOCKS.Listener[0].Isolation).Elem()
	for i := 0; i < ov.NumField(); i++ {
		ov.Field(i).Set(reflect.ValueOf(&on))
	}

	n := 0
	var walk, leaf func(key string, v reflect.Value)
	walk = func(key string, v reflect.Value) {
		switch {
		case textValue(v.Type()):
			// A value the file spells as text (a network, an automap
			// mode) is one key, whatever its Go shape.
			leaf(key, v)
		case v.Kind() == reflect.Struct:
			keys := 0
			for i := 0; i < v.NumField(); i++ {
				tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ",")
				if tag == "" || tag == "-" {
					continue
				}
				keys++
				walk(strings.TrimPrefix(key+"."+tag, "."), v.Field(i))
			}
			if keys == 0 {
				t.Errorf("%s: a %s has no TOML keys; teach this walk its shape", key, v.Type())
			}
		case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
			walk(key, v.Elem())
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct && !textValue(v.Type().Elem()):
			walk(key, v.Index(0))
		default:
			leaf(key, v)
		}
	}
	leaf = func(key string, v reflect.Value) {
		n++
		t.Run(key, func(t *testing.T) {
			old := reflect.ValueOf(v.Interface())
			before := cloneConfig(base)
			change(t, v)
			after := cloneConfig(base)
			v.Set(old)
			applied, restart := changes(before, after)
			if !applied && !slices.Contains(restart, key) {
				t.Errorf("%s changed: neither applied by a reload nor named as needing a restart (restart: %q)", key, restart)
			}
		})
	}
	walk("", reflect.ValueOf(&base).Elem())
	if n < 40 {
		t.Fatalf("walked %d keys; the walk missed sections", n)
	}
}

// cloneConfig returns a copy of cfg that shares no slice or pointer with
// it, so changing cfg afterwards leaves the copy as it was.
func cloneConfig(cfg config.Config) config.Config {
	c := cfg
	c.SOCKS.Listen = slices.Clone(cfg.SOCKS.Listen)
	c.DNS.Listen, c.DNS.Allow, c.DNS.AutomapSuffixes = slices.Clone(cfg.DNS.Listen), slices.Clone(cfg.DNS.Allow), slices.Clone(cfg.DNS.AutomapSuffixes)
	c.SOCKS.Listener = slices.Clone(cfg.SOCKS.Listener)
	for i, l := range c.SOCKS.Listener {
		if l.Isolation != nil {
			o := *l.Isolation
			ov := reflect.ValueOf(&o).Elem()
			for j := 0; j < ov.NumField(); j++ {
				if p := ov.Field(j); !p.IsNil() {
					b := p.Elem().Bool()
					p.Set(reflect.ValueOf(&b))
				}
			}
			c.SOCKS.Listener[i].Isolation = &o
		}
	}
	return c
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// textValue reports whether the file spells a value of type t as text.
func textValue(t reflect.Type) bool { return reflect.PointerTo(t).Implements(textUnmarshaler) }

// change gives v a different value of its type.
func change(t *testing.T, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Slice && textValue(v.Type().Elem()) {
		e := reflect.New(v.Type().Elem())
		otherText(t, e)
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, v.Len()+1), append(sliceValues(v), e.Elem())...))
		return
	}
	if textValue(v.Type()) {
		otherText(t, v.Addr())
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + int64(time.Second))
	case reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, v.Len()+1), append(sliceValues(v), reflect.ValueOf("127.0.0.1:3"))...))
	case reflect.Pointer:
		if v.Type().Elem().Kind() != reflect.Bool {
			t.Fatalf("no way to change a %s", v.Type())
		}
		b := !v.Elem().Bool()
		v.Set(reflect.ValueOf(&b))
	default:
		t.Fatalf("no way to change a %s", v.Type())
	}
}

// otherText sets *p to the first of a few texts that decodes into a value
// other than its current one.
func otherText(t *testing.T, p reflect.Value) {
	t.Helper()
	was := reflect.ValueOf(p.Elem().Interface())
	for _, s := range []string{"10.99.0.0/16", "fd00:99::/64", "off", "suffixes"} {
		if p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)) == nil && !reflect.DeepEqual(p.Elem().Interface(), was.Interface()) {
			return
		}
		p.Elem().Set(was)
	}
	t.Fatalf("no text changes a %s", p.Elem().Type())
}

func sliceValues(v reflect.Value) []reflect.Value {
	out := make([]reflect.Value, v.Len())
	for i := range out {
		out[i] = v.Index(i)
	}
	return out
}

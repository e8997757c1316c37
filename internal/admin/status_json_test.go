package admin

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// statusKeys is the /status JSON interface documented in README ("Status
// JSON"). Changing this list is changing an interface scripts depend on:
// add keys, never rename or remove one. Paths use "." for objects and
// "[]" for array elements; "streams" is a map keyed by protocol.
var statusKeys = []string{
	"dns", "dns.capacity", "dns.listen", "dns.mappings", "dns.pool_exhausted",
	"identities", "identities[].circuits", "identities[].key", "identities[].streams",
	"listeners", "listeners[].addr", "listeners[].config",
	"recent", "recent[].code", "recent[].protocol", "recent[].time",
	"replies", "replies[].code", "replies[].count", "replies[].protocol",
	"started", "streams",
	"tor", "tor.bootstrap", "tor.connected", "tor.control", "tor.last_error",
	"tor.mode", "tor.reconnects", "tor.socks",
	"version",
}

// jsonPaths collects the object keys of v, a decoded JSON value. The
// entries of the "streams" map are data, not keys.
func jsonPaths(prefix string, v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if prefix == "streams" {
			return
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			jsonPaths(p, e, out)
		}
	case []any:
		for _, e := range x {
			jsonPaths(prefix+"[]", e, out)
		}
	}
}

// TestStatusJSONKeys pins GET /status's keys: a fully populated snapshot
// must produce exactly statusKeys, so a field added without its JSON tag
// (it would appear as "LastError") or a renamed tag fails here.
func TestStatusJSONKeys(t *testing.T) {
	f := &fakeDaemon{}
	code, body := serve(f.handler(), req("GET", "http://127.0.0.1:9352/status", "127.0.0.1:1"))
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	jsonPaths("", v, got)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := slices.Clone(statusKeys)
	sort.Strings(want)
	if !slices.Equal(keys, want) {
		t.Errorf("/status keys changed\n got: %s\nwant: %s", strings.Join(keys, " "), strings.Join(want, " "))
	}
	// Values reach the documented keys.
	m := v.(map[string]any)
	if tor := m["tor"].(map[string]any); tor["bootstrap"] != 85.0 || tor["connected"] != true {
		t.Errorf("tor: %v", tor)
	}
	if m["streams"].(map[string]any)["socks5"] != 3.0 {
		t.Errorf("streams: %v", m["streams"])
	}
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestStatusJSONTags: every field of every type reachable from Status has
// an explicit lower-case snake_case JSON tag, including fields that the
// fake snapshot above leaves empty.
func TestStatusJSONTags(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty.PkgPath() != reflect.TypeFor[Status]().PkgPath() || seen[ty] {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			fl := ty.Field(i)
			if !fl.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(fl.Tag.Get("json"), ",")
			if !snakeCase.MatchString(name) {
				t.Errorf("%s.%s: json tag %q is not lower-case snake_case", ty.Name(), fl.Name, name)
			}
			walk(fl.Type)
		}
	}
	walk(reflect.TypeFor[Status]())
	if len(seen) < 7 {
		t.Errorf("walked %d types, want every type of the snapshot", len(seen))
	}
}

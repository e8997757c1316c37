package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"time"
)

// pageTmpl is the status page: one self-contained HTML document (inline
// CSS, no scripts, no external assets), refreshed by the browser every
// 10 s. html/template escapes every value.
var pageTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Truncate(time.Second).String() },
	"ts":  func(t time.Time) string { return t.UTC().Format("15:04:05Z") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>socksd status</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:.15em .8em .15em 0;text-align:left;vertical-align:top}
code{font-size:.9em}.ok{color:#080;font-weight:bold}.bad{color:#b00;font-weight:bold}.muted{color:#777}
</style></head><body>
<h1>socksd status</h1>
<p>{{.S.Version}} · up {{ago .S.Started}}</p>

<h2>Tor</h2>
<p id="tor-state" class="{{if .Healthy}}ok{{else}}bad{{end}}">{{.Health}}</p>
<table>
<tr><th>mode</th><td>{{.S.Tor.Mode}}</td></tr>
{{if .S.Tor.Control}}<tr><th>control port</th><td><code>{{.S.Tor.Control}}</code> {{if .S.Tor.Connected}}<span class="ok">connected</span>{{else}}<span class="bad">not connected</span>{{end}}</td></tr>{{end}}
<tr><th>SocksPort</th><td><code>{{or .S.Tor.SOCKS "unknown"}}</code></td></tr>
<tr><th>bootstrap</th><td id="bootstrap">{{if lt .S.Tor.Bootstrap 0}}unknown (no control port){{else}}{{.S.Tor.Bootstrap}}%{{end}}</td></tr>
<tr><th>reconnects</th><td>{{.S.Tor.Reconnects}}</td></tr>
{{if .S.Tor.LastError}}<tr><th>last error</th><td>{{.S.Tor.LastError}}</td></tr>{{end}}
</table>

<h2>Listeners</h2>
<table>{{range .S.Listeners}}<tr><td><code>{{.Config}}</code></td><td class="muted">{{.Addr}}</td></tr>{{else}}<tr><td>none</td></tr>{{end}}</table>

<h2>Live streams</h2>
<table>{{range .Streams}}<tr><th>{{.Name}}</th><td>{{.N}}</td></tr>{{else}}<tr><td class="muted">none</td></tr>{{end}}</table>

<h2>Circuits per isolation identity</h2>
<p class="muted">Identities are hashes of the isolation key (no credentials). Only identities with live streams are listed.</p>
<table><tr><th>identity</th><th>streams</th><th>circuits</th></tr>
{{range .S.Identities}}<tr><td><code>{{.Key}}</code></td><td>{{.Streams}}</td><td>{{range .Circuits}}{{.}} {{else}}<span class="muted">none yet</span>{{end}}</td></tr>{{end}}
</table>

<h2>DNS bridge</h2>
{{with .S.DNS}}<table>
<tr><th>listen</th><td>{{range .Listen}}<code>{{.}}</code> {{end}}</td></tr>
<tr><th>mappings</th><td id="mappings">{{.Mappings}}{{if .Capacity}} of {{.Capacity}}{{end}}</td></tr>
{{if .PoolExhausted}}<tr><th>pool full</th><td id="pool-full" class="bad">{{.PoolExhausted}} queries got SERVFAIL: every virtual address was in use (widen <code>virtual_network_ipv4</code>/<code>_ipv6</code> or lower <code>ttl</code>)</td></tr>{{end}}
</table>{{else}}<p class="muted">off (<code>[dns] listen</code> is empty)</p>{{end}}

<h2>Replies by code (since start)</h2>
<table><tr><th>protocol</th><th>code</th><th>count</th></tr>
{{range .S.Replies}}<tr><td>{{.Protocol}}</td><td>{{.Code}}</td><td>{{.Count}}</td></tr>{{else}}<tr><td class="muted" colspan="3">none yet</td></tr>{{end}}
</table>

<h2>Recent errors</h2>
<table>{{range .S.Recent}}<tr><td>{{ts .Time}}</td><td>{{.Protocol}}</td><td>{{.Code}}</td></tr>{{else}}<tr><td class="muted">none</td></tr>{{end}}</table>

<p class="muted">Machine-readable: <a href="/status">/status</a> (JSON), <a href="/metrics">/metrics</a>, <a href="/healthz">/healthz</a>. New identity: <code>curl -X POST http://{{.Host}}/newnym</code></p>
</body></html>
`))

type namedCount struct {
	Name string
	N    int
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	if h.Status == nil {
		http.Error(w, "no status wired", http.StatusServiceUnavailable)
		return
	}
	s := h.Status()
	data := struct {
		S       Status
		Healthy bool
		Health  string
		Streams []namedCount
		Host    string
	}{S: s, Host: r.Host}
	if h.Health != nil {
		ok, reason := h.Health(r.Context())
		data.Healthy = ok
		data.Health = "Tor is usable"
		if !ok {
			data.Health = "Tor is NOT usable: " + reason + " (clients get SOCKS errors; socksd never connects directly)"
		}
	}
	for p, n := range s.Streams {
		data.Streams = append(data.Streams, namedCount{p, n})
	}
	sort.Slice(data.Streams, func(i, j int) bool { return data.Streams[i].Name < data.Streams[j].Name })
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		http.Error(w, fmt.Sprintf("status page: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No external resources at all; also no framing by other sites.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(buf.Bytes())
}

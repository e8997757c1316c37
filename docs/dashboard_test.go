package docs_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"socksd/dispatch"
)

const (
	dashboardPath = "../deploy/grafana-dashboard.json"
	moduleRoot    = ".."
)

// metricInfo is one series name a scrape of socksd can contain, with the
// label names it carries.
type metricInfo struct {
	labels map[string]bool
	where  string // source position or "runtime collector"
}

// registeredMetrics scans every non-test Go file of the module for
// prometheus.{Counter,Gauge,Histogram,Summary}Opts literals and returns the
// series names they produce (histograms add _bucket/_sum/_count, summaries
// _sum/_count) with the label names of the *Vec constructor around them.
// Scanning the source, rather than gathering a registry, also finds vectors
// that have no child yet (Gather omits those) and metrics of unexported
// constructors.
func registeredMetrics(t *testing.T) map[string]*metricInfo {
	t.Helper()
	out := map[string]*metricInfo{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		scanFile(t, fset, f, out)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// scanFile adds the metrics defined in f to out.
func scanFile(t *testing.T, fset *token.FileSet, f *ast.File, out map[string]*metricInfo) {
	// String constants anywhere in the file (package level or inside the
	// constructor, like `const ns, sub = "socksd", "dns"`).
	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		gd, ok := n.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			return true
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if s, ok := stringLit(vs.Values[i]); ok {
						consts[name.Name] = s
					}
				}
			}
		}
		return true
	})
	str := func(e ast.Expr) (string, bool) {
		if s, ok := stringLit(e); ok {
			return s, true
		}
		if id, ok := e.(*ast.Ident); ok {
			s, ok := consts[id.Name]
			return s, ok
		}
		return "", false
	}
	// Labels: the []string literal passed next to the opts to New*Vec.
	labelsOf := map[*ast.CompositeLit][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		names, ok := call.Args[1].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var ls []string
		for _, e := range names.Elts {
			s, ok := str(e)
			if !ok {
				t.Logf("%s: label name is not a string constant; the dashboard cannot be checked against it", fset.Position(e.Pos()))
				continue
			}
			ls = append(ls, s)
		}
		labelsOf[opts] = ls
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := cl.Type.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
			return true
		}
		var suffixes []string
		switch sel.Sel.Name {
		case "CounterOpts", "GaugeOpts":
			suffixes = []string{""}
		case "HistogramOpts":
			suffixes = []string{"_bucket", "_sum", "_count"}
		case "SummaryOpts":
			suffixes = []string{"", "_sum", "_count"}
		default:
			return true
		}
		parts := map[string]string{}
		for _, e := range cl.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key := kv.Key.(*ast.Ident).Name
			switch key {
			case "Namespace", "Subsystem", "Name":
				s, ok := str(kv.Value)
				if !ok {
					t.Logf("%s: %s of a metric is not a string constant; the dashboard cannot be checked against it", fset.Position(kv.Pos()), key)
					continue
				}
				parts[key] = s
			}
		}
		if parts["Name"] == "" {
			return true // not resolvable (logged above) or not a metric definition
		}
		name := prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"])
		pos := fset.Position(cl.Pos()).String()
		for _, sfx := range suffixes {
			mi := &metricInfo{labels: map[string]bool{}, where: pos}
			for _, l := range labelsOf[cl] {
				mi.labels[l] = true
			}
			if sel.Sel.Name == "HistogramOpts" && sfx == "_bucket" {
				mi.labels["le"] = true
			}
			if sel.Sel.Name == "SummaryOpts" && sfx == "" {
				mi.labels["quantile"] = true
			}
			out[name+sfx] = mi
		}
		return true
	})
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// runtimeMetrics gathers the Go and process collectors socksd registers in
// cmd/socksd (checked by TestRuntimeCollectorsRegistered).
func runtimeMetrics(t *testing.T) map[string]*metricInfo {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*metricInfo{}
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		add := func(name string, extra ...string) {
			mi := &metricInfo{labels: map[string]bool{}, where: "runtime collector"}
			for l := range labels {
				mi.labels[l] = true
			}
			for _, l := range extra {
				mi.labels[l] = true
			}
			out[name] = mi
		}
		switch mf.GetType().String() {
		case "SUMMARY":
			add(mf.GetName(), "quantile")
			add(mf.GetName() + "_sum")
			add(mf.GetName() + "_count")
		case "HISTOGRAM":
			add(mf.GetName()+"_bucket", "le")
			add(mf.GetName() + "_sum")
			add(mf.GetName() + "_count")
		default:
			add(mf.GetName())
		}
	}
	return out
}

// dashboard is the part of the Grafana JSON model the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var (
	// metricRe finds series names of socksd's namespaces and of the
	// runtime collectors in a PromQL expression.
	metricRe = regexp.MustCompile(`\b(?:socksd|go|process)_[A-Za-z0-9_]+\b`)
	// identRe finds every identifier-like token, to catch series names of
	// any other namespace that the dashboard must not use.
	identRe = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	// byRe and matcherRe find label names: "by (a, b)", "without (a)",
	// and "{a=...", ", b!~...".
	byRe      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherRe = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	stringRe  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// promqlWords are the PromQL functions, aggregations and keywords the
// dashboard may use, plus Grafana's interval variables.
var promqlWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "by": true, "without": true,
	"rate": true, "irate": true, "increase": true, "histogram_quantile": true, "label_values": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "and": true, "or": true, "unless": true,
	"topk": true, "bottomk": true, "clamp_min": true, "clamp_max": true, "abs": true, "delta": true, "deriv": true,
	"__rate_interval": true, "__interval": true, "__range": true,
}

// targetLabels are attached by Prometheus at scrape time, not by socksd.
var targetLabels = map[string]bool{"job": true, "instance": true}

func TestDashboardMetricsExist(t *testing.T) {
	known := registeredMetrics(t)
	for name, mi := range runtimeMetrics(t) {
		known[name] = mi
	}
	d := loadDashboard(t)

	type expr struct{ where, text string }
	var exprs []expr
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, expr{"panel " + strconv.Itoa(p.ID) + " " + strconv.Quote(p.Title) + " " + tg.RefID, tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &s) == nil {
			q.Query = s
		} else if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
		}
		exprs = append(exprs, expr{"variable " + v.Name, q.Query})
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d queries in the dashboard; is it the right file?", len(exprs))
	}

	used := map[string]bool{}
	for _, e := range exprs {
		names := metricRe.FindAllString(e.text, -1)
		if len(names) == 0 {
			t.Errorf("%s: no socksd, go or process metric in %q", e.where, e.text)
			continue
		}
		labels := map[string]bool{}
		for l := range targetLabels {
			labels[l] = true
		}
		for _, n := range names {
			mi, ok := known[n]
			if !ok {
				t.Errorf("%s: metric %s is not registered anywhere in socksd's code", e.where, n)
				continue
			}
			used[n] = true
			for l := range mi.labels {
				labels[l] = true
			}
		}
		// Label names in "by (...)" and in matchers must exist on the
		// metrics of this expression.
		var lnames []string
		for _, m := range byRe.FindAllStringSubmatch(e.text, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					lnames = append(lnames, l)
				}
			}
		}
		for _, m := range matcherRe.FindAllStringSubmatch(e.text, -1) {
			lnames = append(lnames, m[1])
		}
		for _, l := range lnames {
			if !labels[l] {
				t.Errorf("%s: label %q is not a label of %v", e.where, l, names)
			}
		}
		// Any other identifier must be a PromQL word or a label name:
		// this catches series names outside the three prefixes.
		stripped := stringRe.ReplaceAllString(e.text, `""`)
		stripped = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(stripped, "[]")
		for _, id := range identRe.FindAllString(stripped, -1) {
			if promqlWords[id] || labels[id] || known[id] != nil || metricRe.MatchString(id) {
				continue
			}
			t.Errorf("%s: unknown identifier %q in %q (a metric of another exporter?)", e.where, id, e.text)
		}
	}

	// Every socksd metric family should be on the dashboard at least once.
	// A metric that is not is reported, not failed: adding a metric must not
	// break the build, but the log tells whoever runs this test (-v) what to
	// add. Histograms count when any of their series is used.
	var missing []string
	for name := range known {
		if !strings.HasPrefix(name, "socksd_") {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if used[name] || used[base+"_bucket"] || used[base+"_sum"] || used[base+"_count"] {
			continue
		}
		missing = append(missing, name+" ("+known[name].where+")")
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Logf("metric %s is registered but not on the dashboard yet", m)
	}
}

// TestDashboardShape checks what Grafana needs to import the file.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both must be set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana schema (>= 36)", d.SchemaVersion)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" && v.Type == "datasource" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable DS_PROMETHEUS")
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or duplicate", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %d %q: bad gridPos %+v", p.ID, p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		var ds struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		}
		if err := json.Unmarshal(p.Datasource, &ds); err != nil || ds.Type != "prometheus" || ds.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %d %q: datasource %s, want prometheus ${DS_PROMETHEUS}", p.ID, p.Title, p.Datasource)
		}
	}
}

// TestScannerSeesDispatchMetrics guards the source scanner itself: the
// metrics a real constructor registers (those Gather reports without any
// observation) must all be among the scanned names.
func TestScannerSeesDispatchMetrics(t *testing.T) {
	known := registeredMetrics(t)
	reg := prometheus.NewRegistry()
	if _, err := dispatch.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) == 0 {
		t.Fatal("dispatch registered nothing gatherable")
	}
	for _, mf := range mfs {
		if known[mf.GetName()] == nil {
			t.Errorf("dispatch registers %s but the source scan did not find it", mf.GetName())
		}
	}
	for _, want := range []string{"socksd_connections_total", "socksd_tor_circuits_in_use", "socksd_dns_queries_total", "socksd_handshake_duration_seconds_bucket"} {
		if known[want] == nil {
			t.Errorf("source scan missed %s", want)
		}
	}
	if !known["socksd_connections_total"].labels["outcome"] {
		t.Error("source scan lost the labels of socksd_connections_total")
	}
}

// TestRuntimeCollectorsRegistered makes sure the go_* and process_* names
// the dashboard may use are really served: cmd/socksd must register both
// collectors.
func TestRuntimeCollectorsRegistered(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot, "cmd", "socksd", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"collectors.NewGoCollector(", "collectors.NewProcessCollector("} {
		if !strings.Contains(string(b), want) {
			t.Errorf("cmd/socksd/metrics.go no longer calls %s: the dashboard's runtime panels would be empty", want)
		}
	}
}

package run

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"socksd/test/tornet"
)

// TestStatusIdentities: while two runs each hold a stream open, socksd's
// status page lists two new identities (hashes) with one live stream each.
func TestStatusIdentities(t *testing.T) {
	needTornet(t)
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // hold the stream open until the status page was read
		w.Write([]byte("released\n"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + tornet.HostName + ":" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/"

	before := identities(t)
	done := make(chan result, 2)
	for range 2 {
		go func() { done <- jail(t, nil, fetcherBin, url) }()
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(60 * time.Second):
			close(release)
			t.Fatal("the runs' requests did not arrive within 60 s")
		}
	}
	during := identities(t)
	close(release)
	for range 2 {
		if r := <-done; r.code != 0 {
			t.Errorf("run: %v", r)
		}
	}
	var fresh []string
	for k, n := range during {
		if _, ok := before[k]; !ok && n == 1 {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) != 2 {
		t.Fatalf("status page: %d new identities with one stream, want 2 (before %v, during %v)", len(fresh), before, during)
	}
	for _, k := range fresh {
		if len(k) != 32 || slices.ContainsFunc([]byte(k), func(c byte) bool { return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') }) {
			t.Errorf("identity %q is not a hash", k)
		}
	}
}

// identities reads socksd's /status: live streams per identity key.
func identities(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get("http://" + sd.metrics + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Identities []struct {
			Key     string `json:"key"`
			Streams int    `json:"streams"`
		} `json:"identities"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, i := range st.Identities {
		m[i.Key] = i.Streams
	}
	return m
}

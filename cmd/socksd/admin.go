package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"socksd/internal/admin"
	"socksd/internal/endpoint"
	"socksd/torup"
)

// adminHandler builds the status / health / new-identity endpoints.
func (d *daemon) adminHandler() *admin.Handler {
	return &admin.Handler{
		Status:      d.status,
		Health:      d.health,
		NewIdentity: d.newIdentity,
		NewUserIdentity: func(user string) error {
			d.srv.NewUserEpoch([]byte(user))
			return nil
		},
		NewAppIdentity: func(exe string) error {
			d.srv.NewAppEpoch(exe)
			return nil
		},
		Log: d.log.Named("admin"),
	}
}

// newIdentity is SIGUSR1 and POST /newnym: Tor's SIGNAL NEWNYM (torup also
// retires every circuit socksd built), then a new isolation epoch so no
// stream opened from now on derives a key an earlier stream had. Without
// a control port the epoch alone still gives new streams new SOCKS
// credentials, which Tor isolates on (IsolateSOCKSAuth).
func (d *daemon) newIdentity(ctx context.Context) error {
	t := d.wired.tor
	err := t.NewIdentity(ctx)
	d.srv.NewEpoch()
	if err != nil && t.Controller() == nil && errors.Is(err, torup.ErrControlDown) {
		d.log.Info("new identity: new isolation epoch; no control port, so no Tor NEWNYM was sent")
		return nil
	}
	if err != nil {
		return fmt.Errorf("isolation epoch renewed, but Tor's NEWNYM failed: %w", err)
	}
	d.log.Info("new identity: Tor NEWNYM sent and a new isolation epoch started")
	return nil
}

// health is GET /healthz: Tor is usable when the control connection is up
// and Tor is bootstrapped 100 %, or, without a control port, when the
// SocksPort accepts a TCP connection.
func (d *daemon) health(ctx context.Context) (bool, string) {
	t := d.wired.tor
	if ctl := t.Controller(); ctl != nil {
		st := ctl.State()
		switch {
		case !st.Connected:
			reason := "Tor control port " + st.Addr + " not connected"
			if st.LastError != "" {
				reason += ": " + st.LastError
			}
			return false, reason
		case st.Bootstrap < 100:
			return false, fmt.Sprintf("Tor is bootstrapping (%d%%)", st.Bootstrap)
		}
		return true, ""
	}
	network, addr := endpoint.Split(d.torSOCKS)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		return false, "Tor SocksPort " + d.torSOCKS + " does not accept connections: " + err.Error()
	}
	c.Close()
	return true, ""
}

// torStatus is the Tor part of the status page and of systemd's STATUS=.
func (d *daemon) torStatus() admin.TorStatus {
	t := d.wired.tor
	ts := admin.TorStatus{Mode: "SocksPort only (no control port)", SOCKS: d.torSOCKS, Bootstrap: -1}
	if ctl := t.Controller(); ctl != nil {
		st := ctl.State()
		ts.Mode = "control port"
		if t.Managed() != nil {
			ts.Mode = "managed tor (launched by socksd)"
		}
		ts.Control, ts.Connected, ts.Bootstrap = st.Addr, st.Connected, st.Bootstrap
		ts.Reconnects, ts.LastError = st.Reconnects, st.LastError
		if st.SOCKS != "" {
			ts.SOCKS = st.SOCKS
		}
	}
	return ts
}

func (d *daemon) status() admin.Status {
	s := admin.Status{Version: versionString(), Started: d.started, Tor: d.torStatus()}
	addrs := d.srv.Addrs()
	for cfgAddr, a := range addrs {
		s.Listeners = append(s.Listeners, admin.Listener{Config: cfgAddr, Addr: a.String()})
	}
	sort.Slice(s.Listeners, func(i, j int) bool { return s.Listeners[i].Config < s.Listeners[j].Config })
	byProto, byKey, recent := d.wired.track.snapshot()
	s.Streams, s.Recent = byProto, recent
	for k, n := range byKey {
		s.Identities = append(s.Identities, admin.Identity{Key: k.String(), Streams: n, Circuits: d.wired.tor.CircuitsOf(k)})
	}
	sort.Slice(s.Identities, func(i, j int) bool { return s.Identities[i].Key < s.Identities[j].Key })

	fams, err := d.wired.reg.Gather()
	if err != nil {
		d.log.Debug("status: gathering metrics", zap.Error(err))
	}
	if d.wired.bridge != nil {
		s.DNS = &admin.DNSStatus{
			Listen:   d.dnsListen,
			Mappings: int(sumMetric(fams, "socksd_dns_mappings")),
			Capacity: int(sumMetric(fams, "socksd_dns_pool_capacity")),

			PoolExhausted: int(sumMetric(fams, "socksd_dns_pool_exhausted_total")),
		}
	}
	for _, f := range fams {
		if f.GetName() != "socksd_replies_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			rc := admin.ReplyCount{Count: int(m.GetCounter().GetValue())}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "protocol":
					rc.Protocol = l.GetValue()
				case "code":
					rc.Code = l.GetValue()
				}
			}
			s.Replies = append(s.Replies, rc)
		}
	}
	return s
}

// sumMetric adds up every series of a gauge or counter family.
func sumMetric(fams []*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// statusLine is systemd's STATUS=: what `systemctl status socksd` shows.
func (d *daemon) statusLine() string {
	ts := d.torStatus()
	switch {
	case ts.Control == "":
		return "chaining to Tor's SocksPort " + ts.SOCKS + " (no control port)"
	case !ts.Connected:
		return "Tor control port " + ts.Control + " not connected; failing closed"
	case ts.Bootstrap < 100:
		return fmt.Sprintf("Tor bootstrapping: %d%%", ts.Bootstrap)
	}
	return "Tor bootstrapped 100%; serving"
}

package main

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"socksd/config"
)

func TestFDBudget(t *testing.T) {
	cfg := config.Default()
	cfg.DNS.Listen = []string{"127.0.0.1:5353"}
	// Defaults: 4096 SOCKS + 256 DNS/TCP need ~8.5k descriptors.
	for _, tc := range []struct {
		name             string
		limit            uint64
		startSOCKS       int
		socks, dns       int
		warn, err        bool
		reloadSOCKS      int
		reloadWantSOCKS  int
		reloadWantLowers bool
	}{
		// reserve = 64 + 1 SOCKS listener + 9 for the DNS address = 74
		{"prlimit 1024", 1024, 4096, 416, 118, true, false, 100, 100, false},
		{"ample", 1 << 20, 4096, 4096, 256, false, false, 8192, 8192, false},
		{"unlimited", 0, 4096, 4096, 256, false, false, 8192, 8192, false},
		{"too small", 75, 4096, 0, 0, false, true, 0, 0, false},
		// (4096 - 74 - 256) / 2 = 1883
		{"reload over the limit", 4096, 1500, 1500, 256, false, false, 4096, 1883, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			fd := &fdBudget{limit: tc.limit}
			eff := cfg
			eff.SOCKS.MaxConnections = tc.startSOCKS
			err := fd.fit(&eff, zap.New(core), true)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "LimitNOFILE") {
					t.Errorf("error does not say how to fix it: %v", err)
				}
				return
			}
			if eff.SOCKS.MaxConnections != tc.socks || eff.DNS.MaxTCPConns != tc.dns {
				t.Errorf("fitted to %d SOCKS / %d DNS-TCP, want %d / %d", eff.SOCKS.MaxConnections, eff.DNS.MaxTCPConns, tc.socks, tc.dns)
			}
			if tc.limit != 0 && 2*eff.SOCKS.MaxConnections+eff.DNS.MaxTCPConns+fd.reserve > int(tc.limit) {
				t.Errorf("budget %d exceeds the limit %d", 2*eff.SOCKS.MaxConnections+eff.DNS.MaxTCPConns+fd.reserve, tc.limit)
			}
			warned := logs.FilterLevelExact(zap.WarnLevel).Len() == 1
			if warned != tc.warn {
				t.Errorf("warned %v, want %v: %v", warned, tc.warn, logs.All())
			}
			if logs.Len() != 1 {
				t.Errorf("%d start-up entries, want 1 saying the limits", logs.Len())
			}

			// Reload: the SOCKS limit is fitted again, the DNS bound stays.
			logs.TakeAll()
			re := cfg
			re.SOCKS.MaxConnections = tc.reloadSOCKS
			if err := fd.fit(&re, zap.New(core), false); err != nil {
				t.Fatal(err)
			}
			if re.SOCKS.MaxConnections != tc.reloadWantSOCKS || re.DNS.MaxTCPConns != tc.dns {
				t.Errorf("reload fitted to %d / %d, want %d / %d", re.SOCKS.MaxConnections, re.DNS.MaxTCPConns, tc.reloadWantSOCKS, tc.dns)
			}
			if lowered := logs.FilterLevelExact(zap.WarnLevel).Len() == 1; lowered != tc.reloadWantLowers {
				t.Errorf("reload warned %v, want %v", lowered, tc.reloadWantLowers)
			}
		})
	}
}

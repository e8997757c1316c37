package systemd

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

func TestListenerMatch(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	path := filepath.Join(t.TempDir(), "s")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	socks := []Socket{{Name: "socks", Listener: tl}, {Name: "dns", PacketConn: uc}, {Name: "socks", Listener: ul}}
	tcpAddr := tl.Addr().String()
	udpAddr := uc.LocalAddr().String()
	port := tl.Addr().(*net.TCPAddr).AddrPort().Port()

	tests := []struct {
		listen string
		want   net.Listener
	}{
		{tcpAddr, tl},
		{"[::ffff:127.0.0.1]:" + strconv.Itoa(int(port)), tl},
		{"unix:" + path, ul},
		{"localhost:" + strconv.Itoa(int(port)), nil},
		{"127.0.0.2:" + strconv.Itoa(int(port)), nil},
		{udpAddr, nil}, // a datagram socket is not a listener... unless the port collides
		{"unix:/elsewhere", nil},
		{path, nil}, // a bare path is not the config syntax
	}
	for _, tt := range tests {
		got, ok := Listener(socks, tt.listen)
		if tt.listen == udpAddr && got == tl { // same port number on tcp and udp is possible
			continue
		}
		if got != tt.want || ok != (tt.want != nil) {
			t.Errorf("Listener(%q) = %v, %v; want %v", tt.listen, got, ok, tt.want)
		}
	}
	if pc, ok := PacketConn(socks, udpAddr); !ok || pc != uc {
		t.Errorf("PacketConn(%q) = %v, %v", udpAddr, pc, ok)
	}
	if _, ok := PacketConn(socks, "127.0.0.1:1"); ok {
		t.Error("PacketConn matched a wrong port")
	}
}

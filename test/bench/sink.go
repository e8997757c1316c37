package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The sink is the destination of every benchmark connection. It runs in
// its own process (`socksbench sink`) so its descriptors do not count
// against the load generator's limit, and prints one line
// "ready ECHO DISCARD SOURCE" with its three loopback addresses.
//
//	echo:    copies everything back; used for the connection-rate and idle tests.
//	discard: reads an 8-byte length L, then L bytes, then answers the count it got.
//	source:  reads an 8-byte length L, writes L bytes, closes.
func runSink(args []string) error {
	ln := func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	echo, err := ln()
	if err != nil {
		return err
	}
	discard, err := ln()
	if err != nil {
		return err
	}
	source, err := ln()
	if err != nil {
		return err
	}
	go serve(echo, sinkEcho)
	go serve(discard, sinkDiscard)
	go serve(source, sinkSource)
	fmt.Printf("ready %s %s %s\n", echo.Addr(), discard.Addr(), source.Addr())
	// Stop when the parent closes our stdin or signals us.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sig:
	case <-eof:
	}
	return nil
}

func serve(l net.Listener, h func(*net.TCPConn)) {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE under the idle test: back off, do not spin.
			if backoff = max(backoff*2, 5*time.Millisecond); backoff > time.Second {
				backoff = time.Second
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go func() {
			defer c.Close()
			h(c.(*net.TCPConn))
		}()
	}
}

// Writes of the bulk phases use one shared read-only block.
var block = make([]byte, 256<<10)

func sinkEcho(c *net.TCPConn) {
	// A small buffer: the idle test parks thousands of these.
	var buf [512]byte
	for {
		n, err := c.Read(buf[:])
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			c.CloseWrite()
			return
		}
	}
}

func sinkDiscard(c *net.TCPConn) {
	// The client announces its length first, so no half-close is needed
	// (microsocks closes both directions on the first FIN).
	var hdr [8]byte
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	want := binary.BigEndian.Uint64(hdr[:])
	buf := make([]byte, 256<<10)
	var total uint64
	for total < want {
		n, err := c.Read(buf[:min(uint64(len(buf)), want-total)])
		total += uint64(n)
		if err != nil {
			break
		}
	}
	binary.BigEndian.PutUint64(hdr[:], total)
	c.Write(hdr[:])
}

func sinkSource(c *net.TCPConn) {
	var hdr [8]byte
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	left := binary.BigEndian.Uint64(hdr[:])
	for left > 0 {
		n := min(left, uint64(len(block)))
		if _, err := c.Write(block[:n]); err != nil {
			return
		}
		left -= n
	}
	c.CloseWrite()
	// Wait for the client's close so it sees every byte before our FIN/RST.
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	c.Read(b[:])
}

package systemd

import (
	"context"
	"time"
)

// RunWatchdog pings the watchdog at half of WatchdogInterval until ctx is
// done. Before each ping it asks healthy (nil means always healthy); an
// unhealthy daemon skips the ping, so systemd restarts a process that is
// alive but wedged (Restart=on-failure covers watchdog timeouts). It
// returns at once, with nil, when the watchdog is off.
func RunWatchdog(ctx context.Context, healthy func() bool) error {
	d, ok, err := WatchdogInterval()
	if err != nil || !ok {
		return err
	}
	t := time.NewTicker(d / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy == nil || healthy() {
				if err := Watchdog(); err != nil {
					return err
				}
			}
		}
	}
}

//go:build !pprof

package main

import "go.uber.org/zap"

// startPprof is a no-op unless socksd is built with -tags pprof
// (pprof_on.go): release binaries have no profiling endpoint.
func startPprof(*zap.Logger) {}

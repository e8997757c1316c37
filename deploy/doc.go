// Package deploy holds no code: it is the systemd deployment of socksd
// (units, drop-in, torrc fragment, shipped config, install.sh). Its tests
// check those files with systemd-analyze, tor --verify-config, socksd's
// config loader, and a staged install.
package deploy

// Package docs holds no code: it is socksd's contributor documentation
// (architecture.md). Its test keeps deploy/grafana-dashboard.json honest:
// every metric the dashboard queries must be one socksd registers.
package docs

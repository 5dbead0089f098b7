// Package deploy holds how streamd is shipped and watched: Kubernetes
// manifests (kubernetes/), the Grafana dashboard (grafana/) and the
// Prometheus alert rules (prometheus/). It has no Go code of its own; its
// tests prove the artifacts: every manifest decodes strictly into the
// Kubernetes API types, the kustomize overlay renders with the required
// security settings, the alert rules pass promtool's unit tests, and every
// dashboard query returns data from a running streamd scraped by a real
// Prometheus.
package deploy

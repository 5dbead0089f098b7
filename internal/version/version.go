// Package version holds the build's version and source revision. Both are
// set at link time (go build -ldflags "-X ...") by the Dockerfile and release
// builds, and reported by `streamd version` and the streamd_build_info metric.
package version

// Version is the release version, e.g. "v0.3.1"; "dev" for builds that did
// not set it, so a local binary is never mistaken for a release.
var Version = "dev"

// Revision is the VCS commit the binary was built from; "unknown" when the
// build did not set it.
var Revision = "unknown"

// Package redact renders URLs for logs and error messages without the parts
// that carry secrets: user info (user:password@), the query (?token=...),
// the fragment, and the path, since webhook services such as Slack put
// their secret in it (https://hooks.slack.com/services/T0/B0/secret).
package redact

import "net/url"

// URL returns scheme://host of raw, with "/<redacted>" standing for a
// path and "?<redacted>" for a query, so a log line still tells which
// service was called. An unparsable URL is not repeated at all.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" && u.Scheme == "" {
		return "<unparsable url>"
	}
	out := &url.URL{Scheme: u.Scheme, Host: u.Host}
	s := out.String()
	if u.Path != "" && u.Path != "/" || u.Opaque != "" {
		s += "/<redacted>"
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?<redacted>"
	}
	return s
}

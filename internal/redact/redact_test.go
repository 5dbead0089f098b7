package redact

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX", "https://hooks.slack.com/<redacted>"},
		{"https://user:p4ss@alerts.example.com:8443/hook?token=abc#frag", "https://alerts.example.com:8443/<redacted>?<redacted>"},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"http://127.0.0.1:9000/", "http://127.0.0.1:9000"},
		{"https://example.com?key=s3cr3t", "https://example.com?<redacted>"},
		{"::not a url", "<unparsable url>"},
		{"mailto:secret@example.com", "mailto:/<redacted>"},
		{"", "<unparsable url>"},
	}
	for _, tt := range tests {
		got := URL(tt.in)
		require.Equal(t, tt.want, got, tt.in)
		for _, secret := range []string{"secret", "p4ss", "token", "abc", "s3cr3t", "user"} {
			require.NotContains(t, got, secret, tt.in)
		}
	}
}

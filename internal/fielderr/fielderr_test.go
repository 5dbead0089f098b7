package fielderr

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSuggest(t *testing.T) {
	tests := []struct {
		value string
		known []string
		want  string
	}{
		{"earlest", []string{"earliest", "latest", "offsets"}, "earliest"},
		{"TRIM_HORIZONN", []string{"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"}, "TRIM_HORIZON"},
		{"plian", []string{"plain", "scram-sha-256", "scram-sha-512"}, "plain"},
		{"scram-sha-265", []string{"plain", "scram-sha-256", "scram-sha-512"}, "scram-sha-256"},
		{"bogus", []string{"plain", "scram-sha-256", "scram-sha-512"}, ""},
		{"x", []string{"zstd"}, ""},
		{"replac", []string{"deadLetter", "replace"}, "replace"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Suggest(tt.value, tt.known), tt.value)
	}
	require.Equal(t, `unknown mechanism "bogus" (want plain, scram-sha-256)`, Unknown("mechanism", "bogus", []string{"plain", "scram-sha-256"}))
	require.Equal(t, `unknown mechanism "plian" (did you mean "plain"? want plain, scram-sha-256)`, Unknown("mechanism", "plian", []string{"plain", "scram-sha-256"}))
}

func TestPrefixAndFlatten(t *testing.T) {
	plain := errors.New("plain")
	err := errors.Join(Errorf("mechanism", "bad"), errors.Join(Errorf("", "whole block"), plain))
	got := Flatten(Prefix("sasl", err))
	require.Len(t, got, 3)
	var fe *Error
	require.ErrorAs(t, got[0], &fe)
	require.Equal(t, "sasl.mechanism", fe.Path)
	require.ErrorAs(t, got[1], &fe)
	require.Equal(t, "sasl", fe.Path)
	require.Same(t, plain, got[2])
	require.Nil(t, Flatten(nil))
	require.NoError(t, Prefix("x", nil))
}

func TestDistance(t *testing.T) {
	require.Equal(t, 0, Distance("a", "a"))
	require.Equal(t, 1, Distance("ab", "ba"))
	require.Equal(t, 3, Distance("", "abc"))
	require.Equal(t, 100, Distance(string(make([]byte, 100)), "a"))
}

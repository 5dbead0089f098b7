package duckdb

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuery(t *testing.T) {
	rows := Query(t, `SELECT 1::BIGINT AS i, 9007199254740993::BIGINT AS big, 'a"b' AS s,
		TIMESTAMPTZ '2026-11-21 05:00:00.000001+00' AS ts, NULL AS n, 0.1::DOUBLE AS d, true AS b`)
	require.Equal(t, []map[string]any{{
		"i": 1.0, "big": "9007199254740993", "s": `a"b`,
		"ts": "2026-11-21T05:00:00.000001Z", "n": nil, "d": 0.1, "b": true,
	}}, rows)
}

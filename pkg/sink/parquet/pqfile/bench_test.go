package pqfile

import (
	"fmt"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

// discard is an Output that keeps nothing, to measure encoding alone.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Sync() ([]byte, error)       { return nil, nil }
func (discard) Close() error                { return nil }

// benchSchema is the typical event row: two strings, two doubles, an int64
// and a timestamp.
func benchSchema() *parquet.Schema {
	return parquet.NewSchema("event", parquet.Group{
		"tenant": parquet.String(),
		"host":   parquet.Optional(parquet.String()),
		"value":  parquet.Leaf(parquet.DoubleType),
		"ratio":  parquet.Optional(parquet.Leaf(parquet.DoubleType)),
		"count":  parquet.Int(64),
		"at":     parquet.Timestamp(parquet.Microsecond),
	})
}

func benchRows(b *testing.B, schema *parquet.Schema, n int) []parquet.Row {
	type event struct {
		Tenant string    `parquet:"tenant"`
		Host   *string   `parquet:"host"`
		Value  float64   `parquet:"value"`
		Ratio  *float64  `parquet:"ratio"`
		Count  int64     `parquet:"count"`
		At     time.Time `parquet:"at"`
	}
	base := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	rows := make([]parquet.Row, n)
	for i := range rows {
		host := fmt.Sprintf("host-%03d.example.internal", i%200)
		ratio := float64(i%100) / 100
		rows[i] = schema.Deconstruct(nil, &event{
			Tenant: fmt.Sprintf("tenant-%d", i%17),
			Host:   &host,
			Value:  float64(i) * 1.5,
			Ratio:  &ratio,
			Count:  int64(i),
			At:     base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	require.Len(b, rows[0], 6)
	return rows
}

func BenchmarkWriteRows(b *testing.B) {
	schema := benchSchema()
	rows := benchRows(b, schema, 1024)
	// Row groups of 64Ki rows, so a run of any length pays for encoding.
	w, err := New(discard{}, schema, Options{RowGroupRows: 1 << 16})
	require.NoError(b, err)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		require.NoError(b, w.WriteRows(rows))
	}
	require.NoError(b, w.Close())
	b.ReportMetric(float64(b.N*len(rows))/time.Since(start).Seconds(), "events/s")
}

func BenchmarkSnapshot(b *testing.B) {
	schema := benchSchema()
	rows := benchRows(b, schema, 1024)
	w, err := New(discard{}, schema, Options{})
	require.NoError(b, err)
	for w.Size() < 1<<20 {
		require.NoError(b, w.WriteRows(rows))
	}
	var st State
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		st, err = w.Snapshot()
		require.NoError(b, err)
	}
	require.Zero(b, w.RowGroups(), "the tail must stay buffered")
	b.ReportMetric(float64(w.Size()), "tail-bytes")
	b.ReportMetric(float64(len(st.Tail)), "state-tail-bytes")
	b.ReportMetric(float64(w.Rows()), "tail-rows")
}

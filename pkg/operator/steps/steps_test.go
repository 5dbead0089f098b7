package steps

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// more, the width of a typical decoded event.
func stepSchema(t testing.TB) *record.Schema {
	t.Helper()
	s, err := record.NewSchema(
		record.Field{Name: "i", Type: record.TypeInt},
		record.Field{Name: "j", Type: record.TypeInt},
		record.Field{Name: "f", Type: record.TypeFloat},
		record.Field{Name: "g", Type: record.TypeFloat},
		record.Field{Name: "s", Type: record.TypeString},
		record.Field{Name: "u", Type: record.TypeString},
		record.Field{Name: "b", Type: record.TypeBool},
		record.Field{Name: "ts", Type: record.TypeTimestamp},
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "level", Type: record.TypeString},
	)
	require.NoError(t, err)
	return s
}

// stepBatch is n rows of stepSchema.
func stepBatch(schema *record.Schema, n int) *record.Batch {
	b := record.NewBatch(schema.Len(), n)
	for k := range n {
		row := b.AppendRow(int64(k))
		copy(row, fullRow(int64(k), int64(k%7), float64(k)*1.5, 2, []string{"a", "b", "c"}[k%3], "u", k%2 == 0))
		row[9] = record.String([]string{"info", "warn", "error"}[k%3])
	}
	return b
}

// TestFilterAndMapAllocateOncePerBatch: a filter and a map over a
// 10-column row allocate nothing per record (the batches are reused).
func TestFilterAndMapAllocateOncePerBatch(t *testing.T) {
	schema := stepSchema(t)
	filter, err := NewFilter("level != 'error' && i > 10", schema)
	require.NoError(t, err)
	m, err := NewMap([]MapField{{Name: "price", Expr: "f * 0.908", Type: record.TypeFloat}}, true, schema)
	require.NoError(t, err)
	in := stepBatch(schema, 1024)
	mid := record.NewBatch(schema.Len(), 1024)
	out := record.NewBatch(m.Schema().Len(), 1024)
	reject := func(i int, err error) { t.Fatalf("row %d rejected: %v", i, err) }
	allocs := testing.AllocsPerRun(20, func() {
		mid.Reset()
		out.Reset()
		filter.Apply(in, mid, reject)
		m.Apply(mid, out, reject)
	})
	require.Greater(t, out.Len(), 600)
	require.LessOrEqual(t, allocs, 1.0, "allocations per batch of 1024 rows")
}

// BenchmarkFilterMap is a filter and a map over 10-column rows, 1,024 rows
// per batch, as a split task runs them.
func BenchmarkFilterMap(b *testing.B) {
	for _, tc := range []struct{ name, cond, mapped string }{
		{"native", "level != 'error' && i > 10", "f * 0.908"},
		{"vm", "len(level) > 0 && i > 10", "f * 0.908 + len(s)"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			schema := stepSchema(b)
			filter, err := NewFilter(tc.cond, schema)
			require.NoError(b, err)
			m, err := NewMap([]MapField{{Name: "price", Expr: tc.mapped, Type: record.TypeFloat}}, true, schema)
			require.NoError(b, err)
			in := stepBatch(schema, 1024)
			mid := record.NewBatch(schema.Len(), 1024)
			out := record.NewBatch(m.Schema().Len(), 1024)
			var rejected error
			reject := func(i int, err error) { rejected = errors.Join(rejected, fmt.Errorf("row %d: %w", i, err)) }
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				mid.Reset()
				out.Reset()
				filter.Apply(in, mid, reject)
				m.Apply(mid, out, reject)
			}
			require.NoError(b, rejected)
			b.ReportMetric(float64(b.N)*float64(in.Len())/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestMapBoolKeepsNull: a bool map field whose expression gives nil is
// null, not false (a null flag is not a false one).
func TestMapBoolKeepsNull(t *testing.T) {
	schema := stepSchema(t)
	m, err := NewMap([]MapField{
		{Name: "flag", Expr: "b", Type: record.TypeBool},
		{Name: "big", Expr: "i > 10 ? true : nil", Type: record.TypeBool},
	}, false, schema)
	require.NoError(t, err)
	in := record.NewBatch(schema.Len(), 2)
	copy(in.AppendRow(1), record.Row{record.Int(3), record.Null, record.Null, record.Null, record.Null, record.Null, record.Null, record.Null, record.Null, record.Null})
	copy(in.AppendRow(2), record.Row{record.Int(30), record.Null, record.Null, record.Null, record.Null, record.Null, record.Bool(false), record.Null, record.Null, record.Null})
	out := record.NewBatch(m.Schema().Len(), 2)
	m.Apply(in, out, func(i int, err error) { t.Fatalf("row %d rejected: %v", i, err) })
	require.Equal(t, record.Row{record.Null, record.Null}, out.Row(0))
	require.Equal(t, record.Row{record.Bool(false), record.Bool(true)}, out.Row(1))

	_, err = NewMap([]MapField{{Name: "flag", Expr: "s", Type: record.TypeBool}}, false, schema)
	require.Error(t, err, "a string expression for a bool field is refused when the map is built")
}

func fullRow(i, j int64, f, g float64, s, u string, b bool) record.Row {
	return record.Row{record.Int(i), record.Int(j), record.Float(f), record.Float(g),
		record.String(s), record.String(u), record.Bool(b), record.Timestamp(1_700_000_000_000_000),
		record.String("web-1"), record.String("info")}
}

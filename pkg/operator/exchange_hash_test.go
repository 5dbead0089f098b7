package operator

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// The exchange sends each row's key hash with it: the hash the window
// operator would compute (window.KeyHash), the one the key group comes
// from, for keys of one string field and for built keys alike. The key
// group is the one rule engines file the row's keys under (keyer.group),
// also from a row that holds only the key fields, as a rule key restored
// from a snapshot without key groups does.
func TestExchangeSendsKeyHashes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keyIdx []int
	}{{"one string field", []int{0}}, {"built key", []int{0, 1}}, {"float field", []int{1}}} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stageRT{keyIdx: tc.keyIdx, keyGroups: 128, inputs: []chan event{make(chan event, 1), make(chan event, 1)}}
			x := newExchangeOut(st, 0, benchInput.Len(), 0)
			kr := &keyer{idx: tc.keyIdx, keyGroups: 128}
			in := preDecoded(50, 1, 200)[0]
			x.send(in, 5, false)
			n := 0
			for _, ch := range st.inputs {
				ev := <-ch
				if ev.batch == nil {
					continue
				}
				b := ev.batch
				require.Len(t, b.Hashes, b.Len())
				require.Len(t, b.Keys, b.Len())
				for i := range b.Len() {
					require.Equal(t, window.KeyHash(b.Keys[i]), b.Hashes[i])
					require.Equal(t, KeyGroup(b.Keys[i], 128), int(b.KeyGroups[i]))
					require.Equal(t, int(b.KeyGroups[i]), kr.group(b.Row(i)))
					keyOnly := make(record.Row, benchInput.Len())
					for _, f := range tc.keyIdx {
						keyOnly[f] = b.Row(i)[f]
					}
					require.Equal(t, int(b.KeyGroups[i]), kr.group(keyOnly))
					if tc.name == "one string field" {
						require.Equal(t, b.Row(i)[0].S, b.Keys[i])
					}
				}
				n += b.Len()
			}
			require.Equal(t, in.Len(), n)
		})
	}
}

// Dropping rows keeps the hashes beside their keys.
func TestDropRowsKeepsHashes(t *testing.T) {
	b := record.NewBatch(1, 4)
	for i, k := range []string{"a", "b", "c", "d"} {
		b.AppendRow(int64(i))[0] = record.Bool(i%2 == 0)
		b.Keys, b.KeyGroups, b.Hashes = append(b.Keys, k), append(b.KeyGroups, 0), append(b.Hashes, window.KeyHash(k))
	}
	dropRows(b, 0)
	require.Equal(t, []string{"b", "d"}, b.Keys)
	require.Equal(t, []uint64{window.KeyHash("b"), window.KeyHash("d")}, b.Hashes)
}

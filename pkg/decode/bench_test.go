package decode

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// Nexmark events as the generator writes them (pkg/source/nexmark, seed
// 42): a person, an auction and a bid.
const (
	nexmarkPerson  = `{"event_type":0,"dateTime":1436918400000,"person":{"id":1000,"name":"Kate Spencer","emailAddress":"wjfo@qjh.com","creditCard":"1051 4749 9224 9801","city":"Kent","state":"WA","extra":"wlwocuicmefuyqmokyyoextettneytybejmywgzdjnkgmqxuqwvigdcunmnznyewgfygfxlwehjlwzmyzfwxwpoyxnfxoaachjwtxmcmlygwrfabfekpogeauxkqmfyconaonamvbmgp"}}`
	nexmarkAuction = `{"event_type":1,"dateTime":1436918400005,"auction":{"id":1000,"itemName":"ufeenvghwupntg","description":"g zxokl m","initialBid":19205801,"reserve":19317760,"expires":1436918409916,"seller":1006,"category":14,"extra":"hecwdsmoezbgdevtpbdelstimjnjioouuvafzwacqygmpqqopcglnoumnnlkmiimintdxstlaxlvthjqixxjzylsquhhfahonibuebdetyworzdwtmtcnkxutbwxjiajkiumfdpjxsfndghudhuvgpdyzbcfwrpmhmnisgwfizomwbvlnizbbsbxusynegmsiwajwdqulmiudfrawuqihvebcvhwoxirzszouhfnwmfmsbntnadrphhcredbxinnbcnkqtcvwqpfivcpbotdvltpqkvndpgwirrqacrcmauhqiqstvqunolerquztdpnfyokielktainnygzuualnoirihgkxcfmbzgtcewsavafjkpqgwpawxjpvzzmkwnxnarwrqdnniqtevkhkdvqevirujgliffvhycqdvvbldjjikuhkutcyqhkyfswqeulermbuwdzgkrjmcvyniddloqvcamhpsyujbwrazuqwi"}}`
	nexmarkBid     = `{"event_type":2,"dateTime":1436918400020,"bid":{"auction":1000,"bidder":1001,"price":61956204,"channel":"channel-8273","url":"https://www.nexmark.com/dlp/ats/vla/item.htm?query=1&channel_id=1979449344","extra":"tffyphqjuedwoilvqpfljjcrupccqzcksrobjtctmydbxcphkgshqkglolgxmxavgpakiowgzuxqhs"}}`
)

// nexmarkConfig declares the fields of the Nexmark queries: q0's and the
// bid's channel and url (q21, q22).
func nexmarkConfig() Config {
	return Config{
		Fields: []Field{
			{Name: "event_type", Type: record.TypeInt, Required: true},
			{Name: "dateTime", Type: record.TypeTimestamp, TimeFormat: TimeEpochMS, Required: true},
			{Name: "auction", Path: []string{"bid", "auction"}, Type: record.TypeInt},
			{Name: "bidder", Path: []string{"bid", "bidder"}, Type: record.TypeInt},
			{Name: "price", Path: []string{"bid", "price"}, Type: record.TypeInt},
			{Name: "channel", Path: []string{"bid", "channel"}, Type: record.TypeString},
			{Name: "url", Path: []string{"bid", "url"}, Type: record.TypeString},
			{Name: "extra", Path: []string{"bid", "extra"}, Type: record.TypeString},
		},
		EventTimeField: "dateTime",
	}
}

// BenchmarkDecodeNexmark decodes Nexmark events in the generator's mix
// (1 person : 3 auctions : 46 bids; 50 events per op) into the fields of
// the bid queries; records/s counts events.
func BenchmarkDecodeNexmark(b *testing.B) {
	d, err := NewJSON(nexmarkConfig())
	require.NoError(b, err)
	msgs := [][]byte{[]byte(nexmarkPerson)}
	for range 3 {
		msgs = append(msgs, []byte(nexmarkAuction))
	}
	for range 46 {
		msgs = append(msgs, []byte(nexmarkBid))
	}
	var size int64
	for _, m := range msgs {
		size += int64(len(m))
	}
	batch := record.NewBatch(d.Schema().Len(), 1024)
	b.SetBytes(size)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		for _, m := range msgs {
			if batch.Len() == 1024 {
				batch.Reset()
			}
			if err := d.Decode(m, 0, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRecords(b, float64(b.N)*float64(len(msgs)), cpu0)
}

// cpuTime is the CPU time the process has used, user and system, GC
// included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRecords prints records per wall-clock second and per CPU-second of
// the process since cpu0: the per-core figure, less disturbed than the
// wall clock by other work on a shared machine.
func reportRecords(b *testing.B, records float64, cpu0 time.Duration) {
	b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(records/(cpuTime(b)-cpu0).Seconds(), "records/cpu-s")
}

// TestNexmarkEventsTakeTheFastPath: the benchmark's events are decoded in
// one pass, as the full decoder would.
func TestNexmarkEventsTakeTheFastPath(t *testing.T) {
	cfg := nexmarkConfig()
	for _, msg := range []string{nexmarkPerson, nexmarkAuction, nexmarkBid} {
		d, err := NewJSON(cfg)
		require.NoError(t, err)
		require.True(t, d.fastDecode([]byte(msg)), msg)
		checkFastMatchesFull(t, cfg, []byte(msg), 0)
	}
}

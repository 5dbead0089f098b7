package decode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// fastConfigs are the shapes the fast path is compared on: nested paths,
// every type and time format, required and key fields, both UTF-8
// policies, broker time.
func fastConfigs() []Config {
	line := lineMonitoringConfig()
	return []Config{
		line,
		{
			Fields: []Field{
				{Name: "s", Type: record.TypeString, Key: true},
				{Name: "i", Type: record.TypeInt},
				{Name: "f", Type: record.TypeFloat},
				{Name: "b", Type: record.TypeBool},
				{Name: "t", Type: record.TypeTimestamp, TimeFormat: TimeAuto},
				{Name: "nt", Path: []string{"n", "t"}, Type: record.TypeTimestamp, TimeFormat: TimeEpochS},
				{Name: "ns", Path: []string{"n", "m", "s"}, Type: record.TypeString, Required: true},
				{Name: "r", Type: record.TypeTimestamp, TimeFormat: TimeRFC3339},
				{Name: "us", Type: record.TypeTimestamp, TimeFormat: TimeEpochUS},
				{Name: "nsec", Type: record.TypeTimestamp, TimeFormat: TimeEpochNS},
			},
			EventTimeField: "t",
			MaxKeyBytes:    8,
			MaxFuture:      time.Hour,
			Now:            func() time.Time { return fixedNow },
		},
		{
			Fields:      []Field{{Name: "s", Type: record.TypeString, Required: true}, {Name: "i", Type: record.TypeInt, Required: true}},
			InvalidUTF8: UTF8Replace,
		},
		nexmarkConfig(),
		// Keys that no plain string spells: a quote or a backslash in a
		// declared key must not match the message's text as it stands.
		{Fields: []Field{{Name: "q", Path: []string{`k"`}, Type: record.TypeInt}, {Name: "b", Path: []string{`k\`}, Type: record.TypeInt}, {Name: "s", Type: record.TypeString}}},
	}
}

// checkFastMatchesFull decodes msg with the fast path and without it and
// requires the same row or the same error.
func checkFastMatchesFull(t *testing.T, cfg Config, msg []byte, brokerTS int64) {
	t.Helper()
	fast, err := NewJSON(cfg)
	require.NoError(t, err)
	require.NotNil(t, fast.fast, "the configuration takes the fast path")
	full, err := NewJSON(cfg)
	require.NoError(t, err)
	full.fast = nil
	fb := record.NewBatch(fast.Schema().Len(), 1)
	sb := record.NewBatch(full.Schema().Len(), 1)
	ferr := fast.Decode(msg, brokerTS, fb)
	serr := full.Decode(msg, brokerTS, sb)
	require.Equal(t, serr, ferr, "message %q", msg)
	require.Equal(t, sb.Len(), fb.Len(), "message %q", msg)
	if sb.Len() == 1 {
		require.Equal(t, sb.Row(0), fb.Row(0), "message %q", msg)
		require.Equal(t, sb.Time(0), fb.Time(0), "message %q", msg)
	}
}

func fastSeeds() []string {
	return []string{
		sampleLine,
		`{"version":1,"timestamp":1763726400000,"equipmentId":"e","tag":"t","value":-0.5e-3,"meta":{"sourceId":"x","sourceId":"y"}}`,
		`{"version":1,"timestamp":1763726400000,"equipmentId":"e","tag":"t","meta":"flat"}`,
		`{"version":1.0,"timestamp":1763726400000.5,"equipmentId":"e","tag":"t","value":1E2,"quality":null}`,
		`{"version":1,"version":2,"timestamp":1763726400000,"equipmentId":"e","tag":"t"}`,
		` { "s" : "abc" , "i" : -12 , "f" : 0 , "b" : false , "t" : 1763726400 , "n" : { "t" : 1763726400 , "m" : { "s" : "deep" } } , "x" : [1, {"y": [true, null, "\u00e9\n"]}] } `,
		`{"s":"toolongkey","t":1763726400,"n":{"m":{"s":"d"}}}`,
		`{"s":"k","t":"2025-11-21T12:00:00Z","r":"2025-11-21T12:00:00.123456+02:00","us":1763726400000000,"nsec":1763726400000000123,"n":{"m":{"s":"d"}}}`,
		`{"s":"k","t":1763726400,"r":1763726400,"n":{"m":{"s":"d"}}}`,
		`{"s":"k","t":99999999999999999999,"n":{"m":{"s":"d"}}}`,
		`{"s":"k","t":1763726400,"n":{"m":{"s":"d"}}} trailing`,
		`{"s":"k\u0041","t":1763726400,"n":{"m":{"s":"d"}}}`,
		"{\"s\":\"k\xff\",\"i\":1}",
		`{"s":"a","i":9223372036854775807}`,
		`{"s":"a","i":9223372036854775808}`,
		`{"s":"a","i":-0}`,
		`{"s":"a","i":01}`,
		`{"s":"a","i":1.}`,
		`{"s":"a","i":.5}`,
		`{"s":"a","i":+1}`,
		`{"s":"a","i":1,}`,
		`{"s":"a" "i":1}`,
		`{"\u0073":"a","i":1}`,
		`{"s":"a","i":1,"z":"\x"}`,
		`{"s":"a","i":1,"z":tru}`,
		`[{"s":"a","i":1}]`,
		nexmarkPerson, nexmarkAuction, nexmarkBid,
		`{"k"":1,"k\":2,"s":"a"}`, `{"k\"":1,"k\\":2,"s":"a"}`,
		// Numbers at the edges of the in-place parsing: 18 and 19 digits,
		// 15 and 16 digits with a fraction, negative zero, exponents.
		`{"s":"a","i":123456789012345678,"f":-123456789012345678}`,
		`{"s":"a","i":1234567890123456789,"f":-1234567890123456789}`,
		`{"s":"a","i":-9223372036854775808,"f":9223372036854775807}`,
		`{"s":"a","i":12.0,"f":12345678.1234567}`,
		`{"s":"a","i":1.5,"f":12345678.12345678}`,
		`{"s":"a","i":-0.0,"f":-0.0,"t":-0.0}`,
		`{"s":"a","i":1e3,"f":0.1e-2,"t":1763726400.123456}`,
		`{"s":"a","f":0.30000000000000004,"t":1763726400123.5}`,
		// Strings across the eight-byte words: quotes, backslashes and
		// UTF-8 at every offset.
		"{\"s\":\"abcdefg\",\"i\":1,\"z\":\"abcdefghijklmno\\\"pq\"}",
		"{\"s\":\"abcdefgh\u00e9\",\"i\":1}",
		"{\"s\":\"abcdefgh\xc3\xa9ijklmnop\xe6\xb8\xa9\",\"i\":1}",
		"{\"s\":\"abcdefghijklmn\xc3\",\"i\":1}",
		"{\"s\":\"\xc3\xa9abcdefghijklmnop\xff\",\"i\":1}",
		"{\"s\":\"abc\\\\defghijklmnop\",\"i\":1}",
		"{\"sabcdefghijk\":\"x\",\"s\":\"abcdefghijklmnop\",\"i\":1}",
		`{"s":"a","i":1,"z":{"a":{"b":{"c":{"d":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}}}`,
	}
}

func TestFastPathMatchesFullDecoder(t *testing.T) {
	for _, cfg := range fastConfigs() {
		for _, msg := range fastSeeds() {
			checkFastMatchesFull(t, cfg, []byte(msg), 1763726400000)
			checkFastMatchesFull(t, cfg, []byte(msg), 0)
		}
	}
}

// TestFastPathTakesCommonMessages keeps well-formed messages on the fast
// path: a regression to the full decoder would halve ingest.
func TestFastPathTakesCommonMessages(t *testing.T) {
	d, err := NewJSON(lineMonitoringConfig())
	require.NoError(t, err)
	require.True(t, d.fastDecode([]byte(sampleLine)))
	require.True(t, d.fastDecode([]byte(`{"version":1,"timestamp":1763726400000,"equipmentId":"e","tag":"t","value":3,"extra":{"a":[1,2,"x\"y"]}}`)))

	for _, cfg := range []Config{
		{Fields: []Field{{Name: "j", Type: record.TypeString, Raw: true}}},
		{Fields: []Field{{Name: "s", Type: record.TypeString}}, ExtrasField: "extras"},
		{Fields: []Field{{Name: "a", Type: record.TypeString}, {Name: "ab", Path: []string{"a", "b"}, Type: record.TypeString}}},
	} {
		d, err := NewJSON(cfg)
		require.NoError(t, err)
		require.Nil(t, d.fast, "%+v needs the full decoder", cfg.Fields)
	}
}

// FuzzFastMatchesFull holds the one-pass decoder to the tree decoder's
// rows and errors on arbitrary input.
func FuzzFastMatchesFull(f *testing.F) {
	for _, s := range fastSeeds() {
		f.Add([]byte(s), int64(1763726400000))
	}
	cfgs := fastConfigs()
	f.Fuzz(func(t *testing.T, msg []byte, brokerTS int64) {
		for _, cfg := range cfgs {
			checkFastMatchesFull(t, cfg, msg, brokerTS)
		}
	})
}

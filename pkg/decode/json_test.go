package decode

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

var fixedNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func lineMonitoringConfig() Config {
	return Config{
		Fields: []Field{
			{Name: "version", Type: record.TypeInt},
			{Name: "timestamp", Type: record.TypeTimestamp, TimeFormat: TimeEpochMS, Required: true},
			{Name: "equipmentId", Type: record.TypeString, Required: true},
			{Name: "tag", Type: record.TypeString, Required: true},
			{Name: "value", Type: record.TypeFloat},
			{Name: "quality", Type: record.TypeString},
			{Name: "sourceId", Path: []string{"meta", "sourceId"}, Type: record.TypeString},
		},
		EventTimeField: "timestamp",
		MaxFuture:      24 * time.Hour,
		Now:            func() time.Time { return fixedNow },
	}
}

const sampleLine = `{"version":1,"timestamp":1763726400000,"equipmentId":"5f0c2a6e-9b1d-4c3e-8a7f-2d6b9e1c4a30","tag":"water_temperature","value":13.45,"quality":"Ok","meta":{"sequenceNumber":123,"sourceId":"filling_machine_3"}}`

func TestDecodeLineMonitoring(t *testing.T) {
	d, err := NewJSON(lineMonitoringConfig())
	require.NoError(t, err)
	require.Equal(t, "version:int, timestamp:timestamp, equipmentId:string, tag:string, value:float, quality:string, sourceId:string", d.Schema().String())

	b := record.NewBatch(d.Schema().Len(), 4)
	require.NoError(t, d.Decode([]byte(sampleLine), 0, b))
	require.Equal(t, 1, b.Len())
	require.Equal(t, int64(1763726400000), b.Time(0))
	require.Equal(t, record.Row{
		record.Int(1),
		record.TimestampMillis(1763726400000),
		record.String("5f0c2a6e-9b1d-4c3e-8a7f-2d6b9e1c4a30"),
		record.String("water_temperature"),
		record.Float(13.45),
		record.String("Ok"),
		record.String("filling_machine_3"),
	}, b.Row(0))
}

func TestDecodeValues(t *testing.T) {
	type fieldCase struct {
		name   string
		field  Field
		json   string // the field's JSON value; "" means absent
		want   record.Value
		reason string // expected Error.Reason; "" means success
	}
	ts := func(s string) record.Value {
		tm, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return record.Timestamp(tm.UnixMicro())
	}
	str := Field{Name: "x", Type: record.TypeString}
	intF := Field{Name: "x", Type: record.TypeInt}
	flt := Field{Name: "x", Type: record.TypeFloat}
	boolF := Field{Name: "x", Type: record.TypeBool}
	auto := Field{Name: "x", Type: record.TypeTimestamp}
	withFmt := func(f TimeFormat) Field { return Field{Name: "x", Type: record.TypeTimestamp, TimeFormat: f} }
	req := func(f Field) Field { f.Required = true; return f }

	cases := []fieldCase{
		{name: "string", field: str, json: `"abc"`, want: record.String("abc")},
		{name: "string escaped", field: str, json: `"a\"b\u00e9\n"`, want: record.String("a\"bé\n")},
		{name: "string empty", field: str, json: `""`, want: record.String("")},
		{name: "string from number", field: str, json: `12`, reason: ReasonTypeMismatch},
		{name: "string from bool", field: str, json: `true`, reason: ReasonTypeMismatch},
		{name: "string from object", field: str, json: `{"a":1}`, reason: ReasonTypeMismatch},
		{name: "absent optional", field: str, want: record.Null},
		{name: "null optional", field: str, json: `null`, want: record.Null},
		{name: "absent required", field: req(str), reason: ReasonMissingField},
		{name: "null required", field: req(str), json: `null`, reason: ReasonMissingField},
		{name: "int", field: intF, json: `-42`, want: record.Int(-42)},
		{name: "int max", field: intF, json: `9223372036854775807`, want: record.Int(9223372036854775807)},
		{name: "int overflow", field: intF, json: `9223372036854775808`, reason: ReasonTypeMismatch},
		{name: "int from integral float", field: intF, json: `5.0`, want: record.Int(5)},
		{name: "int from exponent", field: intF, json: `1e3`, want: record.Int(1000)},
		{name: "int from fraction", field: intF, json: `5.5`, reason: ReasonTypeMismatch},
		{name: "int from string", field: intF, json: `"5"`, reason: ReasonTypeMismatch},
		{name: "int from NaN", field: intF, json: `NaN`, reason: ReasonTypeMismatch},
		{name: "float", field: flt, json: `13.45`, want: record.Float(13.45)},
		{name: "float from int", field: flt, json: `7`, want: record.Float(7)},
		{name: "float exponent", field: flt, json: `-1.5e-3`, want: record.Float(-0.0015)},
		{name: "float from string", field: flt, json: `"13.45"`, reason: ReasonTypeMismatch},
		{name: "float from Inf", field: flt, json: `Inf`, reason: ReasonTypeMismatch},
		{name: "float huge exponent", field: flt, json: `1e400`, reason: ReasonTypeMismatch},
		{name: "bool true", field: boolF, json: `true`, want: record.Bool(true)},
		{name: "bool false", field: boolF, json: `false`, want: record.Bool(false)},
		{name: "bool from number", field: boolF, json: `1`, reason: ReasonTypeMismatch},
		{name: "bool from string", field: boolF, json: `"true"`, reason: ReasonTypeMismatch},
		{name: "auto seconds", field: auto, json: `1763726400`, want: ts("2025-11-21T12:00:00Z")},
		{name: "auto fractional seconds", field: auto, json: `1763726400.123456`, want: ts("2025-11-21T12:00:00.123456Z")},
		{name: "auto millis", field: auto, json: `1763726400123`, want: ts("2025-11-21T12:00:00.123Z")},
		{name: "auto micros", field: auto, json: `1763726400123456`, want: ts("2025-11-21T12:00:00.123456Z")},
		{name: "auto nanos", field: auto, json: `1763726400123456789`, want: ts("2025-11-21T12:00:00.123456Z")},
		{name: "auto rfc3339", field: auto, json: `"2025-11-21T12:00:00Z"`, want: ts("2025-11-21T12:00:00Z")},
		{name: "auto rfc3339 nanos offset", field: auto, json: `"2025-11-21T13:00:00.123456789+01:00"`, want: ts("2025-11-21T12:00:00.123456Z")},
		{name: "auto bad string", field: auto, json: `"yesterday"`, reason: ReasonBadTimestamp},
		{name: "auto negative", field: auto, json: `-5`, reason: ReasonBadTimestamp},
		{name: "auto bool", field: auto, json: `false`, reason: ReasonTypeMismatch},
		{name: "epoch_s", field: withFmt(TimeEpochS), json: `1763726400123`, want: record.Timestamp(1763726400123 * 1_000_000)},
		{name: "epoch_s overflow", field: withFmt(TimeEpochS), json: `9223372036854775`, reason: ReasonBadTimestamp},
		{name: "epoch_s float overflow", field: withFmt(TimeEpochS), json: `1e300`, reason: ReasonBadTimestamp},
		{name: "epoch_ms", field: withFmt(TimeEpochMS), json: `5`, want: record.Timestamp(5000)},
		{name: "epoch_ms fractional", field: withFmt(TimeEpochMS), json: `5.5`, want: record.Timestamp(5500)},
		{name: "epoch_us", field: withFmt(TimeEpochUS), json: `5`, want: record.Timestamp(5)},
		{name: "epoch_ns", field: withFmt(TimeEpochNS), json: `5999`, want: record.Timestamp(5)},
		{name: "epoch_ms from string", field: withFmt(TimeEpochMS), json: `"5"`, reason: ReasonTypeMismatch},
		{name: "rfc3339", field: withFmt(TimeRFC3339), json: `"1970-01-01T00:00:01.5Z"`, want: record.Timestamp(1_500_000)},
		{name: "rfc3339 before epoch", field: withFmt(TimeRFC3339), json: `"1969-12-31T23:59:59Z"`, reason: ReasonBadTimestamp},
		{name: "rfc3339 from number", field: withFmt(TimeRFC3339), json: `5`, reason: ReasonTypeMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewJSON(Config{Fields: []Field{tc.field}})
			require.NoError(t, err)
			msg := `{"other":1}`
			if tc.json != "" {
				msg = `{"other":1,"x":` + tc.json + `}`
			}
			b := record.NewBatch(1, 1)
			err = d.Decode([]byte(msg), 1000, b)
			if tc.reason != "" {
				var de *Error
				require.ErrorAs(t, err, &de)
				require.Equal(t, tc.reason, de.Reason, de.Detail)
				require.Equal(t, tc.reason, de.DeadLetterReason())
				require.Contains(t, de.Detail, `"x"`)
				require.Zero(t, b.Len())
				return
			}
			require.NoError(t, err)
			require.Equal(t, 1, b.Len())
			require.Equal(t, tc.want, b.Row(0)[0])
			require.Equal(t, int64(1000), b.Time(0))
		})
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	cfg := lineMonitoringConfig()
	cases := []struct {
		name   string
		cfg    func(*Config)
		msg    string
		ts     int64
		reason string
	}{
		{name: "truncated", msg: sampleLine[:60], reason: ReasonInvalidJSON},
		{name: "whitespace is not an object", msg: " x ", reason: ReasonInvalidJSON},
		{name: "trailing garbage", msg: sampleLine + "x", reason: ReasonInvalidJSON},
		{name: "array", msg: `[1,2]`, reason: ReasonInvalidJSON},
		{name: "missing equipmentId", msg: strings.Replace(sampleLine, `"equipmentId"`, `"equipmentID"`, 1), reason: ReasonMissingField},
		{name: "value as string", msg: strings.Replace(sampleLine, `13.45`, `"13.45"`, 1), reason: ReasonTypeMismatch},
		{name: "year 9999", msg: strings.Replace(sampleLine, `1763726400000`, `253402300799000`, 1), reason: ReasonFutureTimestamp},
		{name: "future disabled", cfg: func(c *Config) { c.MaxFuture = 0 }, msg: strings.Replace(sampleLine, `1763726400000`, `253402300799000`, 1)},
		{name: "nested path not an object", msg: strings.Replace(sampleLine, `"meta":{`, `"meta":5,"x":{`, 1)},
		{name: "broker time", cfg: func(c *Config) { c.EventTimeField = "" }, msg: sampleLine, ts: 42},
		{name: "no broker time", cfg: func(c *Config) { c.EventTimeField = "" }, msg: sampleLine, reason: ReasonNoEventTime},
		{name: "optional event time absent", cfg: func(c *Config) { c.Fields[1].Required = false },
			msg: strings.Replace(sampleLine, `"timestamp"`, `"ts"`, 1), reason: ReasonNoEventTime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Fields = append([]Field(nil), cfg.Fields...)
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			d, err := NewJSON(c)
			require.NoError(t, err)
			b := record.NewBatch(d.Schema().Len(), 2)
			require.NoError(t, d.Decode([]byte(sampleLine), 1, b), "a good record first, so failures must leave it intact")
			err = d.Decode([]byte(tc.msg), tc.ts, b)
			if tc.reason == "" {
				require.NoError(t, err)
				require.Equal(t, 2, b.Len())
				return
			}
			var de *Error
			require.True(t, errors.As(err, &de), "error %v", err)
			require.Equal(t, tc.reason, de.Reason, de.Detail)
			require.LessOrEqual(t, len(de.Detail), 300)
			require.Equal(t, 1, b.Len())
			require.Len(t, b.Values, d.Schema().Len())
		})
	}
}

func TestNewJSONValidates(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no fields", cfg: Config{}, want: "no fields"},
		{name: "null type", cfg: Config{Fields: []Field{{Name: "a"}}}, want: `field "a": unsupported type`},
		{name: "duplicate", cfg: Config{Fields: []Field{{Name: "a", Type: record.TypeInt}, {Name: "a", Type: record.TypeInt}}}, want: "duplicate"},
		{name: "event time not declared", cfg: Config{Fields: []Field{{Name: "a", Type: record.TypeInt}}, EventTimeField: "ts"}, want: `"ts" is not declared`},
		{name: "event time not timestamp", cfg: Config{Fields: []Field{{Name: "ts", Type: record.TypeInt}}, EventTimeField: "ts"}, want: "want timestamp"},
		{name: "empty path element", cfg: Config{Fields: []Field{{Name: "a", Path: []string{"m", ""}, Type: record.TypeInt}}}, want: "empty path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJSON(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseTimeFormat(t *testing.T) {
	for _, name := range []string{"auto", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "rfc3339"} {
		f, err := ParseTimeFormat(name)
		require.NoError(t, err)
		require.Equal(t, name, f.String())
	}
	f, err := ParseTimeFormat("")
	require.NoError(t, err)
	require.Equal(t, TimeAuto, f)
	_, err = ParseTimeFormat("unix")
	require.ErrorContains(t, err, `"unix"`)
}

func TestErrorDetailTruncated(t *testing.T) {
	d, err := NewJSON(Config{Fields: []Field{{Name: "x", Type: record.TypeInt}}})
	require.NoError(t, err)
	long := `{"x":"` + strings.Repeat("é", 500) + `"}`
	err = d.Decode([]byte(long), 1, record.NewBatch(1, 1))
	var de *Error
	require.ErrorAs(t, err, &de)
	require.Less(t, len(de.Detail), 200)
	require.True(t, strings.HasSuffix(de.Detail, "…"))
}

func TestDecodeZeroAllocs(t *testing.T) {
	d, err := NewJSON(lineMonitoringConfig())
	require.NoError(t, err)
	b := record.NewBatch(d.Schema().Len(), 1024)
	msg := []byte(sampleLine)
	allocs := testing.AllocsPerRun(1000, func() {
		if b.Len() == 1024 {
			b.Reset()
		}
		if err := d.Decode(msg, 0, b); err != nil {
			t.Fatal(err)
		}
	})
	// The arena allocates one 16 KiB chunk per ~300 records of this shape.
	require.Less(t, allocs, 0.05)
}

func BenchmarkDecodeLineMonitoring(b *testing.B) {
	d, err := NewJSON(lineMonitoringConfig())
	require.NoError(b, err)
	batch := record.NewBatch(d.Schema().Len(), 1024)
	msg := []byte(sampleLine)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if batch.Len() == 1024 {
			batch.Reset()
		}
		if err := d.Decode(msg, 0, batch); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, float64(b.N), cpu0)
}

// countingCounter is a Counter for tests.
type countingCounter struct{ n int }

func (c *countingCounter) Inc() { c.n++ }

// TestDecodeHostileInput feeds the inputs a careless producer or an
// attacker sends and checks each one's fate: the dead-letter reason, or
// the value kept, and the counters.
func TestDecodeHostileInput(t *testing.T) {
	keyed := func(c *Config) {
		c.Fields = []Field{
			{Name: "key", Type: record.TypeString, Required: true, Key: true},
			{Name: "note", Type: record.TypeString},
			{Name: "n", Type: record.TypeInt},
		}
	}
	replace := func(c *Config) { keyed(c); c.InvalidUTF8 = UTF8Replace }
	// raw keeps a nested value as JSON text and undeclared keys as extras:
	// invalid UTF-8 inside them follows the same policy.
	raw := func(c *Config) {
		c.Fields = []Field{{Name: "key", Type: record.TypeString}, {Name: "meta", Type: record.TypeString, Raw: true}}
		c.ExtrasField = "extras"
	}
	rawReplace := func(c *Config) { raw(c); c.InvalidUTF8 = UTF8Replace }
	cases := []struct {
		name     string
		cfg      func(*Config)
		msg      string
		reason   string     // "" means accepted (or skipped when skipped)
		want     record.Row // the row kept, when accepted
		skipped  bool       // accepted without a row
		empty    int        // Counters.Empty afterwards
		repaired int        // Counters.Repaired afterwards
	}{
		{name: "invalid utf8 in a key", cfg: keyed, msg: "{\"key\":\"k\xff\xfe\",\"n\":1}", reason: ReasonInvalidUTF8},
		{name: "invalid utf8 in another field", cfg: keyed, msg: "{\"key\":\"k\",\"note\":\"a\xc3\"}", reason: ReasonInvalidUTF8},
		{name: "overlong encoding", cfg: keyed, msg: "{\"key\":\"\xc0\xaf\"}", reason: ReasonInvalidUTF8},
		{name: "encoded surrogate", cfg: keyed, msg: "{\"key\":\"\xed\xa0\x80\"}", reason: ReasonInvalidUTF8},
		{name: "escaped lone surrogate", cfg: keyed, msg: `{"key":"a\ud800b"}`, want: nil},
		{name: "invalid utf8 in an undeclared field is not stored", cfg: keyed, msg: "{\"key\":\"k\",\"other\":\"\xff\"}",
			want: record.Row{record.String("k"), record.Null, record.Null}},
		{name: "valid multibyte", cfg: keyed, msg: `{"key":"Grüße 温度 🌡"}`, want: record.Row{record.String("Grüße 温度 🌡"), record.Null, record.Null}},
		{name: "replace in key", cfg: replace, msg: "{\"key\":\"k\xff\xfe\",\"n\":1}",
			want: record.Row{record.String("k\uFFFD"), record.Null, record.Int(1)}, repaired: 1},
		{name: "replace in two fields counts the record once", cfg: replace, msg: "{\"key\":\"\xffa\xff\",\"note\":\"\xe2\x82\"}",
			want: record.Row{record.String("\uFFFDa\uFFFD"), record.String("\uFFFD"), record.Null}, repaired: 1},
		{name: "replace keeps valid strings untouched", cfg: replace, msg: `{"key":"é"}`, want: record.Row{record.String("é"), record.Null, record.Null}},
		{name: "replaced record that fails later is not counted", cfg: replace, msg: "{\"key\":\"\xff\",\"n\":\"x\"}", reason: ReasonTypeMismatch},
		{name: "key too large", cfg: func(c *Config) { keyed(c); c.MaxKeyBytes = 8 }, msg: `{"key":"123456789"}`, reason: ReasonKeyTooLarge},
		{name: "key at the limit", cfg: func(c *Config) { keyed(c); c.MaxKeyBytes = 9 }, msg: `{"key":"123456789"}`,
			want: record.Row{record.String("123456789"), record.Null, record.Null}},
		{name: "non-key field is not bounded by maxKeyBytes", cfg: func(c *Config) { keyed(c); c.MaxKeyBytes = 2 }, msg: `{"key":"k","note":"long note"}`,
			want: record.Row{record.String("k"), record.String("long note"), record.Null}},
		{name: "key limit measured after replacement", cfg: func(c *Config) { replace(c); c.MaxKeyBytes = 2 }, msg: "{\"key\":\"\xff\"}", reason: ReasonKeyTooLarge},
		{name: "record too large", cfg: func(c *Config) { keyed(c); c.MaxRecordBytes = 10 }, msg: `{"key":"k1"}`, reason: ReasonRecordTooLarge},
		{name: "record at the limit", cfg: func(c *Config) { keyed(c); c.MaxRecordBytes = 12 }, msg: `{"key":"k1"}`,
			want: record.Row{record.String("k1"), record.Null, record.Null}},
		{name: "invalid utf8 inside a raw field", cfg: raw, msg: "{\"key\":\"k\",\"meta\":{\"a\":\"\xff\"}}", reason: ReasonInvalidUTF8},
		{name: "invalid utf8 inside extras", cfg: raw, msg: "{\"key\":\"k\",\"other\":[\"\xfe\"]}", reason: ReasonInvalidUTF8},
		{name: "invalid utf8 in an extras key", cfg: raw, msg: "{\"key\":\"k\",\"o\xffx\":1}", reason: ReasonInvalidUTF8},
		{name: "raw field repaired", cfg: rawReplace, msg: "{\"key\":\"k\",\"meta\":{\"a\":\"\xff\"}}",
			want: record.Row{record.String("k"), record.String("{\"a\":\"\uFFFD\"}"), record.Null}, repaired: 1},
		{name: "empty skipped", cfg: keyed, msg: "", skipped: true, empty: 1},
		{name: "blank skipped", cfg: keyed, msg: " \t\r", skipped: true, empty: 1},
		{name: "empty dead-lettered", cfg: func(c *Config) { keyed(c); c.Empty = EmptyDeadLetter }, msg: "\r", reason: ReasonEmptyRecord, empty: 1},
		{name: "empty checked after size", cfg: func(c *Config) { keyed(c); c.MaxRecordBytes = 2 }, msg: "    ", reason: ReasonRecordTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var empty, repaired countingCounter
			c := Config{Counters: Counters{Empty: &empty, Repaired: &repaired}}
			tc.cfg(&c)
			d, err := NewJSON(c)
			require.NoError(t, err)
			b := record.NewBatch(d.Schema().Len(), 1)
			err = d.Decode([]byte(tc.msg), 1, b)
			require.Equal(t, tc.empty, empty.n, "empty")
			require.Equal(t, tc.repaired, repaired.n, "repaired")
			if tc.reason != "" {
				var de *Error
				require.ErrorAs(t, err, &de)
				require.Equal(t, tc.reason, de.Reason, de.Detail)
				require.True(t, utf8.ValidString(de.Detail), "detail %q must be valid UTF-8", de.Detail)
				require.Zero(t, b.Len())
				return
			}
			require.NoError(t, err)
			if tc.skipped {
				require.Zero(t, b.Len())
				return
			}
			require.Equal(t, 1, b.Len())
			for _, v := range b.Row(0) {
				require.True(t, utf8.ValidString(v.S), "%q", v.S)
			}
			if tc.want != nil {
				require.Equal(t, tc.want, b.Row(0))
			}
		})
	}
}

func TestAppendValidUTF8MatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "abc", "\xff", "a\xff\xfeb", "\xe2\x82", "\xe2\x82\xac", "\xed\xa0\x80x", "é\xc3", "\xf0\x9f\x8c\xa1\xf0"} {
		require.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), string(appendValidUTF8(nil, []byte(s))), "%q", s)
	}
}

func TestNewJSONValidatesPolicies(t *testing.T) {
	f := []Field{{Name: "a", Type: record.TypeString}}
	for _, c := range []Config{
		{Fields: f, InvalidUTF8: 9},
		{Fields: f, Empty: 9},
		{Fields: f, MaxRecordBytes: -1},
		{Fields: f, MaxKeyBytes: -1},
	} {
		_, err := NewJSON(c)
		require.Error(t, err)
	}
}

// TestFutureLimitFollowsTheClock: the MaxFuture check reads the clock at
// most once per futureRefresh records that are within the limit, and again
// for any record past the limit of the last reading, so a clock that goes
// forward decides every record as a reading per record would.
func TestFutureLimitFollowsTheClock(t *testing.T) {
	now := fixedNow
	reads := 0
	cfg := lineMonitoringConfig()
	cfg.MaxFuture = time.Hour
	cfg.Now = func() time.Time { reads++; return now }
	d, err := NewJSON(cfg)
	require.NoError(t, err)
	at := func(ts time.Time) []byte {
		return []byte(strings.Replace(sampleLine, `1763726400000`, strconv.FormatInt(ts.UnixMilli(), 10), 1))
	}
	b := record.NewBatch(d.Schema().Len(), 4)
	decode := func(ts time.Time) error {
		b.Reset()
		return d.Decode(at(ts), 0, b)
	}

	for range 10 * futureRefresh {
		require.NoError(t, decode(now.Add(-time.Minute)))
	}
	require.Equal(t, 10, reads, "one reading per futureRefresh records within the limit")

	ahead := now.Add(2 * time.Hour)
	err = decode(ahead)
	var de *Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, ReasonFutureTimestamp, de.Reason)
	require.Equal(t, 11, reads, "a record past the limit reads the clock")

	now = now.Add(90 * time.Minute) // the clock goes on: the record is now within the hour
	require.NoError(t, decode(ahead))
	require.Equal(t, 12, reads)
	require.NoError(t, decode(now.Add(59*time.Minute)))
	require.Equal(t, 12, reads, "within the new limit")
	require.Error(t, decode(now.Add(61*time.Minute)))
}

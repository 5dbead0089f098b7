package parquet

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
)

func TestEscapePathValue(t *testing.T) {
	for _, tc := range []struct {
		in   record.Value
		want string
	}{
		{record.String("acme"), "acme"},
		{record.String("a/b"), "a%2Fb"},
		{record.String(`x=y:z?*"#%'\`), "x%3Dy%3Az%3F%2A%22%23%25%27%5C"},
		{record.String("{[^]}"), "%7B%5B%5E%5D}"},
		{record.String("tab\there\x7f"), "tab%09here%7F"},
		{record.String("café ☕"), "café ☕"},
		{record.String("bad\xff\xc3utf8\xe2\x82"), "bad%FF%C3utf8%E2%82"},
		{record.String(".."), "%2E."},
		{record.String(".hidden"), "%2Ehidden"},
		{record.String("a.b"), "a.b"},
		{record.String(""), DefaultPartition},
		{record.Null, DefaultPartition},
		{record.Int(-42), "-42"},
		{record.Float(2.5), "2.5"},
		{record.Bool(true), "true"},
		{record.Timestamp(1_000_000), "1970-01-01T00%3A00%3A01Z"},
	} {
		t.Run(tc.in.GoString(), func(t *testing.T) {
			p := &partitioner{}
			require.Equal(t, tc.want, string(p.appendValue(nil, tc.in)))
		})
	}
}

func TestRenderPartition(t *testing.T) {
	schema := record.MustSchema(
		record.Field{Name: "tenant", Type: record.TypeString},
		record.Field{Name: "n", Type: record.TypeInt},
	)
	row := record.Row{record.String("a/b"), record.Int(7)}
	for _, tc := range []struct {
		template string
		ms       int64
		want     string
		bucketMs int64
	}{
		{"", 0, "", 0},
		{"dt={date}", 1763701200000, "dt=2025-11-21", msPerDay},
		{"dt={date}/hour={hour}/minute={minute}", 1763701200000 + 7*60_000, "dt=2025-11-21/hour=05/minute=07", msPerMinute},
		{"hour={hour}/dt={date}", -1, "hour=23/dt=1969-12-31", msPerHour},
		{"t={tenant}/n={n}/again={tenant}", 0, "t=a%2Fb/n=7/again=a%2Fb", 0},
		{"{tenant}-{n}", 0, "a%2Fb-7", 0},
	} {
		t.Run(tc.template, func(t *testing.T) {
			p, err := newPartitioner(tc.template, schema)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(p.render(nil, row, tc.ms)))
			require.Equal(t, tc.bucketMs, p.bucketMs)
		})
	}
}

func TestBucket(t *testing.T) {
	p := &partitioner{bucketMs: msPerHour}
	require.Equal(t, int64(0), p.bucket(0))
	require.Equal(t, int64(0), p.bucket(msPerHour-1))
	require.Equal(t, int64(1), p.bucket(msPerHour))
	require.Equal(t, int64(-1), p.bucket(-1))
	require.Equal(t, int64(0), (&partitioner{}).bucket(12345))
}

func TestParseTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ template, err string }{
		{"dt={date", "unclosed"},
		{"dt=date}", "unmatched '}'"},
		{"x={}", "empty {}"},
		{"x={a{b}", "invalid token"},
		{"x={a/b}", "invalid token"},
		{"../x={date}", `directory ".."`},
		{"a//b", "empty directory name"},
		{"a/", "empty directory name"},
		{".hidden/{date}", "hidden directory"},
		{`a\b`, "backslash"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			_, err := parseTemplate(tc.template)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// unescapePathValue reverses escapePathValue.
func unescapePathValue(s string) (string, error) {
	if !strings.ContainsRune(s, '%') {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("unescape partition value: truncated escape")
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("unescape partition value: bad escape %q", s[i:i+3])
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

func FuzzEscapePathValue(f *testing.F) {
	for _, s := range []string{"", "acme", "a/b", "..", ".", "%2F", "x=y", "café", "\x00\x1f\x7f", "__HIVE_DEFAULT_PARTITION__"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(escapePathValue(nil, s))
		require.NotContains(t, got, "/")
		require.NotContains(t, got, `\`)
		require.NotEqual(t, ".", got)
		require.NotEqual(t, "..", got)
		require.False(t, strings.HasPrefix(got, "."))
		if s == "" {
			require.Equal(t, DefaultPartition, got)
			return
		}
		back, err := unescapePathValue(got)
		require.NoError(t, err)
		require.Equal(t, s, back)
	})
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", "dt={date}/hour={hour}/t={tenant}", "{minute}", "a/../b", "{", "}", "x={}", "{a}{b}", "./x"} {
		f.Add(s)
	}
	schema := record.MustSchema(record.Field{Name: "a", Type: record.TypeString})
	row := record.Row{record.String("../..")}
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := parseTemplate(s)
		if err != nil {
			return
		}
		p, err := newPartitioner(s, schema)
		if err != nil {
			// Only an unknown field is rejected after parsing.
			require.Contains(t, err.Error(), "unknown field")
			return
		}
		require.Len(t, p.segs, len(segs))
		out := string(p.render(nil, row, math.MaxInt32))
		for _, dir := range strings.Split(out, "/") {
			if out == "" {
				break
			}
			require.NotEqual(t, "..", dir, "template %q rendered %q", s, out)
			require.NotEqual(t, "", dir, "template %q rendered %q", s, out)
		}
	})
}

// FuzzRenderPartitionValues renders arbitrary field values and event times
// into a Hive-style template: the path always has the template's
// directories, every value reads back exactly after Hive unescaping, and
// the path is a valid directory and object key (no "/", "..", hidden or
// empty segment, control character or backslash from a value).
func FuzzRenderPartitionValues(f *testing.F) {
	for _, s := range []string{"acme", "", "..", "../../etc", "a/b", "\x00", "x=y", "%2F", ".", "/", "\\", "\x7f\n\t", "café", "__HIVE_DEFAULT_PARTITION__"} {
		f.Add(s, "svc", int64(1763701200000))
	}
	f.Add("tenant", "..", int64(-1))
	f.Add("t", "s", int64(math.MinInt64/2))
	schema := record.MustSchema(
		record.Field{Name: "tenant", Type: record.TypeString},
		record.Field{Name: "svc", Type: record.TypeString},
	)
	p, err := newPartitioner("dt={date}/hour={hour}/t={tenant}/s={svc}", schema)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, tenant, svc string, ms int64) {
		if ms < -62135596800000 || ms > 253402300799999 { // years 1 to 9999
			return
		}
		row := record.Row{record.String(tenant), record.String(svc)}
		out := string(p.render(nil, row, ms))
		require.NoError(t, validDir(out), "rendered %q", out)
		require.True(t, utf8.ValidString(out), "rendered %q", out)
		require.NoError(t, store.ValidKey("prefix/"+out+"/part-w-000000.parquet"), "rendered %q", out)
		segs := strings.Split(out, "/")
		require.Len(t, segs, 4, "rendered %q", out)
		for i, want := range []string{tenant, svc} {
			v, ok := strings.CutPrefix(segs[2+i], []string{"t=", "s="}[i])
			require.True(t, ok, "rendered %q", out)
			for _, c := range []byte(v) {
				require.False(t, c < 0x20 || c == 0x7f || c == '\\', "control character or backslash in %q", out)
			}
			if want == "" {
				require.Equal(t, DefaultPartition, v)
				continue
			}
			back, err := unescapePathValue(v)
			require.NoError(t, err)
			require.Equal(t, want, back)
		}
		tm := time.UnixMilli(ms).UTC()
		require.Equal(t, "dt="+tm.Format(time.DateOnly), segs[0])
		require.Equal(t, "hour="+tm.Format("15"), segs[1])
	})
}

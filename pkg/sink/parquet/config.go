package parquet

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// Config configures a Parquet sink.
type Config struct {
	// Name labels the sink's metrics and log lines.
	Name string `yaml:"name"`
	// Dir is the output directory; partition directories are created below
	// it. "s3://bucket/prefix" writes to S3 instead, configured by S3. With
	// Store set, Dir is the key prefix inside that store (may be empty).
	Dir string `yaml:"dir"`
	// S3 configures the client when Dir is an s3:// URL (endpoint, region,
	// pathStyle, credentials, retries); its bucket and prefix come from Dir.
	// Its RetryFor defaults to DefaultS3RetryFor.
	S3 s3store.Config `yaml:"s3"`
	// Store, set from Go, writes files to this object store instead of a
	// directory; the YAML form is an s3:// Dir.
	Store store.Store `yaml:"-"`
	// PartSize is the size of the multipart-upload parts a file is sent in
	// when written to an object store; every open file buffers one part.
	PartSize int64 `yaml:"partSize"`
	// Partition is a path template below Dir: {date} (YYYY-MM-DD), {hour}
	// and {minute} (two digits) of the row's event time in UTC, and {field}
	// for the value of a record field, e.g. "dt={date}/hour={hour}/tenant={tenant}".
	// Empty writes every file directly into Dir.
	Partition string `yaml:"partition"`
	// Compression is the page codec: zstd, snappy, gzip or none.
	Compression string `yaml:"compression"`
	// RollSize closes a file once its estimated size reaches this many bytes.
	RollSize int64 `yaml:"rollSize"`
	// RollRows closes a file once it holds this many rows; 0 disables it.
	RollRows int64 `yaml:"rollRows"`
	// RollAge closes a file this long after it was opened, checked on Tick;
	// 0 disables it.
	RollAge time.Duration `yaml:"rollAge"`
	// RowGroupSize flushes a row group once its buffered size reaches this
	// many bytes. Every open file buffers up to this much in memory, so it
	// bounds memory per partition.
	RowGroupSize int64 `yaml:"rowGroupSize"`
	// PageSize cuts a column's data page at this many uncompressed bytes.
	PageSize int64 `yaml:"pageSize"`
	// DictionarySize bounds the dictionary of a string column chunk: a
	// column whose distinct values outgrow it goes on in PLAIN encoding, so
	// only low-cardinality strings stay dictionary encoded.
	DictionarySize int64 `yaml:"dictionarySize"`
	// JSONColumns are string fields holding JSON text (decode fields of
	// type json, the extras field), written with Parquet's JSON logical
	// type so engines can read them as JSON.
	JSONColumns []string `yaml:"jsonColumns"`
	// SortBy sorts the rows of every row group by these fields, ascending,
	// nulls last (e.g. [tenant, ts]), so query engines prune row groups
	// and pages by their statistics. It costs no memory beyond the
	// buffered row group (RowGroupSize); a file of one row group is sorted
	// as a whole.
	SortBy []string `yaml:"sortBy"`
	// TimestampUnit is the unit of timestamp columns: micros
	// (TIMESTAMP(MICROS, isAdjustedToUTC=true), the default) or millis.
	TimestampUnit string `yaml:"timestampUnit"`
	// Filter is the source of a condition (expr-lang, as in filter steps)
	// that selects the rows this sink writes, so several sinks can route
	// the log types of one stream to several tables. NewFilter compiles it.
	Filter string `yaml:"filter"`
	// NewFilter, set from Go (the pipeline builder sets it for Filter),
	// makes the row filter of a writer for its schema.
	NewFilter func(*record.Schema) (RowFilter, error) `yaml:"-"`
	// PartitionCommit writes a manifest and a _SUCCESS file into a time
	// partition once the watermark has passed its end plus the allowed
	// lateness.
	PartitionCommit PartitionCommitConfig `yaml:"partitionCommit"`
	// Transactional, set by the runtime when the pipeline checkpoints,
	// publishes files only through Commit after the checkpoint that covers
	// them, for exactly-once output. Without it a file is published when it
	// rolls; the first Prepare switches the sink to transactional mode
	// anyway, but files rolled before it were published unchecked.
	Transactional bool `yaml:"-"`
}

// RowFilter selects rows. It is used by one writer goroutine.
type RowFilter interface {
	// Keep reports whether the sink writes row. An error (the condition
	// cannot be evaluated on the row) leaves the row out; the writer counts
	// it and logs the first reason.
	Keep(row record.Row) (bool, error)
}

// PartitionCommitConfig configures partition commits (see commit.go).
type PartitionCommitConfig struct {
	// Enabled commits partitions; the template must contain {date}.
	Enabled bool `yaml:"enabled"`
	// AllowedLateness delays the commit past the partition's end, so rows
	// this late still make it into the committed partition.
	AllowedLateness time.Duration `yaml:"allowedLateness"`
}

// DefaultConfig returns the defaults: zstd, 128 MiB files, 64 MiB row groups,
// 1 MiB pages, 64 KiB dictionaries, microsecond timestamps, files rolled after
// five minutes.
func DefaultConfig() Config {
	return Config{
		Name:           "parquet",
		Compression:    "zstd",
		RollSize:       128 << 20,
		RollAge:        5 * time.Minute,
		RowGroupSize:   64 << 20,
		PageSize:       pqfile.DefaultPageSize,
		DictionarySize: pqfile.DefaultDictionaryMaxBytes,
		TimestampUnit:  "micros",
		S3:             defaultS3(),
		PartSize:       8 << 20,
	}
}

func defaultS3() s3store.Config {
	c := s3store.DefaultConfig()
	c.RetryFor = DefaultS3RetryFor
	return c
}

// DefaultS3RetryFor is how long a Parquet sink retries an S3 request that
// keeps failing (503 SlowDown, 500, lost connections) before it fails
// (s3.retryFor): long enough to ride out an endpoint outage or a throttling
// episode of a few minutes with the pipeline's state kept in memory.
// Meanwhile checkpoints fail and are counted and the pipeline is not
// ready; past it the process exits with the request's error.
const DefaultS3RetryFor = 10 * time.Minute

// isS3 reports whether dir names an S3 location.
func isS3(dir string) bool { return strings.HasPrefix(dir, "s3://") }

// Validate reports the first problem with the configuration, naming the field.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("parquet sink: name is empty")
	}
	if c.Dir == "" && c.Store == nil {
		return errors.New("parquet sink: dir is empty")
	}
	if c.Store != nil || isS3(c.Dir) {
		if c.PartSize < store.MinPartSize {
			return fmt.Errorf("parquet sink: partSize must be at least %d for an object store, got %d", store.MinPartSize, c.PartSize)
		}
	}
	if c.Store == nil && isS3(c.Dir) {
		sc := c.S3
		var err error
		if sc.Bucket, sc.Prefix, err = s3store.ParseURL(c.Dir); err != nil {
			return fmt.Errorf("parquet sink: dir: %w", err)
		}
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("parquet sink: %w", err)
		}
	}
	if _, err := parseTemplate(c.Partition); err != nil {
		return fmt.Errorf("parquet sink: partition: %w", err)
	}
	if c.Filter != "" && c.NewFilter == nil {
		return errors.New("parquet sink: filter is set but no NewFilter compiles it")
	}
	if c.PartitionCommit.Enabled {
		if err := checkCommitTemplate(c.Partition); err != nil {
			return fmt.Errorf("parquet sink: %w", err)
		}
	}
	if c.PartitionCommit.AllowedLateness < 0 {
		return fmt.Errorf("parquet sink: partitionCommit.allowedLateness must not be negative, got %s", c.PartitionCommit.AllowedLateness)
	}
	if filepath.IsAbs(c.Partition) {
		return fmt.Errorf("parquet sink: partition %q must be relative to dir", c.Partition)
	}
	if _, err := codecFor(c.Compression); err != nil {
		return fmt.Errorf("parquet sink: compression: %w", err)
	}
	if c.RollSize <= 0 {
		return fmt.Errorf("parquet sink: rollSize must be positive, got %d", c.RollSize)
	}
	if c.RollRows < 0 {
		return fmt.Errorf("parquet sink: rollRows must not be negative, got %d", c.RollRows)
	}
	if c.RollAge < 0 {
		return fmt.Errorf("parquet sink: rollAge must not be negative, got %s", c.RollAge)
	}
	if c.RowGroupSize <= 0 {
		return fmt.Errorf("parquet sink: rowGroupSize must be positive, got %d", c.RowGroupSize)
	}
	if c.PageSize <= 0 || c.PageSize > math.MaxInt32 {
		return fmt.Errorf("parquet sink: pageSize must be positive and below 2 GiB, got %d", c.PageSize)
	}
	if c.DictionarySize <= 0 {
		return fmt.Errorf("parquet sink: dictionarySize must be positive, got %d", c.DictionarySize)
	}
	switch c.TimestampUnit {
	case "micros", "millis":
	default:
		return fmt.Errorf("parquet sink: timestampUnit must be micros or millis, got %q", c.TimestampUnit)
	}
	return nil
}

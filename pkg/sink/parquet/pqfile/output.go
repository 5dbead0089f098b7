package pqfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/streamd/streamd/internal/fileutil"
)

// Output receives the bytes of one Parquet file, in order, from one
// goroutine.
type Output interface {
	io.Writer
	// Sync makes written bytes durable. It returns the trailing written
	// bytes it could not make durable yet (for example a multipart upload's
	// last part, smaller than the store's minimum part size); the Writer
	// copies them into the State and writes them again on resume. The slice
	// is only valid until the next Write. A local file returns nil.
	Sync() (pending []byte, err error)
	// Close makes every written byte durable and releases the output. It
	// does not publish the file: committing it (rename, completing a
	// multipart upload) is the caller's step after the checkpoint.
	Close() error
}

// LocalOutput appends to a local file.
type LocalOutput struct {
	f    *os.File
	path string
}

var _ Output = (*LocalOutput)(nil)

// CreateLocal creates (or truncates) the file at path and makes its
// directory entry durable, so a checkpoint that refers to it survives a
// crash.
func CreateLocal(path string) (*LocalOutput, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644) //nolint:gosec // output is read by other users (query engines)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	if err := fileutil.SyncDir(filepath.Dir(path)); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &LocalOutput{f: f, path: path}, nil
}

// OpenLocalForResume opens the file at path for appending after cutting it
// to length, the State.Length of the checkpoint being resumed: bytes
// written after that checkpoint belong to work that is replayed.
func OpenLocalForResume(path string, length int64) (*LocalOutput, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open parquet file for resume: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat parquet file: %w", err)
	}
	if fi.Size() < length {
		_ = f.Close()
		return nil, fmt.Errorf("open parquet file for resume: %s has %d bytes, checkpoint needs %d", path, fi.Size(), length)
	}
	if err := f.Truncate(length); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("truncate parquet file: %w", err)
	}
	// The cut must be durable before new bytes are acknowledged: otherwise a
	// crash could resurrect stale bytes between length and the new data.
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sync parquet file: %w", err)
	}
	return &LocalOutput{f: f, path: path}, nil
}

// Path returns the file's path.
func (o *LocalOutput) Path() string { return o.path }

// Write appends p to the file.
func (o *LocalOutput) Write(p []byte) (int, error) {
	n, err := o.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("write parquet file: %w", err)
	}
	return n, nil
}

// Sync fsyncs the file; nothing is left pending.
func (o *LocalOutput) Sync() ([]byte, error) {
	if err := o.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync parquet file: %w", err)
	}
	return nil, nil
}

// Close fsyncs and closes the file.
func (o *LocalOutput) Close() error {
	syncErr := o.f.Sync()
	closeErr := o.f.Close()
	if syncErr != nil {
		return fmt.Errorf("sync parquet file: %w", syncErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close parquet file: %w", closeErr)
	}
	return nil
}

package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// destination creates the files of a sink: a local directory or an object
// store. The partition layout and file names are the same for both.
type destination interface {
	// exists reports whether a committed file already has this name, so
	// a restarted process never replaces one.
	exists(ctx context.Context, dir, name string) (bool, error)
	// create starts an in-progress file that becomes dir/name on commit.
	create(ctx context.Context, dir, name string) (output, error)
	// location names the final path of dir/name in log lines.
	location(dir, name string) string
}

// output receives the bytes of one in-progress file.
type output interface {
	// write appends bytes; ctx bounds any upload it triggers.
	write(ctx context.Context, p []byte) (int, error)
	// commit makes the file visible under its final name, complete.
	commit(ctx context.Context) error
	// abort drops the file.
	abort(ctx context.Context)
	// name identifies the in-progress file in error messages.
	name() string
}

// localDest writes files below a directory: a hidden ".<name>.inprogress"
// file in the partition directory, fsynced and renamed on commit.
type localDest struct{ root string }

func (d localDest) exists(_ context.Context, dir, name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(d.root, filepath.FromSlash(dir), name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check parquet file name: %w", err)
	}
	return true, nil
}

func (d localDest) location(dir, name string) string {
	return filepath.Join(d.root, filepath.FromSlash(dir), name)
}

func (d localDest) create(_ context.Context, dir, name string) (output, error) {
	absDir := filepath.Join(d.root, filepath.FromSlash(dir))
	if err := os.MkdirAll(absDir, 0o755); err != nil {
		return nil, fmt.Errorf("create partition directory: %w", err)
	}
	o := &localOutput{
		root:      d.root,
		absDir:    absDir,
		tmpPath:   filepath.Join(absDir, "."+name+".inprogress"),
		finalPath: filepath.Join(absDir, name),
	}
	f, err := os.OpenFile(o.tmpPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	o.f = f
	return o, nil
}

type localOutput struct {
	root, absDir, tmpPath, finalPath string
	f                                *os.File
}

func (o *localOutput) write(_ context.Context, p []byte) (int, error) { return o.f.Write(p) }
func (o *localOutput) name() string                                   { return o.tmpPath }

func (o *localOutput) abort(context.Context) {
	_ = o.f.Close()
	_ = os.Remove(o.tmpPath)
}

// commit: fsync of the file, rename, fsync of the directories, so a reader
// sees either no file or a complete one.
func (o *localOutput) commit(context.Context) error {
	if err := o.f.Sync(); err != nil {
		o.abort(context.Background())
		return fmt.Errorf("sync parquet file: %w", err)
	}
	if err := o.f.Close(); err != nil {
		_ = os.Remove(o.tmpPath)
		return fmt.Errorf("close parquet file: %w", err)
	}
	if err := os.Rename(o.tmpPath, o.finalPath); err != nil {
		_ = os.Remove(o.tmpPath)
		return fmt.Errorf("commit parquet file: %w", err)
	}
	// The partition directory may be new, so its entry in every parent up
	// to the root must be durable too.
	for dir := o.absDir; ; dir = filepath.Dir(dir) {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("commit parquet file: %w", err)
		}
		if rel, err := filepath.Rel(o.root, dir); err != nil || rel == "." || filepath.Dir(dir) == dir {
			break
		}
	}
	return nil
}

// storeDest writes each file as a multipart upload to an object store, so
// a file of any size streams out in parts while the Parquet writer produces
// it and becomes visible, complete, only when the upload is completed.
type storeDest struct {
	st       store.Store
	prefix   string // key prefix, empty or ending in "/"
	partSize int
}

func (d storeDest) key(dir, name string) string {
	if dir == "" {
		return d.prefix + name
	}
	return d.prefix + strings.Trim(dir, "/") + "/" + name
}

func (d storeDest) location(dir, name string) string { return d.key(dir, name) }

func (d storeDest) exists(ctx context.Context, dir, name string) (bool, error) {
	key := d.key(dir, name)
	objs, err := d.st.List(ctx, key)
	if err != nil {
		return false, fmt.Errorf("check parquet file name: %w", err)
	}
	for _, o := range objs {
		if o.Key == key {
			return true, nil
		}
	}
	return false, nil
}

func (d storeDest) create(ctx context.Context, dir, name string) (output, error) {
	key := d.key(dir, name)
	id, err := d.st.CreateUpload(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	return &storeOutput{st: d.st, key: key, uploadID: id, partSize: d.partSize,
		buf: make([]byte, 0, d.partSize)}, nil
}

// storeOutput buffers bytes until a part is full, then uploads it; the last
// part, of any size, goes up on commit.
type storeOutput struct {
	st       store.Store
	key      string
	uploadID string
	partSize int
	buf      []byte
	parts    []store.Part
}

func (o *storeOutput) name() string { return o.key + " (upload " + o.uploadID + ")" }

func (o *storeOutput) write(ctx context.Context, p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), o.partSize-len(o.buf))
		o.buf = append(o.buf, p[:k]...)
		p = p[k:]
		if len(o.buf) == o.partSize {
			if err := o.flush(ctx); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (o *storeOutput) flush(ctx context.Context) error {
	num := len(o.parts) + 1
	etag, err := o.st.UploadPart(ctx, o.key, o.uploadID, num, bytes.NewReader(o.buf), int64(len(o.buf)))
	if err != nil {
		return fmt.Errorf("upload parquet part: %w", err)
	}
	o.parts = append(o.parts, store.Part{Num: num, ETag: etag})
	o.buf = o.buf[:0]
	return nil
}

func (o *storeOutput) commit(ctx context.Context) error {
	if len(o.buf) > 0 || len(o.parts) == 0 {
		if err := o.flush(ctx); err != nil {
			o.abort(ctx)
			return err
		}
	}
	if err := o.st.CompleteUpload(ctx, o.key, o.uploadID, o.parts); err != nil {
		o.abort(ctx)
		return fmt.Errorf("commit parquet file: %w", err)
	}
	o.buf = nil
	return nil
}

// abortTimeout bounds the cleanup of a failed upload.
const abortTimeout = 30 * time.Second

func (o *storeOutput) abort(ctx context.Context) {
	// Aborting is cleanup: it runs even after the caller gave up, bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = o.st.AbortUpload(ctx, o.key, o.uploadID)
	o.buf = nil
}

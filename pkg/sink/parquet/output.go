package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/internal/fileutil"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// destination stages and publishes the files of a sink: a local directory
// or an object store. The partition layout and file names are the same for
// both. Every method that takes a fileRef is safe for concurrent use.
type destination interface {
	// exists reports whether a published file already has this name, so
	// a restarted process never replaces one.
	exists(ctx context.Context, dir, name string) (bool, error)
	// create starts a staged file that becomes ref's final name on publish.
	// Uploads it triggers from inside the Parquet writer use *ctxp.
	create(ctx context.Context, task string, ref fileRef, ctxp *context.Context) (stagedOutput, error)
	// resume reopens a staged file of a checkpoint, cut back to length.
	resume(ctx context.Context, task string, ref fileRef, length int64, ctxp *context.Context) (stagedOutput, error)
	// publish makes a completed staged file visible under its final name.
	// It is idempotent: a file already published returns (false, nil).
	publish(ctx context.Context, task string, ref fileRef) (bool, error)
	// discard deletes a staged file; one that does not exist is no error.
	discard(ctx context.Context, task string, ref fileRef)
	// isStaged reports whether the staged file ref (of a checkpoint) is
	// still there to be resumed.
	isStaged(ctx context.Context, task string, ref fileRef) (bool, error)
	// staged lists the staged files of the given (escaped) tasks.
	staged(ctx context.Context, tasks map[string]bool) ([]stagedFile, error)
	// cleanup deletes a staged file that no checkpoint refers to, found by
	// staged. keepIntent keeps its staging intent (object store), because
	// a file the checkpoint refers to has the same one.
	cleanup(ctx context.Context, f stagedFile, keepIntent bool)
	// location names the final path of dir/name in log lines.
	location(dir, name string) string
	// putMarker writes a small file (a partition's manifest or _SUCCESS)
	// into a partition directory, durably, replacing an existing one.
	putMarker(ctx context.Context, dir, name string, data []byte) error
}

// stagedFile is a staged file found by destination.staged.
type stagedFile struct {
	task string
	ref  fileRef
	// intent is the key of the file's staging intent in an object store;
	// ref.UploadID is empty when the intent has no open upload left.
	intent string
}

// stagedKey identifies a staged file across checkpoints and listings.
type stagedKey struct {
	task, dir, uploadID string
	seq                 uint64
}

func keyOf(task string, r *fileRef) stagedKey {
	return stagedKey{task: task, dir: r.Dir, uploadID: r.UploadID, seq: r.Seq}
}

// stagedOutput is the pqfile.Output of one staged file.
type stagedOutput interface {
	pqfile.Output
	// ref returns the file's reference with the parts uploaded so far.
	ref() fileRef
	// bind makes uploads use the context *ctxp from now on.
	bind(ctxp *context.Context)
	// release drops the output without finishing or deleting the staged
	// file, which a checkpoint may still need.
	release()
	// name identifies the staged file in error messages.
	name() string
}

// fileName is the final name of a task's file.
func fileName(task string, seq uint64) string {
	return "part-" + task + "-" + padSeq(seq) + ".parquet"
}

func padSeq(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) < 6 {
		s = "000000"[len(s):] + s
	}
	return s
}

// parseFileName splits "part-<task>-<seq>.parquet" (with the given prefix
// and suffix around it) into task and sequence number.
func parseFileName(base, prefix, suffix string) (task string, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(base, prefix)
	if !found {
		return "", 0, false
	}
	if rest, found = strings.CutSuffix(rest, suffix); !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil || rest[i+1] == '+' {
		return "", 0, false
	}
	return rest[:i], seq, true
}

// localDest writes files below a directory: a hidden
// ".part-<task>-<seq>.parquet.inprogress" file in the partition directory,
// renamed to its final name on publish.
type localDest struct{ root string }

const (
	stagedPrefix = ".part-"
	stagedSuffix = ".parquet.inprogress"
)

func (d localDest) absDir(dir string) string { return filepath.Join(d.root, filepath.FromSlash(dir)) }

func (d localDest) stagedPath(task string, r fileRef) string {
	return filepath.Join(d.absDir(r.Dir), "."+fileName(task, r.Seq)+".inprogress")
}

func (d localDest) finalPath(task string, r fileRef) string {
	return filepath.Join(d.absDir(r.Dir), fileName(task, r.Seq))
}

func (d localDest) exists(_ context.Context, dir, name string) (bool, error) {
	return pathExists(filepath.Join(d.absDir(dir), name))
}

func pathExists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check parquet file: %w", err)
	}
	return true, nil
}

func (d localDest) location(dir, name string) string { return filepath.Join(d.absDir(dir), name) }

func (d localDest) create(_ context.Context, task string, r fileRef, _ *context.Context) (stagedOutput, error) {
	abs := d.absDir(r.Dir)
	if err := os.MkdirAll(abs, 0o755); err != nil { //nolint:gosec // output is read by other users (query engines)
		return nil, fmt.Errorf("create partition directory: %w", err)
	}
	// The partition directory may be new: its entry in every parent up to
	// the root must be durable before a checkpoint refers to the file.
	if err := d.syncParents(abs); err != nil {
		return nil, err
	}
	out, err := pqfile.CreateLocal(d.stagedPath(task, r))
	if err != nil {
		return nil, err
	}
	return &localOutput{LocalOutput: out, r: r}, nil
}

func (d localDest) syncParents(abs string) error {
	for dir := abs; ; {
		rel, err := filepath.Rel(d.root, dir)
		if err != nil || rel == "." || filepath.Dir(dir) == dir {
			return nil
		}
		dir = filepath.Dir(dir)
		if err := fileutil.SyncDir(dir); err != nil {
			return fmt.Errorf("sync partition directory: %w", err)
		}
	}
}

func (d localDest) resume(_ context.Context, task string, r fileRef, length int64, _ *context.Context) (stagedOutput, error) {
	out, err := pqfile.OpenLocalForResume(d.stagedPath(task, r), length)
	if err != nil {
		return nil, err
	}
	return &localOutput{LocalOutput: out, r: r}, nil
}

// publish renames the staged file, whose bytes are durable since its
// writer closed, and makes the rename durable. It never replaces a file.
func (d localDest) publish(_ context.Context, task string, r fileRef) (bool, error) {
	src, dst := d.stagedPath(task, r), d.finalPath(task, r)
	srcOK, err := pathExists(src)
	if err != nil {
		return false, err
	}
	dstOK, err := pathExists(dst)
	if err != nil {
		return false, err
	}
	switch {
	case !srcOK && dstOK:
		return false, nil // published before
	case !srcOK:
		return false, fmt.Errorf("publish parquet file: neither %s nor %s exists", src, dst)
	case dstOK:
		return false, fmt.Errorf("publish parquet file: %s exists already", dst)
	}
	if err := os.Rename(src, dst); err != nil {
		return false, fmt.Errorf("publish parquet file: %w", err)
	}
	if err := fileutil.SyncDir(filepath.Dir(dst)); err != nil {
		return false, fmt.Errorf("publish parquet file: %w", err)
	}
	return true, nil
}

func (d localDest) discard(_ context.Context, task string, r fileRef) {
	_ = os.Remove(d.stagedPath(task, r))
}

// putMarker writes a temporary file, fsyncs it, renames it into place and
// fsyncs the directory.
func (d localDest) putMarker(_ context.Context, dir, name string, data []byte) error {
	abs := d.absDir(dir)
	if err := os.MkdirAll(abs, 0o755); err != nil { //nolint:gosec // output is read by other users (query engines)
		return fmt.Errorf("write %s: %w", name, err)
	}
	f, err := os.CreateTemp(abs, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(abs, name))
	}
	if err == nil {
		err = fileutil.SyncDir(abs)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (d localDest) isStaged(_ context.Context, task string, r fileRef) (bool, error) {
	return pathExists(d.stagedPath(task, r))
}

func (d localDest) cleanup(ctx context.Context, f stagedFile, _ bool) { d.discard(ctx, f.task, f.ref) }

// staged walks the whole directory: staged files of a lost run may be in
// any partition. It runs once, at recovery.
func (d localDest) staged(_ context.Context, tasks map[string]bool) ([]stagedFile, error) {
	var out []stagedFile
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		task, seq, ok := parseFileName(e.Name(), stagedPrefix, stagedSuffix)
		if !ok || !tasks[task] {
			return nil
		}
		rel, err := filepath.Rel(d.root, filepath.Dir(p))
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(rel)
		if dir == "." {
			dir = ""
		}
		out = append(out, stagedFile{task: task, ref: fileRef{Dir: dir, Seq: seq}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list staged parquet files: %w", err)
	}
	return out, nil
}

// localOutput is a staged local file.
type localOutput struct {
	*pqfile.LocalOutput
	r fileRef
}

func (o *localOutput) ref() fileRef          { return o.r }
func (o *localOutput) bind(*context.Context) {}
func (o *localOutput) name() string          { return o.Path() }
func (o *localOutput) release()              { _ = o.Close() }

// storeDest writes each file as a multipart upload to an object store, so
// a file of any size streams out in parts while it is written, survives
// checkpoints and restarts as an open upload, and becomes visible, complete,
// only when the upload is completed.
//
// Recovery uses exact-key calls only: S3-compatible stores differ in how
// they list multipart uploads by prefix (MinIO answers only for a whole
// object name). A checkpoint's files are found by the key and upload id its
// state records. Uploads no checkpoint knows — started after the last
// completed checkpoint by a process that crashed — are found through their
// staging intent: before an upload is created, a small object
// ".streamd-staging/<task>/<seq>" below the prefix records its partition
// directory; it is deleted when the file is published or discarded.
// Recovery lists those intents (an object listing, which every store
// answers), asks for the uploads of each intent's exact key, and aborts
// those no checkpoint refers to.
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

// intentDir is the folder of staging intents below the prefix; the leading
// dot hides it from Hive, Spark, Trino and Athena.
const intentDir = ".streamd-staging/"

func (d storeDest) intentKey(task string, seq uint64) string {
	return d.prefix + intentDir + task + "/" + padSeq(seq)
}

// uploadsOf returns the open uploads of exactly key.
func (d storeDest) uploadsOf(ctx context.Context, key string) ([]store.UploadInfo, error) {
	ups, err := d.st.ListUploads(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("list parquet uploads of %s: %w", key, err)
	}
	return slices.DeleteFunc(ups, func(u store.UploadInfo) bool { return u.Key != key }), nil
}

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

func (d storeDest) create(ctx context.Context, task string, r fileRef, ctxp *context.Context) (stagedOutput, error) {
	key := d.key(r.Dir, fileName(task, r.Seq))
	// The intent first: an upload must never exist without a trace that
	// recovery can find by listing objects.
	intent := []byte(r.Dir)
	if err := d.st.Put(ctx, d.intentKey(task, r.Seq), bytes.NewReader(intent), int64(len(intent))); err != nil {
		return nil, fmt.Errorf("create parquet file: record staging intent: %w", err)
	}
	id, err := d.st.CreateUpload(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	r.UploadID = id
	return &storeOutput{st: d.st, key: key, r: r, partSize: d.partSize, ctx: ctxp,
		buf: make([]byte, 0, d.partSize)}, nil
}

// resume re-attaches to the upload: parts uploaded after the checkpoint are
// replaced as the file is written again, and parts past the last one listed
// on completion are dropped by the store.
func (d storeDest) resume(_ context.Context, task string, r fileRef, length int64, ctxp *context.Context) (stagedOutput, error) {
	r.Parts = slices.Clone(r.Parts)
	if n := int64(len(r.Parts)) * int64(d.partSize); n != length {
		return nil, fmt.Errorf("resume parquet upload %s: %d parts of %d bytes, checkpoint has %d bytes uploaded",
			r.UploadID, len(r.Parts), d.partSize, length)
	}
	return &storeOutput{st: d.st, key: d.key(r.Dir, fileName(task, r.Seq)), r: r, partSize: d.partSize, ctx: ctxp,
		buf: make([]byte, 0, d.partSize)}, nil
}

func (d storeDest) publish(ctx context.Context, task string, r fileRef) (bool, error) {
	if err := d.st.CompleteUpload(ctx, d.key(r.Dir, fileName(task, r.Seq)), r.UploadID, r.Parts); err != nil {
		return false, fmt.Errorf("publish parquet file: %w", err)
	}
	// A left-over intent only costs recovery a lookup, which deletes it.
	_ = d.st.Delete(ctx, d.intentKey(task, r.Seq))
	return true, nil
}

// abortTimeout bounds the cleanup of a dropped upload.
const abortTimeout = 30 * time.Second

func (d storeDest) discard(ctx context.Context, task string, r fileRef) {
	// Aborting is cleanup: it runs even after the caller gave up, bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := d.st.AbortUpload(ctx, d.key(r.Dir, fileName(task, r.Seq)), r.UploadID); err == nil {
		_ = d.st.Delete(ctx, d.intentKey(task, r.Seq))
	}
}

func (d storeDest) putMarker(ctx context.Context, dir, name string, data []byte) error {
	if err := d.st.Put(ctx, d.key(dir, name), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (d storeDest) isStaged(ctx context.Context, task string, r fileRef) (bool, error) {
	ups, err := d.uploadsOf(ctx, d.key(r.Dir, fileName(task, r.Seq)))
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ups, func(u store.UploadInfo) bool { return u.UploadID == r.UploadID }), nil
}

// staged lists the staging intents of the tasks and, for each, the open
// uploads of its exact key. An intent without an open upload is listed
// with an empty upload id, so recovery deletes it.
func (d storeDest) staged(ctx context.Context, tasks map[string]bool) ([]stagedFile, error) {
	objs, err := d.st.List(ctx, d.prefix+intentDir)
	if err != nil {
		return nil, fmt.Errorf("list parquet staging intents: %w", err)
	}
	var out []stagedFile
	for _, o := range objs {
		task, seqText, ok := strings.Cut(strings.TrimPrefix(o.Key, d.prefix+intentDir), "/")
		if !ok || !tasks[task] {
			continue
		}
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err != nil {
			continue
		}
		dir, err := d.readIntent(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		ups, err := d.uploadsOf(ctx, d.key(dir, fileName(task, seq)))
		if err != nil {
			return nil, err
		}
		if len(ups) == 0 {
			out = append(out, stagedFile{task: task, ref: fileRef{Dir: dir, Seq: seq}, intent: o.Key})
		}
		for _, u := range ups {
			out = append(out, stagedFile{task: task, ref: fileRef{Dir: dir, Seq: seq, UploadID: u.UploadID}, intent: o.Key})
		}
	}
	return out, nil
}

// maxIntentBytes bounds a staging intent read back: a partition directory.
const maxIntentBytes = 4096

func (d storeDest) readIntent(ctx context.Context, key string) (string, error) {
	rc, err := d.st.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read parquet staging intent %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxIntentBytes+1))
	if err != nil {
		return "", fmt.Errorf("read parquet staging intent %s: %w", key, err)
	}
	dir := string(b)
	if len(b) > maxIntentBytes || validDir(dir) != nil {
		return "", fmt.Errorf("read parquet staging intent %s: bad partition directory %q", key, dir)
	}
	return dir, nil
}

func (d storeDest) cleanup(ctx context.Context, f stagedFile, keepIntent bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if f.ref.UploadID != "" {
		if err := d.st.AbortUpload(ctx, d.key(f.ref.Dir, fileName(f.task, f.ref.Seq)), f.ref.UploadID); err != nil {
			return // the intent stays, so the next recovery tries again
		}
	}
	if !keepIntent && f.intent != "" {
		_ = d.st.Delete(ctx, f.intent)
	}
}

// storeOutput buffers bytes until a part is full, then uploads it. Sync
// leaves the buffered bytes pending: they are less than a part, too small
// for S3 unless last, so they travel in the checkpoint instead. Close
// uploads them as the last part, of any size.
type storeOutput struct {
	st       store.Store
	key      string
	r        fileRef
	partSize int
	buf      []byte
	ctx      *context.Context
}

func (o *storeOutput) ref() fileRef {
	r := o.r
	r.Parts = slices.Clone(r.Parts)
	return r
}

func (o *storeOutput) bind(ctxp *context.Context) { o.ctx = ctxp }
func (o *storeOutput) name() string               { return o.key + " (upload " + o.r.UploadID + ")" }
func (o *storeOutput) release()                   { o.buf = nil }

func (o *storeOutput) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), o.partSize-len(o.buf))
		o.buf = append(o.buf, p[:k]...)
		p = p[k:]
		if len(o.buf) == o.partSize {
			if err := o.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (o *storeOutput) Sync() ([]byte, error) { return o.buf, nil }

func (o *storeOutput) Close() error {
	if len(o.buf) > 0 || len(o.r.Parts) == 0 {
		if err := o.flush(); err != nil {
			return err
		}
	}
	o.buf = nil
	return nil
}

func (o *storeOutput) flush() error {
	num := len(o.r.Parts) + 1
	if num > maxParts {
		return fmt.Errorf("upload parquet part: %s would exceed %d parts", o.key, maxParts)
	}
	etag, err := o.st.UploadPart(*o.ctx, o.key, o.r.UploadID, num, bytes.NewReader(o.buf), int64(len(o.buf)))
	if err != nil {
		return fmt.Errorf("upload parquet part: %w", err)
	}
	o.r.Parts = append(o.r.Parts, store.Part{Num: num, ETag: etag})
	o.buf = o.buf[:0]
	return nil
}

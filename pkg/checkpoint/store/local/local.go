package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/streamd/streamd/internal/fileutil"
	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// reserved is the directory below the root that holds temporary files and
// multipart uploads; keys may not start with it.
const reserved = ".store"

// Store is a store.Store on a local directory.
type Store struct {
	root    string
	tmp     string
	uploads string
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Checker = (*Store)(nil)
)

// New returns a store rooted at dir, creating the directory if needed.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("new local store: dir is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new local store: %w", err)
	}
	s := &Store{
		root:    abs,
		tmp:     filepath.Join(abs, reserved, "tmp"),
		uploads: filepath.Join(abs, reserved, "uploads"),
	}
	for _, d := range []string{s.tmp, s.uploads} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("new local store: %w", err)
		}
	}
	return s, nil
}

// Dir returns the root directory.
func (s *Store) Dir() string { return s.root }

// Check verifies that the root directory is writable.
func (s *Store) Check(context.Context) error {
	f, err := os.CreateTemp(s.tmp, "check-*")
	if err != nil {
		return fmt.Errorf("check local store %s: directory is not writable: %w", s.root, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

func (s *Store) path(key string) (string, error) {
	if err := store.ValidKey(key); err != nil {
		return "", err
	}
	if key == reserved || strings.HasPrefix(key, reserved+"/") {
		return "", fmt.Errorf("key %q is in the reserved %s directory", key, reserved)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes an object durably, replacing any object at key.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := s.writeTmp(r, size, nil)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := s.mkdirs(filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return s.syncDirs(filepath.Dir(p))
}

// writeTmp copies r into a new fsynced temporary file and returns its path.
// When h is not nil it is fed the same bytes.
func (s *Store) writeTmp(r io.Reader, size int64, h io.Writer) (path string, err error) {
	f, err := os.CreateTemp(s.tmp, "obj-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if h != nil {
		r = io.TeeReader(r, h)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return "", err
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("read %d bytes, want %d", n, size)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// mkdirs creates dir and its parents; new entries are made durable by the
// syncDirs that follows every link or rename.
func (s *Store) mkdirs(dir string) error { return os.MkdirAll(dir, 0o750) }

// syncDirs fsyncs dir and every parent up to the root, since any of them
// may have been created by this write.
func (s *Store) syncDirs(dir string) error {
	for {
		if err := fileutil.SyncDir(dir); err != nil {
			return err
		}
		if dir == s.root || len(dir) <= len(s.root) {
			return nil
		}
		dir = filepath.Dir(dir)
	}
}

// PutIfAbsent creates an object only if key holds none: the data is written
// to a fsynced temporary file that is hard-linked to the key, and a link
// never replaces an existing file.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := s.putIfAbsent(ctx, key, data); err != nil {
		return fmt.Errorf("put %s if absent: %w", key, err)
	}
	return nil
}

func (s *Store) putIfAbsent(ctx context.Context, key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := s.writeTmp(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return s.link(tmp, p)
}

// link makes tmp the object at p without replacing one. When p already
// holds the same bytes it succeeds, which makes a repeated create after a
// crash idempotent.
func (s *Store) link(tmp, p string) error {
	if err := s.mkdirs(filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		same, cerr := sameFiles(tmp, p)
		if cerr != nil {
			return cerr
		}
		if !same {
			return store.ErrExists
		}
	}
	return s.syncDirs(filepath.Dir(p))
}

func sameFiles(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if sa.Size() != sb.Size() || !sb.Mode().IsRegular() {
		return false, nil
	}
	ra, rb := bufio.NewReader(fa), bufio.NewReader(fb)
	bufA, bufB := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		na, ea := io.ReadFull(ra, bufA)
		nb, eb := io.ReadFull(rb, bufB)
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF), nil
		}
	}
}

// Get opens an object.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return f, nil
}

// List returns the objects under prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	base := s.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		base = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []store.ObjectInfo
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == reserved {
				return fs.SkipDir
			}
			// Skip directories that cannot hold a key with the prefix.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		out = append(out, store.ObjectInfo{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b store.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes objects; missing keys are ignored.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	dirs := make(map[string]struct{})
	for _, key := range keys {
		p, err := s.path(key)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		dirs[filepath.Dir(p)] = struct{}{}
	}
	for d := range dirs {
		if err := fileutil.SyncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete: %w", err)
		}
	}
	return nil
}

// keyFile names the file in an upload directory that holds the target key.
const keyFile = "key"

func (s *Store) uploadDir(id string) (string, error) {
	if len(id) != 32 {
		return "", fmt.Errorf("upload %q: %w", id, store.ErrNotFound)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", fmt.Errorf("upload %q: %w", id, store.ErrNotFound)
	}
	return filepath.Join(s.uploads, id), nil
}

// CreateUpload starts an upload: a directory named by a random id, made
// visible atomically with the target key recorded inside.
func (s *Store) CreateUpload(ctx context.Context, key string) (string, error) {
	if _, err := s.path(key); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tmpDir, err := os.MkdirTemp(s.tmp, "upload-*")
	if err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	defer os.RemoveAll(tmpDir)
	if err := fileutil.WriteSynced(filepath.Join(tmpDir, keyFile), []byte(key), 0o600); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	if err := fileutil.SyncDir(tmpDir); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	if err := os.Rename(tmpDir, filepath.Join(s.uploads, id)); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	if err := fileutil.SyncDir(s.uploads); err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	return id, nil
}

// openUpload checks that an upload exists and belongs to key.
func (s *Store) openUpload(key, id string) (string, error) {
	dir, err := s.uploadDir(id)
	if err != nil {
		return "", err
	}
	got, err := os.ReadFile(filepath.Join(dir, keyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("upload %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	if string(got) != key {
		return "", fmt.Errorf("upload %s is for key %q: %w", id, got, store.ErrNotFound)
	}
	return dir, nil
}

func partName(num int) string {
	s := strconv.Itoa(num)
	return "part-" + strings.Repeat("0", max(0, 5-len(s))) + s
}

// UploadPart stores one part durably; its ETag is the SHA-256 of its bytes.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, partNum int, r io.Reader, size int64) (string, error) {
	etag, err := s.uploadPart(ctx, key, uploadID, partNum, r, size)
	if err != nil {
		return "", fmt.Errorf("upload part %d of %s: %w", partNum, key, err)
	}
	return etag, nil
}

func (s *Store) uploadPart(ctx context.Context, key, uploadID string, partNum int, r io.Reader, size int64) (string, error) {
	if partNum < 1 || partNum > 10000 {
		return "", fmt.Errorf("part number %d outside 1..10000", partNum)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dir, err := s.openUpload(key, uploadID)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	tmp, err := s.writeTmp(r, size, h)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, filepath.Join(dir, partName(partNum))); err != nil {
		return "", err
	}
	if err := fileutil.SyncDir(dir); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + `"`, nil
}

// CompleteUpload concatenates the parts into a fsynced temporary file and
// links it to the key, then removes the upload.
func (s *Store) CompleteUpload(ctx context.Context, key, uploadID string, parts []store.Part) error {
	if err := s.completeUpload(ctx, key, uploadID, parts); err != nil {
		return fmt.Errorf("complete upload of %s: %w", key, err)
	}
	return nil
}

func (s *Store) completeUpload(ctx context.Context, key, uploadID string, parts []store.Part) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := s.openUpload(key, uploadID)
	if errors.Is(err, store.ErrNotFound) {
		// Completed before (its directory is removed last), or never existed.
		if st, serr := os.Stat(p); serr == nil && st.Mode().IsRegular() {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return errors.New("no parts")
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Num - b.Num })
	f, err := os.CreateTemp(s.tmp, "complete-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := concatParts(f, dir, parts); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.link(tmp, p); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return fileutil.SyncDir(s.uploads)
}

func concatParts(w io.Writer, dir string, parts []store.Part) error {
	prev := 0
	for _, part := range parts {
		if part.Num == prev {
			return fmt.Errorf("part %d listed twice", part.Num)
		}
		prev = part.Num
		pf, err := os.Open(filepath.Join(dir, partName(part.Num)))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("part %d was not uploaded", part.Num)
		}
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(w, h), pf)
		_ = pf.Close()
		if err != nil {
			return err
		}
		if etag := `"` + hex.EncodeToString(h.Sum(nil)) + `"`; etag != part.ETag {
			return fmt.Errorf("part %d: etag %s does not match the uploaded part %s", part.Num, part.ETag, etag)
		}
	}
	return nil
}

// AbortUpload removes an upload's directory.
func (s *Store) AbortUpload(ctx context.Context, key, uploadID string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	dir, err := s.openUpload(key, uploadID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	if err := fileutil.SyncDir(s.uploads); err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	return nil
}

// ListUploads returns the open uploads under prefix.
func (s *Store) ListUploads(ctx context.Context, prefix string) ([]store.UploadInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list uploads %s: %w", prefix, err)
	}
	entries, err := os.ReadDir(s.uploads)
	if err != nil {
		return nil, fmt.Errorf("list uploads %s: %w", prefix, err)
	}
	var out []store.UploadInfo
	for _, e := range entries {
		kf := filepath.Join(s.uploads, e.Name(), keyFile)
		key, err := os.ReadFile(kf)
		if errors.Is(err, fs.ErrNotExist) {
			continue // completed or aborted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list uploads %s: %w", prefix, err)
		}
		if !strings.HasPrefix(string(key), prefix) {
			continue
		}
		st, err := os.Stat(kf)
		if err != nil {
			continue
		}
		out = append(out, store.UploadInfo{Key: string(key), UploadID: e.Name(), Initiated: st.ModTime()})
	}
	slices.SortFunc(out, func(a, b store.UploadInfo) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.Initiated.Compare(b.Initiated)
	})
	return out, nil
}

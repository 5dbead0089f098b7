package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	// ErrNotFound is returned by Get for a key that holds no object, and by
	// multipart calls for an upload that does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists is returned by PutIfAbsent and CompleteUpload when the key
	// already holds a different object. It is how a checkpoint coordinator
	// learns that another writer created a manifest first.
	ErrExists = errors.New("object already exists")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is relative to the store's root (an s3 store's prefix is not part of it).
	Key      string
	Size     int64
	Modified time.Time
}

// Part is one uploaded part of a multipart upload, as CompleteUpload needs it.
type Part struct {
	// Num is the part number, 1 to 10000; the object is the parts in Num order.
	Num int
	// ETag is what UploadPart returned for the part.
	ETag string
}

// UploadInfo describes a multipart upload that is neither completed nor
// aborted.
type UploadInfo struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// MinPartSize is the smallest size S3 accepts for a part other than the
// last. The local backend accepts smaller parts, but writers that may target
// S3 must respect it.
const MinPartSize = 5 << 20

// Store is the one object-store contract of checkpoints and staged files.
// Keys are slash-separated relative paths ("chk/000042/manifest.json");
// a key must not be empty, start or end with "/", or contain "." or ".."
// segments or empty segments. Every method is safe for concurrent use and
// honours ctx; transient failures are retried inside the backend a bounded
// number of times, so an error returned here is final for the call.
type Store interface {
	// Put writes an object of size bytes read from r, replacing any object
	// at key. Readers see either the old object or the whole new one.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// PutIfAbsent creates an object only if key holds none, atomically: of
	// concurrent callers exactly one succeeds. It returns ErrExists when key
	// already holds an object with different content; when it already holds
	// exactly data it returns nil, so a retried create that had in fact
	// succeeded is not mistaken for a lost race.
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// Get opens an object for reading; the caller closes it. It returns an
	// error wrapping ErrNotFound when key holds no object.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the objects whose key starts with prefix (a plain string
	// prefix, not only a directory), sorted by key. Multipart uploads in
	// progress are not listed.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes objects; keys that hold nothing are not an error.
	Delete(ctx context.Context, keys ...string) error

	// CreateUpload starts a multipart upload to key. Nothing is visible at
	// key until CompleteUpload; the upload survives process restarts, so its
	// id can be recorded in a checkpoint and completed later.
	CreateUpload(ctx context.Context, key string) (uploadID string, err error)
	// UploadPart stores part partNum (1 to 10000) of an upload and returns
	// its ETag. Uploading the same number again replaces the part. Every
	// part but the last must be at least MinPartSize bytes for S3.
	UploadPart(ctx context.Context, key, uploadID string, partNum int, r io.Reader, size int64) (etag string, err error)
	// CompleteUpload makes the parts, in Num order, the object at key. It
	// never replaces an object: it returns ErrExists if another object is
	// already at key. It is idempotent: completing an upload that was
	// already completed, whose object exists, returns nil. An unknown
	// upload whose key holds no object returns an error wrapping ErrNotFound.
	CompleteUpload(ctx context.Context, key, uploadID string, parts []Part) error
	// AbortUpload discards an upload and its parts; an unknown upload is
	// not an error.
	AbortUpload(ctx context.Context, key, uploadID string) error
	// ListUploads returns the open uploads whose key starts with prefix,
	// sorted by key then initiation time, so orphans of a crashed writer
	// can be aborted.
	ListUploads(ctx context.Context, prefix string) ([]UploadInfo, error)
}

// Checker is implemented by stores that can verify, before a pipeline
// starts, that they are reachable and usable.
type Checker interface {
	// Check returns one clear error naming what is wrong (bucket,
	// endpoint, credentials, directory).
	Check(ctx context.Context) error
}

// RetryError describes requests being retried: how many, since when the
// oldest has been failing, and the last failure.
type RetryError struct {
	Requests int
	Since    time.Time
	Err      error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%d request(s) failing since %s: %v", e.Requests, e.Since.UTC().Format(time.RFC3339), e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// ErrRetryLimit marks the failure of a request that was retried through
// an outage of its endpoint for as long as its store allows (s3.retryFor)
// and failed all along: the outage outlasted the limit, and a restart
// would not end it sooner.
var ErrRetryLimit = errors.New("retry limit passed")

// Retrier is implemented by stores that retry failed requests (an
// endpoint answering 503, a lost connection) before they fail. Retrying
// returns the failure of a request being retried now, nil when no request
// is, as a *RetryError when the store knows since when; it may be called
// from any goroutine.
type Retrier interface {
	Retrying() error
}

// ValidKey reports whether key is acceptable to every backend.
func ValidKey(key string) error {
	if key == "" {
		return errors.New("key is empty")
	}
	if key[0] == '/' || key[len(key)-1] == '/' {
		return errors.New("key " + quote(key) + " starts or ends with /")
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '/' {
			if key[i] == 0 || key[i] == '\\' {
				return errors.New("key " + quote(key) + " contains a NUL or backslash")
			}
			continue
		}
		seg := key[start:i]
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("key " + quote(key) + " has an empty, . or .. segment")
		}
		start = i + 1
	}
	return nil
}

func quote(s string) string { return "\"" + s + "\"" }

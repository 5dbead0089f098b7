package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/awsconf"
	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// Store is a store.Store on one S3 bucket and key prefix.
type Store struct {
	cfg     Config
	prefix  string // Config.Prefix with a trailing slash, or empty
	client  *s3.Client
	logger  *zap.Logger
	metrics *store.Metrics
	// requests knows which requests are being retried.
	requests *retrying
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Checker = (*Store)(nil)
	_ store.Retrier = (*Store)(nil)
)

// Retrying implements store.Retrier: the failure of a request being
// retried now.
func (s *Store) Retrying() error { return s.requests.err() }

// New returns an S3 store. It makes no request; call Check to verify the
// bucket and credentials. A nil logger logs nothing; a nil reg registers no
// metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new s3 store: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	ac := cfg.Config
	if ac.Region == "" && cfg.Endpoint != "" {
		ac.Region = "us-east-1" // compatible servers accept any region
	}
	if cfg.ResponseTimeout > 0 && ac.HTTPClient == nil {
		ac.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = cfg.ResponseTimeout
		})
	}
	awsCfg, err := awsconf.Load(context.Background(), ac)
	if err != nil {
		return nil, fmt.Errorf("new s3 store: %w", err)
	}
	sdkLog := logger.Named("aws")
	requests := &retrying{}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		// The SDK's own notes (missing response checksums on compatible
		// servers, retries) are debug detail, not warnings on stderr.
		o.Logger = logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
			if ce := sdkLog.Check(zap.DebugLevel, "aws sdk"); ce != nil {
				ce.Write(zap.String("msg", fmt.Sprintf(format, v...)))
			}
		})
		o.Retryer = budgetRetryer{
			RetryerV2: retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = cfg.MaxAttempts
				if cfg.MaxBackoff > 0 {
					so.MaxBackoff = cfg.MaxBackoff
				}
				so.RateLimiter = ratelimit.None
			}),
			budget:   cfg.RetryFor,
			requests: requests,
		}
		o.APIOptions = append(o.APIOptions, requests.track)
	})
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{
		cfg:      cfg,
		prefix:   prefix,
		client:   client,
		logger:   logger.With(zap.String("store", cfg.Name), zap.String("bucket", cfg.Bucket)),
		metrics:  store.NewMetrics(reg),
		requests: requests,
	}, nil
}

// observe is deferred with the address of the named error result, so it
// sees the error the method returns.
func (s *Store) observe(op string, start time.Time, err *error) {
	s.metrics.Observe(s.cfg.Name, op, start, *err)
}

func (s *Store) key(key string) (*string, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + key), nil
}

// errorCode returns the S3 error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// statusCode returns the HTTP status of a failed request, or 0.
func statusCode(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || statusCode(err) == http.StatusNotFound && errorCode(err) != "NoSuchBucket"
}

func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	return errors.As(err, &nsu) || errorCode(err) == "NoSuchUpload"
}

func isPreconditionFailed(err error) bool {
	return statusCode(err) == http.StatusPreconditionFailed || errorCode(err) == "PreconditionFailed"
}

// isConditionalConflict reports a 409 that S3 returns when a conditional
// write raced with another write to the same key; S3 asks clients to retry.
func isConditionalConflict(err error) bool {
	return errorCode(err) == "ConditionalRequestConflict"
}

// seekable returns r as an io.ReadSeeker of exactly size bytes, buffering it
// when it cannot seek: SigV4 over plain HTTP hashes the payload, and a
// retried attempt must resend it.
func seekable(r io.Reader, size int64) (io.ReadSeeker, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		return rs, nil
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return bytes.NewReader(buf), nil
}

// Check verifies that the bucket is reachable with the configured
// credentials.
func (s *Store) Check(ctx context.Context) (err error) {
	defer s.observe("check", time.Now(), &err)
	_, err = s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		endpoint := s.cfg.Endpoint
		if endpoint == "" {
			endpoint = "the AWS endpoint of region " + s.client.Options().Region
		}
		hint := "check the bucket name, endpoint and credentials"
		switch statusCode(err) {
		case http.StatusNotFound:
			hint = "the bucket does not exist"
		case http.StatusForbidden, http.StatusUnauthorized:
			hint = "access denied: check the credentials and the bucket policy"
		case http.StatusMovedPermanently:
			hint = "the bucket is in another region: set region"
		}
		return fmt.Errorf("check s3 bucket %q at %s: %s: %w", s.cfg.Bucket, endpoint, hint, err)
	}
	return nil
}

// Put writes an object, replacing any object at key.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	defer s.observe("put", time.Now(), &err)
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	body, err := seekable(r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: k, Body: body, ContentLength: aws.Int64(size),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent creates an object with If-None-Match: *.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) (err error) {
	defer s.observe("put_if_absent", time.Now(), &err)
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("put %s if absent: %w", key, err)
	}
	for attempt := 1; ; attempt++ {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.cfg.Bucket), Key: k, Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*"),
		})
		if err == nil {
			return nil
		}
		if isConditionalConflict(err) && attempt < s.cfg.MaxAttempts {
			continue
		}
		if !isPreconditionFailed(err) {
			return fmt.Errorf("put %s if absent: %w", key, err)
		}
		break
	}
	// The key exists. A retried attempt whose first try had succeeded also
	// lands here, so equal content counts as success.
	same, err := s.holds(ctx, key, data)
	if err != nil {
		return fmt.Errorf("put %s if absent: %w", key, err)
	}
	if !same {
		return fmt.Errorf("put %s if absent: %w", key, store.ErrExists)
	}
	return nil
}

// holds reports whether key holds exactly data.
func (s *Store) holds(ctx context.Context, key string, data []byte) (bool, error) {
	rc, err := s.get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(data))+1))
	if err != nil {
		return false, fmt.Errorf("read existing object: %w", err)
	}
	return bytes.Equal(got, data), nil
}

// Get opens an object.
func (s *Store) Get(ctx context.Context, key string) (_ io.ReadCloser, err error) {
	defer s.observe("get", time.Now(), &err)
	rc, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

func (s *Store) get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k})
	if err != nil {
		if isNotFound(err) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	return out.Body, nil
}

// exists reports whether key holds an object.
func (s *Store) exists(ctx context.Context, k *string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// List returns the objects under prefix, sorted by key, following every
// page.
func (s *Store) List(ctx context.Context, prefix string) (_ []store.ObjectInfo, err error) {
	defer s.observe("list", time.Now(), &err)
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.prefix + prefix),
	})
	var out []store.ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, store.ObjectInfo{
				Key:      strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
			})
		}
	}
	slices.SortFunc(out, func(a, b store.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// deleteBatch is the most keys one DeleteObjects request takes.
const deleteBatch = 1000

// Delete removes objects in batches; missing keys are not an error.
func (s *Store) Delete(ctx context.Context, keys ...string) (err error) {
	defer s.observe("delete", time.Now(), &err)
	for chunk := range slices.Chunk(keys, deleteBatch) {
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, key := range chunk {
			k, err := s.key(key)
			if err != nil {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			ids[i] = types.ObjectIdentifier{Key: k}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.cfg.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete %d objects: %w", len(chunk), err)
		}
		var errs []error
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, fmt.Errorf("delete %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// CreateUpload starts a multipart upload.
func (s *Store) CreateUpload(ctx context.Context, key string) (_ string, err error) {
	defer s.observe("create_upload", time.Now(), &err)
	k, err := s.key(key)
	if err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.cfg.Bucket), Key: k})
	if err != nil {
		return "", fmt.Errorf("create upload %s: %w", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart uploads one part.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, partNum int, r io.Reader, size int64) (_ string, err error) {
	defer s.observe("upload_part", time.Now(), &err)
	k, err := s.key(key)
	if err != nil {
		return "", fmt.Errorf("upload part %d of %s: %w", partNum, key, err)
	}
	if partNum < 1 || partNum > 10000 {
		return "", fmt.Errorf("upload part %d of %s: part number outside 1..10000", partNum, key)
	}
	body, err := seekable(r, size)
	if err != nil {
		return "", fmt.Errorf("upload part %d of %s: %w", partNum, key, err)
	}
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(s.cfg.Bucket), Key: k, UploadId: aws.String(uploadID),
		PartNumber: aws.Int32(int32(partNum)), Body: body, ContentLength: aws.Int64(size),
	})
	if err != nil {
		if isNoSuchUpload(err) {
			err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		return "", fmt.Errorf("upload part %d of %s: %w", partNum, key, err)
	}
	return aws.ToString(out.ETag), nil
}

// CompleteUpload completes an upload with If-None-Match: *, so it never
// replaces an object.
func (s *Store) CompleteUpload(ctx context.Context, key, uploadID string, parts []store.Part) (err error) {
	defer s.observe("complete_upload", time.Now(), &err)
	if err := s.completeUpload(ctx, key, uploadID, parts); err != nil {
		return fmt.Errorf("complete upload of %s: %w", key, err)
	}
	return nil
}

func (s *Store) completeUpload(ctx context.Context, key, uploadID string, parts []store.Part) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return errors.New("no parts")
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Num - b.Num })
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Num)), ETag: aws.String(p.ETag)}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: k, UploadId: aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		IfNoneMatch:     aws.String("*"),
	})
	switch {
	case err == nil:
		return nil
	case isNoSuchUpload(err):
		// Completed earlier (perhaps by an attempt whose response was lost),
		// or never created: the object tells which.
		ok, herr := s.exists(ctx, k)
		if herr != nil {
			return herr
		}
		if ok {
			return nil
		}
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case isPreconditionFailed(err):
		// An object is at key. If the upload is gone, it is this upload's
		// object (a retried request after a lost response); otherwise
		// another writer created the key first.
		_, lerr := s.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket: aws.String(s.cfg.Bucket), Key: k, UploadId: aws.String(uploadID), MaxParts: aws.Int32(1),
		})
		if isNoSuchUpload(lerr) {
			return nil
		}
		if lerr != nil {
			return lerr
		}
		return store.ErrExists
	default:
		return err
	}
}

// AbortUpload aborts an upload; an unknown upload is not an error.
func (s *Store) AbortUpload(ctx context.Context, key, uploadID string) (err error) {
	defer s.observe("abort_upload", time.Now(), &err)
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	_, err = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: k, UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) && !isNotFound(err) {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	return nil
}

// ListUploads returns the open uploads under prefix, following every page.
func (s *Store) ListUploads(ctx context.Context, prefix string) (_ []store.UploadInfo, err error) {
	defer s.observe("list_uploads", time.Now(), &err)
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.prefix + prefix)}
	var out []store.UploadInfo
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list uploads %s: %w", prefix, err)
		}
		for _, u := range page.Uploads {
			out = append(out, store.UploadInfo{
				Key:       strings.TrimPrefix(aws.ToString(u.Key), s.prefix),
				UploadID:  aws.ToString(u.UploadId),
				Initiated: aws.ToTime(u.Initiated),
			})
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
	slices.SortFunc(out, func(a, b store.UploadInfo) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.Initiated.Compare(b.Initiated)
	})
	return out, nil
}

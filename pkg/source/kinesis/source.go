package kinesis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/awsconf"
	"github.com/streamd/streamd/pkg/source"
)

// api is the part of the Kinesis client the source uses.
type api interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

type shardState uint8

const (
	shardWaiting  shardState = iota // known, a parent is still being read
	shardAssigned                   // handed to the runtime
	shardFinished                   // read to its end
)

type shardInfo struct {
	parents []string
	state   shardState
}

// Source is a source.Source and source.Dynamic over the shards of one
// Kinesis stream.
type Source struct {
	cfg    Config
	client api
	logger *zap.Logger
	m      *metrics
	stream string
	where  string // endpoint description for errors
	mu     sync.Mutex
	shards map[string]*shardInfo
	wake   chan struct{}
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Dynamic = (*Source)(nil)
)

// New validates cfg, loads the AWS configuration (credential chain, region,
// endpoint) and builds the source. It makes no call to Kinesis; Check does.
// A nil logger discards logs; a nil reg registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new kinesis source: %w", err)
	}
	cfg = cfg.withDefaults()
	awsCfg, err := awsconf.Load(context.Background(), cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("new kinesis source: %w", err)
	}
	return newSource(cfg, kinesis.NewFromConfig(awsCfg), awsCfg.Region, logger, reg), nil
}

func newSource(cfg Config, client api, region string, logger *zap.Logger, reg prometheus.Registerer) *Source {
	if logger == nil {
		logger = zap.NewNop()
	}
	where := "the AWS endpoint of region " + region
	if cfg.Endpoint != "" {
		where = cfg.Endpoint
	}
	return &Source{
		cfg:    cfg,
		client: client,
		logger: logger.With(zap.String("stream", cfg.streamName())),
		m:      newMetrics(reg),
		stream: cfg.streamName(),
		where:  where,
		shards: make(map[string]*shardInfo),
		wake:   make(chan struct{}, 1),
	}
}

// Check verifies that the stream exists and can be described with the
// configured credentials, returning one error that names what is wrong.
func (s *Source) Check(ctx context.Context) error {
	in := &kinesis.DescribeStreamSummaryInput{}
	if s.cfg.StreamARN != "" {
		in.StreamARN = aws.String(s.cfg.StreamARN)
	} else {
		in.StreamName = aws.String(s.cfg.Stream)
	}
	_, err := s.client.DescribeStreamSummary(ctx, in)
	if err != nil {
		return describeError(s.stream, s.where, err)
	}
	return nil
}

// describeError turns a failed call into an error that says whether the
// stream, the endpoint or the credentials are at fault.
func describeError(stream, where string, err error) error {
	var (
		notFound *types.ResourceNotFoundException
		apiErr   smithy.APIError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("check kinesis stream %q at %s: stream not found: %w", stream, where, err)
	case errors.As(err, &apiErr) && credentialCodes[apiErr.ErrorCode()]:
		return fmt.Errorf("check kinesis stream %q at %s: credentials rejected (%s): %w", stream, where, apiErr.ErrorCode(), err)
	case errors.As(err, &apiErr):
		return fmt.Errorf("check kinesis stream %q at %s: %w", stream, where, err)
	case errors.As(err, &netErr):
		return fmt.Errorf("check kinesis stream %q: endpoint %s unreachable: %w", stream, where, err)
	default:
		// Credential chain failures surface before any request is sent.
		return fmt.Errorf("check kinesis stream %q at %s (are AWS credentials configured?): %w", stream, where, err)
	}
}

var credentialCodes = map[string]bool{
	"UnrecognizedClientException": true, "InvalidSignatureException": true,
	"ExpiredTokenException": true, "AccessDeniedException": true,
	"IncompleteSignature": true, "MissingAuthenticationToken": true,
	"InvalidClientTokenId": true, "SignatureDoesNotMatch": true,
}

// Splits lists the shards and returns those that can be read now: shards
// whose parents are all read to their end or no longer retained.
func (s *Source) Splits(ctx context.Context) ([]source.Split, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.ready(), nil
}

// Watch reports shards that become readable: children of shards read to
// their end, and shards created by resharding, found by listing the shards
// every ShardSyncInterval and whenever a reader reaches the end of a shard.
// A failed listing is logged and tried again at the next sync. Shards are
// never revoked: a closed shard ends by itself.
func (s *Source) Watch(ctx context.Context, fn func(source.Event) error) error {
	t := time.NewTicker(s.cfg.ShardSyncInterval)
	defer t.Stop()
	for {
		if err := s.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.logger.Warn("list shards; retrying at the next sync", zap.Error(err))
		}
		for _, sp := range s.ready() {
			if err := fn(source.Event{Split: sp}); err != nil {
				return fmt.Errorf("assign shard %s: %w", sp.ID, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// sync adds the shards Kinesis lists that the source does not know yet.
func (s *Source) sync(ctx context.Context) error {
	in := &kinesis.ListShardsInput{}
	if s.cfg.StreamARN != "" {
		in.StreamARN = aws.String(s.cfg.StreamARN)
	} else {
		in.StreamName = aws.String(s.cfg.Stream)
	}
	var listed []types.Shard
	for {
		out, err := s.client.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("list shards of kinesis stream %q: %w", s.stream, err)
		}
		listed = append(listed, out.Shards...)
		if out.NextToken == nil {
			break
		}
		// A paged request names the stream only through the token.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range listed {
		id := aws.ToString(sh.ShardId)
		if _, ok := s.shards[id]; ok {
			continue
		}
		info := &shardInfo{}
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil && *p != "" {
				info.parents = append(info.parents, *p)
			}
		}
		s.shards[id] = info
	}
	return nil
}

// ready marks the waiting shards whose parents are finished or unknown
// (expired from the stream) as assigned, and returns them in shard order.
func (s *Source) ready() []source.Split {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []source.Split
	for id, info := range s.shards {
		if info.state != shardWaiting || !s.parentsDoneLocked(info) {
			continue
		}
		info.state = shardAssigned
		out = append(out, source.Split{ID: id, Parents: append([]string(nil), info.parents...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Source) parentsDoneLocked(info *shardInfo) bool {
	for _, p := range info.parents {
		if pi, ok := s.shards[p]; ok && pi.state != shardFinished {
			return false
		}
	}
	return true
}

// hasKnownParent tells whether the shard descends from a shard this source
// knows, so it is only opened after reading that parent to its end.
func (s *Source) hasKnownParent(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.shards[id]
	if !ok {
		return false
	}
	for _, p := range info.parents {
		if _, ok := s.shards[p]; ok {
			return true
		}
	}
	return false
}

// finished records that a shard was read to its end and wakes Watch, which
// lists the shards again and assigns the children that became readable.
func (s *Source) finished(id string) {
	s.mu.Lock()
	info, ok := s.shards[id]
	if !ok {
		info = &shardInfo{}
		s.shards[id] = info
	}
	info.state = shardFinished
	s.mu.Unlock()
	s.m.behind.DeleteLabelValues(s.stream, id)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close implements source.Source; readers hold nothing the source must
// release.
func (s *Source) Close(context.Context) error { return nil }

// SplitsFinished marks shards a restored checkpoint records as read to
// their end, so they are not read again and their children can start.
func (s *Source) SplitsFinished(ids []string) {
	for _, id := range ids {
		s.finished(id)
	}
}

var _ source.FinishedNotifier = (*Source)(nil)

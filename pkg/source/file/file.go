package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamd/streamd/internal/promreg"
	"github.com/streamd/streamd/internal/sleep"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/source"
)

// StdinSplit is the ID of the split that reads standard input.
const StdinSplit = "stdin"

// MaxLine is the longest line delivered whole; see the package doc.
const MaxLine = 16 << 20

const (
	defaultPollInterval = 200 * time.Millisecond
	initialBuffer       = 64 << 10
)

// Config configures a file source.
type Config struct {
	// Paths are files or glob patterns; each matching file is a split.
	Paths []string
	// Follow keeps reading as files grow, like tail -F.
	Follow bool
	// PollInterval is how often a followed file is checked for growth,
	// truncation and rotation; default 200ms.
	PollInterval time.Duration
	// Stdin adds the split "stdin", which reads standard input to its end.
	Stdin bool
	// StdinReader replaces os.Stdin as the input of the stdin split.
	StdinReader io.Reader
	// EmptyLines delivers blank lines as messages (empty, or a lone CR)
	// instead of skipping them, so the decoder can count them.
	EmptyLines bool
}

// Source is a source.Source of JSON lines from files.
type Source struct {
	cfg         Config
	logger      *zap.Logger
	truncations prometheus.Counter
	rotations   prometheus.Counter
}

var _ source.Source = (*Source)(nil)

// New validates cfg and builds a file source. A nil logger discards logs; a
// nil reg registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Source, error) {
	if len(cfg.Paths) == 0 && !cfg.Stdin {
		return nil, errors.New("new file source: no paths and stdin not enabled")
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("new file source: pollInterval %s must be >= 0", cfg.PollInterval)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = defaultPollInterval
	}
	for _, p := range cfg.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("new file source: path %q: %w", p, err)
		}
	}
	if cfg.StdinReader == nil {
		cfg.StdinReader = os.Stdin
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	f := promreg.With(reg)
	return &Source{
		cfg:    cfg,
		logger: logger,
		truncations: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_file_source_truncations_total",
			Help: "Followed files that shrank below the read position and were re-read from the start.",
		}),
		rotations: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_file_source_rotations_total",
			Help: "Followed paths that were replaced by a new file.",
		}),
	}, nil
}

// Splits expands the configured paths: patterns with glob characters become
// the files they match (an error if none), plain paths are kept as written.
func (s *Source) Splits(context.Context) ([]source.Split, error) {
	var splits []source.Split
	seen := make(map[string]bool)
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			splits = append(splits, source.Split{ID: id})
		}
	}
	for _, p := range s.cfg.Paths {
		if !strings.ContainsAny(p, `*?[\`) {
			add(p)
			continue
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("split files: pattern %q: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("split files: pattern %q matches no file", p)
		}
		for _, m := range matches {
			add(m)
		}
	}
	if s.cfg.Stdin {
		add(StdinSplit)
	}
	return splits, nil
}

// Open returns a reader of one file (or stdin) positioned at start.Offset,
// which must be the start of a line.
func (s *Source) Open(_ context.Context, split source.Split, start *source.Position) (source.Reader, error) {
	r := &Reader{src: s, path: split.ID, follow: s.cfg.Follow, maxLine: MaxLine, bufSize: initialBuffer}
	if split.ID == StdinSplit && s.cfg.Stdin {
		if start != nil && start.Offset > 0 {
			// Standard input cannot be read again: a restored pipeline
			// reads what arrives now (at-most-once, see docs/delivery.md).
			s.logger.Warn("stdin cannot be read again from the restored position; reading new input",
				zap.Int64("offset", start.Offset))
		}
		r.stream = s.cfg.StdinReader
		r.follow = false
		return r, nil
	}
	var offset int64
	if start != nil {
		if start.Offset < 0 {
			return nil, fmt.Errorf("open file %s: negative offset %d", split.ID, start.Offset)
		}
		offset = start.Offset
	}
	f, err := os.Open(split.ID)
	if err != nil {
		if r.follow && errors.Is(err, fs.ErrNotExist) {
			s.logger.Info("followed file does not exist yet, waiting for it", zap.String("path", split.ID))
			return r, nil
		}
		return nil, fmt.Errorf("open file: %w", err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("open file %s: seek to %d: %w", split.ID, offset, err)
		}
	}
	r.f, r.pos = f, offset
	return r, nil
}

// Close implements source.Source; readers own their files.
func (s *Source) Close(context.Context) error { return nil }

// Reader reads the lines of one file or of stdin. It is used by one goroutine.
//
// The buffer holds file bytes [pos, pos+w-r) at buf[r:w].
type Reader struct {
	src     *Source
	path    string
	follow  bool
	maxLine int
	bufSize int

	stream io.Reader // stdin; nil for files
	f      *os.File  // nil while a followed file does not exist
	// pump reads stream on its own goroutine, so that a Read waiting for
	// stdin still returns when its context ends (a tick, a SIGTERM):
	// reading stdin itself cannot be interrupted.
	pump      chan streamChunk
	quit      chan struct{}
	pending   []byte
	streamErr error

	buf      []byte
	r, w     int
	pos      int64
	skipping bool // discarding the rest of an over-long line
	rotated  bool // the path names another file; draining the old one
	done     bool
	timer    sleep.Timer
}

var _ source.Reader = (*Reader)(nil)

// Position returns the position of the next line Read will return, the
// position to store in a checkpoint.
func (r *Reader) Position() source.Position { return source.Position{Offset: r.pos} }

// Read appends up to max lines to b. In follow mode it waits for a complete
// line; otherwise it returns source.ErrEndOfSplit at end of input. Message
// values point into the reader's buffer and are valid until the next Read.
// Waiting for stdin ends with ctx like any other wait.
func (r *Reader) Read(ctx context.Context, b *source.Batch, max int) error {
	if r.done {
		return source.ErrEndOfSplit
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if max <= 0 {
		return nil
	}
	if r.buf == nil {
		r.buf = make([]byte, min(r.bufSize, r.maxLine+1))
	}
	// Messages from the previous call are dead now: reclaim their space.
	r.compact()
	got := 0
	for {
		got += r.scan(b, max-got)
		if got == max {
			return nil
		}
		if got == 0 {
			r.compact()
		}
		if r.w == len(r.buf) {
			if got > 0 {
				return nil
			}
			// The whole buffer is one unfinished line. The buffer stops
			// growing at maxLine+1 bytes: a full buffer of that size without
			// a newline proves the line is over-long.
			if len(r.buf) <= r.maxLine {
				grown := make([]byte, min(2*len(r.buf), r.maxLine+1))
				copy(grown, r.buf[:r.w])
				r.buf = grown
			} else {
				r.src.logger.Warn("line too long, delivering its start and skipping the rest",
					zap.String("path", r.path), zap.Int64("offset", r.pos), zap.Int("maxLine", r.maxLine))
				// Delivered even if it looks blank: it is the start of a long line.
				end := r.r + r.maxLine
				b.Messages = append(b.Messages, source.Message{Value: r.buf[r.r:end:end], Position: source.Position{Offset: r.pos}})
				r.advance(r.maxLine)
				r.skipping = true
				return nil
			}
		}
		if got > 0 && r.stream != nil {
			// Another read could block; hand over what there is.
			return nil
		}
		n, err := r.fill(ctx)
		if n > 0 {
			continue
		}
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read file %s: %w", r.path, err)
		}
		if got > 0 {
			return nil
		}
		if !r.follow {
			if r.r < r.w && !r.skipping {
				r.deliver(b, r.buf[r.r:r.w:r.w])
			}
			r.done = true
			return source.ErrEndOfSplit
		}
		delivered, changed, err := r.checkFile(b)
		if err != nil {
			return err
		}
		got += delivered
		if got == max || got > 0 && !changed {
			return nil
		}
		if changed {
			continue
		}
		if err := r.wait(ctx); err != nil {
			return err
		}
	}
}

// scan delivers up to max complete lines from the buffer.
func (r *Reader) scan(b *source.Batch, max int) int {
	got := 0
	for got < max && r.r < r.w {
		i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if i < 0 {
			if r.skipping {
				r.pos += int64(r.w - r.r)
				r.r = r.w
			}
			break
		}
		line := r.buf[r.r : r.r+i : r.r+i]
		skip := r.skipping
		r.skipping = false
		if skip || isBlank(line) && !r.src.cfg.EmptyLines {
			r.advance(i + 1)
			continue
		}
		b.Messages = append(b.Messages, source.Message{Value: line, Position: source.Position{Offset: r.pos}})
		r.advance(i + 1)
		got++
	}
	return got
}

// deliver hands out the unterminated bytes line and consumes them.
func (r *Reader) deliver(b *source.Batch, line []byte) {
	if !isBlank(line) || r.src.cfg.EmptyLines {
		b.Messages = append(b.Messages, source.Message{Value: line, Position: source.Position{Offset: r.pos}})
	}
	r.advance(len(line))
}

func (r *Reader) advance(n int) {
	r.r += n
	r.pos += int64(n)
}

func (r *Reader) compact() {
	if r.r == 0 {
		return
	}
	r.w = copy(r.buf, r.buf[r.r:r.w])
	r.r = 0
}

func (r *Reader) fill(ctx context.Context) (int, error) {
	var n int
	var err error
	switch {
	case r.stream != nil:
		return r.fillStream(ctx)
	case r.f != nil:
		n, err = r.f.Read(r.buf[r.w:])
	default:
		return 0, io.EOF
	}
	r.w += n
	return n, err
}

// streamChunk is what the pump read: data, or the error that ended it.
type streamChunk struct {
	data []byte
	err  error
}

// fillStream fills the buffer from the pump, waiting at most until ctx ends.
func (r *Reader) fillStream(ctx context.Context) (int, error) {
	if len(r.pending) == 0 && r.streamErr == nil {
		if r.pump == nil {
			r.pump, r.quit = make(chan streamChunk, 1), make(chan struct{})
			go pumpStream(r.stream, r.pump, r.quit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case c := <-r.pump:
			r.pending, r.streamErr = c.data, c.err
		}
	}
	n := copy(r.buf[r.w:], r.pending)
	r.pending = r.pending[n:]
	r.w += n
	if n == 0 && r.streamErr != nil {
		return 0, r.streamErr
	}
	return n, nil
}

// pumpStream reads in until it fails (io.EOF at the end) and hands over
// what it reads, one chunk ahead at most; it stops at the next chunk once
// quit is closed.
func pumpStream(in io.Reader, out chan<- streamChunk, quit <-chan struct{}) {
	buf := make([]byte, 64<<10)
	for {
		n, err := in.Read(buf)
		c := streamChunk{data: bytes.Clone(buf[:n])}
		if n == 0 {
			c.data = nil
		}
		if err != nil {
			c.err = err
		}
		if n == 0 && err == nil {
			continue
		}
		select {
		case out <- c:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// checkFile runs at end of a followed file: it handles a file that appeared,
// shrank or was replaced, and reports whether reading should resume at once.
// A rotated file's unterminated last line is delivered into b.
func (r *Reader) checkFile(b *source.Batch) (delivered int, changed bool, err error) {
	if r.f == nil {
		changed, err = r.reopen()
		return 0, changed, err
	}
	info, err := r.f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("check file %s: %w", r.path, err)
	}
	if read := r.pos + int64(r.w-r.r); info.Size() < read {
		r.src.logger.Warn("file truncated, reading it again from the start",
			zap.String("path", r.path), zap.Int64("size", info.Size()), zap.Int64("offset", read))
		r.src.truncations.Inc()
		if _, err := r.f.Seek(0, io.SeekStart); err != nil {
			return 0, false, fmt.Errorf("check file %s: seek to start: %w", r.path, err)
		}
		r.r, r.w, r.pos, r.skipping = 0, 0, 0, false
		return 0, true, nil
	}
	current, err := os.Stat(r.path)
	if err != nil || os.SameFile(info, current) {
		// Unchanged, or moved away with no successor yet: keep the old file.
		return 0, false, nil
	}
	if !r.rotated {
		// Read the old file once more: the writer may have added to it
		// between our end of file and the rename.
		r.rotated = true
		return 0, true, nil
	}
	if r.r < r.w && !r.skipping {
		before := len(b.Messages)
		r.deliver(b, r.buf[r.r:r.w:r.w])
		delivered = len(b.Messages) - before
	}
	r.r = r.w
	changed, err = r.reopen()
	return delivered, changed, err
}

// reopen switches to the file the path names now, reading it from offset 0.
func (r *Reader) reopen() (bool, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reopen file: %w", err)
	}
	if r.f != nil {
		r.src.logger.Info("file rotated, reading the new file", zap.String("path", r.path))
		r.src.rotations.Inc()
		_ = r.f.Close()
	}
	r.f = f
	r.pos, r.skipping, r.rotated = 0, false, false
	return true, nil
}

func (r *Reader) wait(ctx context.Context) error {
	return r.timer.Sleep(ctx, r.src.cfg.PollInterval)
}

// Close closes the file. Stdin is left open.
func (r *Reader) Close() error {
	r.timer.Stop()
	if r.quit != nil {
		close(r.quit)
		r.quit = nil
	}
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		if err != nil {
			return fmt.Errorf("close file: %w", err)
		}
	}
	return nil
}

// isBlank reports an empty line, or one holding only the CR of a CRLF ending.
func isBlank(line []byte) bool {
	return len(line) == 0 || len(line) == 1 && line[0] == '\r'
}

package pqfile

import (
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
)

// zstdWindow is the encoders' window. A data page is compressed on its
// own (one zstd frame per page), so a window beyond the page size finds
// no further matches; it only sizes each encoder's history buffer
// (about twice the window), allocated once per encoder.
const zstdWindow = DefaultPageSize

// ZstdCodec is the zstd page codec of the Parquet writers: parquet-go's
// codec with encoders that are kept, not pooled. parquet-go keeps its
// encoders in a pool the collector empties, and each new encoder
// allocates a history buffer of twice the 8 MiB default window: a busy
// writer rebuilt encoders after every collection. Here at most a few
// encoders per core are kept for the life of the process, each with a
// window of the page size. Decoding is parquet-go's.
type ZstdCodec struct {
	pqzstd.Codec

	mu   sync.Mutex
	free []*zstd.Encoder
}

// sharedZstd is the codec every writer uses unless told otherwise.
var sharedZstd = &ZstdCodec{}

// Zstd returns the shared zstd codec at the default level.
func Zstd() *ZstdCodec { return sharedZstd }

// Encode compresses src into dst as one zstd frame.
func (c *ZstdCodec) Encode(dst, src []byte) ([]byte, error) {
	c.mu.Lock()
	var e *zstd.Encoder
	if n := len(c.free); n > 0 {
		e = c.free[n-1]
		c.free = c.free[:n-1]
	}
	c.mu.Unlock()
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return dst[:0], err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	c.mu.Lock()
	if len(c.free) < 2*runtime.GOMAXPROCS(0) {
		c.free = append(c.free, e)
	}
	c.mu.Unlock()
	return out, nil
}

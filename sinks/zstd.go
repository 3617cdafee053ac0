package sinks

import (
	"sync"

	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// reusedZstd is Arrow's zstd codec with one encoder kept per level. Arrow
// Go v17's EncodeLevel builds a new encoder, with fresh history buffers, for
// every Parquet page: that was ~85% of the bytes the Parquet writer
// allocated. Decoding and framing are unchanged (same library, same
// options), so files are what v17 writes.
type reusedZstd struct {
	compress.Codec
	mu   sync.Mutex
	encs map[int]*zstd.Encoder
}

func (z *reusedZstd) EncodeLevel(dst, src []byte, level int) []byte {
	z.mu.Lock()
	enc := z.encs[level]
	if enc == nil {
		l := zstd.EncoderLevelFromZstd(level)
		if level == compress.DefaultCompressionLevel {
			l = zstd.SpeedDefault
		}
		var err error
		// Pages are about 1 MiB, so a 1 MiB window loses nothing, and one
		// encoder state (not one per core with a 16 MiB history each) keeps
		// memory flat however many rows a run writes.
		if enc, err = zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l),
			zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1)); err != nil {
			z.mu.Unlock()
			return z.Codec.EncodeLevel(dst, src, level)
		}
		z.encs[level] = enc
	}
	z.mu.Unlock()
	return enc.EncodeAll(src, dst[:0]) // safe for concurrent use
}

// The codec registry is global: importing sinks swaps the zstd encoder for
// every Parquet writer in the process, which is the point.
func init() {
	if orig, err := compress.GetCodec(compress.Codecs.Zstd); err == nil {
		compress.RegisterCodec(compress.Codecs.Zstd, &reusedZstd{Codec: orig, encs: map[int]*zstd.Encoder{}})
	}
}

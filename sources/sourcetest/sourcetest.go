// Package sourcetest holds sources that tests share.
package sourcetest

import (
	"context"

	"github.com/maeembed/maeembed/sources"
)

// AbortAt is a source whose run is aborted as it reads its item number
// At (counting from 0): that item is read, with its bytes taken from the
// budget if the Reader is budgeted, but the run never takes it.
type AbortAt struct {
	*sources.Reader
	At    int
	Abort context.CancelFunc
	n     int
}

// Next reads the next item, calling Abort first thing after reading item At.
func (s *AbortAt) Next(ctx context.Context) (sources.Item, error) {
	it, err := s.Reader.Next(ctx)
	if err == nil {
		if s.n == s.At {
			s.Abort()
		}
		s.n++
	}
	return it, err
}

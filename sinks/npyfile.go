package sinks

import (
	"encoding/binary"
	"fmt"
	"math"
)

// WriteNpyFloat32 writes a whole float32 C-order array as an .npy file,
// published atomically (e.g. a --mask-noise file).
func WriteNpyFloat32(path string, shape []int, data []float32) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("npy %s: shape %v needs %d values, got %d", path, shape, n, len(data))
	}
	hdr, err := npyHeader(shape, 0)
	if err != nil {
		return err
	}
	af, err := createAtomic(path)
	if err != nil {
		return err
	}
	buf := make([]byte, len(hdr)+4*len(data))
	copy(buf, hdr)
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[len(hdr)+4*i:], math.Float32bits(v))
	}
	if _, err := af.Write(buf); err != nil {
		af.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

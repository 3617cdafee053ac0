package weights

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// checkPickle walks one pickle (up to its STOP opcode) without running it
// and checks that every length it claims fits in the bytes left: gopickle
// allocates a claimed length before reading it, and a claim of 2^42 bytes
// ends the process ("fatal error: runtime: out of memory", which no recover
// catches). left is the number of bytes from r's position to the end of
// the stream; the walk consumes the pickle from r.
func checkPickle(r *bufio.Reader, left int64) error {
	pos, at := int64(0), int64(0) // at: where the current opcode starts
	need := func(n uint64, op byte) error {
		if n > uint64(left-pos) {
			return fmt.Errorf("corrupt pickle: opcode 0x%02x at byte %d claims %d bytes, %d are left", op, at, n, left-pos)
		}
		return nil
	}
	skip := func(n int64) error {
		m, err := r.Discard(int(n))
		pos += int64(m)
		if err != nil {
			return fmt.Errorf("corrupt pickle: %w", truncated(err))
		}
		return nil
	}
	fixed := func(n int) ([]byte, error) {
		b, err := r.Peek(n)
		if err != nil {
			return nil, fmt.Errorf("corrupt pickle: %w", truncated(err))
		}
		b = append([]byte(nil), b...)
		return b, skip(int64(n))
	}
	line := func() error {
		for {
			c, err := r.ReadByte()
			if err != nil {
				return fmt.Errorf("corrupt pickle: %w", truncated(err))
			}
			pos++
			if c == '\n' {
				return nil
			}
		}
	}
	for {
		op, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("corrupt pickle: %w", truncated(err))
		}
		at = pos
		pos++
		switch op {
		case '.': // STOP
			return nil
		case '(', '0', '1', '2', 'N', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u', 'Q',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			// no argument
		case 'K', 'q', 'h', 0x80, 0x82: // 1-byte argument
			err = skip(1)
		case 'M', 0x83: // 2 bytes
			err = skip(2)
		case 'J', 'r', 'j', 0x84: // 4 bytes
			err = skip(4)
		case 'G': // BINFLOAT
			err = skip(8)
		case 'I', 'L', 'S', 'V', 'F', 'p', 'g', 'P': // one line
			err = line()
		case 'c', 'i': // GLOBAL, INST: two lines
			if err = line(); err == nil {
				err = line()
			}
		case 'U', 'C', 0x8c, 0x8a: // 1-byte length, then data
			var b []byte
			if b, err = fixed(1); err == nil {
				err = skip(int64(b[0]))
			}
		case 'T', 'B', 'X', 0x8b: // 4-byte length, then data
			var b []byte
			if b, err = fixed(4); err == nil {
				n := uint64(binary.LittleEndian.Uint32(b))
				if op == 0x8b || op == 'T' {
					n = uint64(int32(binary.LittleEndian.Uint32(b))) // signed in Python
				}
				if err = need(n, op); err == nil {
					err = skip(int64(n))
				}
			}
		case 0x8d, 0x8e, 0x96, 0x95: // 8-byte length, then data (FRAME: the opcodes that follow)
			var b []byte
			if b, err = fixed(8); err == nil {
				n := binary.LittleEndian.Uint64(b)
				if err = need(n, op); err == nil && op != 0x95 {
					err = skip(int64(n))
				}
			}
		default:
			return fmt.Errorf("corrupt pickle: unknown opcode 0x%02x at byte %d", op, pos-1)
		}
		if err != nil {
			return err
		}
	}
}

// maxPickle bounds the size of a zip checkpoint's data.pkl, which is read
// into memory to be checked before it is unpickled (a ViT-H state dict's
// pickle is well under 1 MB).
const maxPickle = 256 << 20

// readPickle reads a whole pickle record, refusing one beyond maxPickle.
func readPickle(rc io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rc, maxPickle+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPickle {
		return nil, errors.New("pickle larger than 256 MiB: not a state dict")
	}
	return b, nil
}

package stages

import (
	"bytes"
	"encoding/binary"
)

// A JPEG whose file stops where its EOI marker (FF D9) should be, or
// after that marker's FF, is refused by image/jpeg ("unexpected EOF").
// PIL decodes some of them and not others, by how libjpeg reads: PIL feeds
// libjpeg(-turbo) a suspending source, 64 KiB at a time, and the image
// decodes when every 8×8 block has been read before libjpeg asked for a
// byte past the end of the file (after that, PIL ignores that the end
// marker never came); a request past the end makes PIL refuse the file as
// truncated. libjpeg's Huffman bit reader reads ahead (up to 57 bits when
// it refills, 48 at a time in its fast path), so whether it does depends
// on where its last refills fall: measured with PIL 9.4 on libjpeg-turbo
// 2.1, one of the six photos of examples/photos decodes without its EOI,
// the other five are refused, and a progressive JPEG (or any whose first
// scan does not hold every component) never decodes, as libjpeg reads all
// its scans up to EOI before the first row. jpegMissingEOI replays that
// reading to decode exactly the files PIL decodes.

// jpegMissingEOI returns the bytes that complete data's EOI marker (FF D9,
// or D9 after a last FF) when data is a JPEG that PIL (libjpeg-turbo 2.1 on
// a 64-bit machine) decodes without it: libjpeg reads every block of its
// first and only scan without asking for a byte past the end of the file,
// and what follows is what libjpeg accepts before EOI (jpegAfterScan).
// ok is false for every other file (one that ends with its EOI, a
// progressive JPEG, a file cut inside its image data, one this reading does
// not follow), which is refused as it is. The pixels then decoded are those
// of the complete file: libjpeg read all the data they are made of.
func jpegMissingEOI(data []byte) (tail []byte, ok bool) {
	if bytes.HasSuffix(data, []byte{0xff, 0xd9}) {
		return nil, false
	}
	s, ok := parseJPEGScan(data)
	if !ok {
		return nil, false
	}
	end, marker, ok := s.libjpegReadsAll()
	if !ok {
		return nil, false
	}
	return jpegAfterScan(data, end, marker)
}

// jpegAfterScan replays jpeg_finish_decompress (jdmarker.c's read_markers
// after the last MCU) on data[pos:], where libjpeg's entropy decoder
// stopped, marker being the marker it already read there (0 for none). It
// returns the bytes that complete the EOI marker when libjpeg reads to the
// end of the file without an error, and image/jpeg reads data and tail to
// the same pixels: stray bytes (between markers, or an FF 00), RSTn, COM
// and APPn segments. ok is false for a marker libjpeg refuses there (a
// second SOS of this single-scan file is JERR_EOI_EXPECTED, a SOFn
// JERR_SOF_DUPLICATE or JERR_SOF_UNSUPPORTED, SOI, reserved markers) and
// for an EOI (the file has one, and something else is wrong). It is also
// false, where PIL may decode, for what the two decoders read differently
// or this reading does not follow: tables (DHT, DQT, DRI, DAC), DNL, TEM,
// a segment shorter than its length field or running past the end of the
// file, FF FF 00, an APP0 of 5 bytes or more (image/jpeg reads its JFIF
// flag) or an APP14 of 12 or more (its Adobe transform), both of which
// change how image/jpeg converts colours; and anything past the 64 KiB
// piece libjpeg stops in (PIL never hands it over), where all this is
// refused just the same.
func jpegAfterScan(data []byte, pos int, marker byte) (tail []byte, ok bool) {
	for {
		if marker == 0 { // next_marker: skip to an FF, past fill bytes
			for pos < len(data) && data[pos] != 0xff {
				pos++
			}
			if pos == len(data) {
				return []byte{0xff, 0xd9}, true
			}
			j := pos + 1
			for j < len(data) && data[j] == 0xff {
				j++
			}
			if j == len(data) { // the EOI cut after its first byte, or fill bytes
				return []byte{0xd9}, true
			}
			if data[j] == 0 {
				if j > pos+1 {
					return nil, false // image/jpeg reads FF FF 00 as marker 00
				}
				pos = j + 1
				continue
			}
			marker, pos = data[j], j+1
		}
		switch {
		case marker >= 0xd0 && marker <= 0xd7: // RSTn: no length
		case marker >= 0xe0 && marker <= 0xef || marker == 0xfe: // skip_variable
			if pos+2 > len(data) {
				return nil, false
			}
			n := int(binary.BigEndian.Uint16(data[pos:]))
			if n < 2 || pos+n > len(data) || marker == 0xe0 && n-2 >= 5 || marker == 0xee && n-2 >= 12 {
				return nil, false
			}
			pos += n
		default:
			return nil, false
		}
		marker = 0
	}
}

// ljTable is a Huffman table as libjpeg derives it (jdhuff.c,
// jpeg_make_d_derived_tbl): an 8-bit lookahead table (code length << 8 |
// symbol, or 9 << 8 for longer codes) and, for longer codes, the largest
// code of each length and the offset of its symbols.
type ljTable struct {
	lookup    [256]int
	maxcode   [18]int32
	valoffset [17]int32
	huffval   []byte
}

// newLJTable derives a table from a DHT's 16 counts and its symbols; ok is
// false for a table libjpeg refuses (too many codes, or a DC symbol above
// 15).
func newLJTable(counts []byte, vals []byte, dc bool) (*ljTable, bool) {
	t := &ljTable{huffval: make([]byte, 256)}
	copy(t.huffval, vals)
	var size [257]int
	var code [257]int32
	p := 0
	for l := 1; l <= 16; l++ {
		for i := 0; i < int(counts[l-1]); i++ {
			size[p] = l
			p++
		}
	}
	n := p
	c, si := int32(0), 1
	p = 0
	for size[p] != 0 {
		for size[p] == si {
			code[p] = c
			c++
			p++
		}
		if c >= 1<<si {
			return nil, false
		}
		c <<= 1
		si++
	}
	p = 0
	for l := 1; l <= 16; l++ {
		if counts[l-1] != 0 {
			t.valoffset[l] = int32(p) - code[p]
			p += int(counts[l-1])
			t.maxcode[l] = code[p-1]
		} else {
			t.maxcode[l] = -1
		}
	}
	t.valoffset[0], t.maxcode[17] = 0, 0xFFFFF
	for i := range t.lookup {
		t.lookup[i] = 9 << 8
	}
	p = 0
	for l := 1; l <= 8; l++ {
		for i := 0; i < int(counts[l-1]); i, p = i+1, p+1 {
			look := int(code[p]) << (8 - l)
			for k := 0; k < 1<<(8-l); k++ {
				t.lookup[look+k] = l<<8 | int(vals[p])
			}
		}
	}
	if dc {
		for _, v := range vals[:n] {
			if v > 15 {
				return nil, false
			}
		}
	}
	return t, true
}

// jpegScan is what libjpeg's reading of a JPEG's first scan depends on.
type jpegScan struct {
	data    []byte
	start   int        // offset of the scan's entropy-coded data
	dc, ac  []*ljTable // per block of an MCU, its tables
	mcus    int        // MCUs in the scan
	restart int        // restart interval in MCUs, 0 for none
}

// parseJPEGScan walks the markers to the first scan. ok is false unless the
// image is a sequential Huffman JPEG (SOF0, SOF1) with 8-bit samples whose
// first scan holds all its components, with every table it uses.
func parseJPEGScan(data []byte) (s jpegScan, ok bool) {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return s, false
	}
	var dcT, acT [4]*ljTable
	type comp struct{ id, h, v int }
	var comps []comp
	var width, height int
	i := 2
	for {
		// Fill bytes may precede a marker.
		for i+1 < len(data) && data[i] == 0xff && data[i+1] == 0xff {
			i++
		}
		if i+4 > len(data) || data[i] != 0xff {
			return s, false
		}
		m := data[i+1]
		if m == 0x01 || m >= 0xd0 && m <= 0xd7 { // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return s, false
		}
		seg := data[i+4 : i+2+n]
		switch {
		case m == 0xc0 || m == 0xc1:
			if comps != nil || len(seg) < 6 || seg[0] != 8 || seg[5] == 0 || seg[5] > 4 || len(seg) < 6+3*int(seg[5]) {
				return s, false
			}
			height, width = int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:]))
			if height == 0 || width == 0 {
				return s, false // DNL: not followed
			}
			for k := 0; k < int(seg[5]); k++ {
				c := seg[6+3*k:]
				h, v := int(c[1]>>4), int(c[1]&15)
				if h < 1 || h > 4 || v < 1 || v > 4 {
					return s, false
				}
				comps = append(comps, comp{int(c[0]), h, v})
			}
		case m >= 0xc2 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc:
			return s, false // progressive, lossless, hierarchical, arithmetic
		case m == 0xc4:
			for len(seg) > 0 {
				if len(seg) < 17 {
					return s, false
				}
				class, id := seg[0]>>4, seg[0]&15
				total := 0
				for _, c := range seg[1:17] {
					total += int(c)
				}
				if class > 1 || id > 3 || total > 256 || len(seg) < 17+total {
					return s, false
				}
				t, ok := newLJTable(seg[1:17], seg[17:17+total], class == 0)
				if !ok {
					return s, false
				}
				if class == 0 {
					dcT[id] = t
				} else {
					acT[id] = t
				}
				seg = seg[17+total:]
			}
		case m == 0xdd:
			if len(seg) < 2 {
				return s, false
			}
			s.restart = int(binary.BigEndian.Uint16(seg))
		case m == 0xda:
			// A first scan without every component makes libjpeg read
			// all scans, up to EOI, before the first row.
			if comps == nil || len(seg) < 1+2*len(comps)+3 || int(seg[0]) != len(comps) {
				return s, false
			}
			hmax, vmax := 0, 0
			for _, c := range comps {
				hmax, vmax = max(hmax, c.h), max(vmax, c.v)
			}
			for k, c := range comps {
				id, td, ta := int(seg[1+2*k]), int(seg[2+2*k]>>4), int(seg[2+2*k]&15)
				if id != c.id || td > 3 || ta > 3 || dcT[td] == nil || acT[ta] == nil {
					return s, false
				}
				n := c.h * c.v
				if len(comps) == 1 {
					n = 1 // non-interleaved: one block per MCU
				}
				for b := 0; b < n; b++ {
					s.dc, s.ac = append(s.dc, dcT[td]), append(s.ac, acT[ta])
				}
			}
			if len(s.dc) > 10 {
				return s, false // libjpeg's limit on the blocks of an MCU
			}
			ceil := func(a, b int) int { return (a + b - 1) / b }
			if len(comps) == 1 {
				// libjpeg: the component's width_in_blocks × height_in_blocks.
				c := comps[0]
				s.mcus = ceil(ceil(width*c.h, hmax), 8) * ceil(ceil(height*c.v, vmax), 8)
			} else {
				s.mcus = ceil(width, 8*hmax) * ceil(height, 8*vmax)
			}
			s.data, s.start = data, i+2+n
			return s, true
		case m == 0xd9:
			return s, false
		}
		i += 2 + n
	}
}

// ljReader is libjpeg-turbo's Huffman bit reader (jdhuff.c, 64-bit bit
// buffer) over PIL's suspending source: the bytes PIL has handed over end
// at end; a read past it suspends.
type ljReader struct {
	data   []byte
	pos    int    // next byte of the source
	end    int    // end of the bytes handed over
	buf    uint64 // get_buffer
	left   int    // bits_left
	marker byte   // unread_marker
	// insufficient is libjpeg's insufficient_data: a marker came before
	// the bits a block needs (zeros are read instead).
	insufficient bool
}

// ljMinGetBits is MIN_GET_BITS for a 64-bit bit buffer: a refill reads
// bytes until it holds this many bits.
const ljMinGetBits = 64 - 7

// fill is jpeg_fill_bit_buffer; false is a suspension.
func (r *ljReader) fill(nbits int) bool {
	for r.marker == 0 && r.left < ljMinGetBits {
		if r.pos >= r.end {
			return false
		}
		c := r.data[r.pos]
		r.pos++
		if c == 0xff {
			for {
				if r.pos >= r.end {
					return false
				}
				c = r.data[r.pos]
				r.pos++
				if c != 0xff {
					break
				}
			}
			if c != 0 {
				r.marker = c // the end of the entropy-coded segment
				break
			}
			c = 0xff
		}
		r.buf = r.buf<<8 | uint64(c)
		r.left += 8
	}
	if r.marker != 0 && nbits > r.left {
		r.insufficient = true
		r.buf <<= ljMinGetBits - r.left
		r.left = ljMinGetBits
	}
	return true
}

// need is CHECK_BIT_BUFFER.
func (r *ljReader) need(n int) bool { return r.left >= n || r.fill(n) }

func (r *ljReader) bits(n int) int32 {
	r.left -= n
	return int32(r.buf>>uint(r.left)) & (1<<n - 1)
}

// huffSlow is HUFF_DECODE and jpeg_huff_decode; ok false is a suspension.
func (r *ljReader) huffSlow(t *ljTable) (sym int, ok bool) {
	if r.left < 8 && !r.fill(0) {
		return 0, false
	}
	nb := 1 // fewer than 8 bits before a marker: bit by bit
	if r.left >= 8 {
		e := t.lookup[int(r.buf>>uint(r.left-8))&0xff]
		if nb = e >> 8; nb <= 8 {
			r.left -= nb
			return e & 0xff, true
		}
	}
	if !r.need(nb) {
		return 0, false
	}
	code := r.bits(nb)
	for nb <= 16 && code > t.maxcode[nb] {
		if !r.need(1) {
			return 0, false
		}
		code = code<<1 | r.bits(1)
		nb++
	}
	if nb > 16 {
		return 0, true // libjpeg fakes a zero
	}
	return int(t.huffval[byte(code+t.valoffset[nb])]), true
}

// fillFast is FILL_BIT_BUFFER_FAST (six GET_BYTEs); ok false when it would
// read past the bytes handed over, which libjpeg's threshold for the fast
// path rules out.
func (r *ljReader) fillFast() bool {
	if r.left > 16 {
		return true
	}
	for k := 0; k < 6; k++ {
		if r.pos+1 >= r.end {
			return false
		}
		c0, c1 := r.data[r.pos], r.data[r.pos+1]
		r.pos++
		r.buf = r.buf<<8 | uint64(c0)
		r.left += 8
		if c0 == 0xff {
			r.pos++
			if c1 != 0 {
				r.marker = c1
				r.pos -= 2
				r.buf &^= 0xff
			}
		}
	}
	return true
}

// huffFast is HUFF_DECODE_FAST.
func (r *ljReader) huffFast(t *ljTable) (int, bool) {
	if !r.fillFast() {
		return 0, false
	}
	e := t.lookup[int(r.buf>>uint(r.left-8))&0xff]
	nb := e >> 8
	r.left -= nb
	if nb <= 8 {
		return e & 0xff, true
	}
	code := int32(r.buf>>uint(r.left)) & (1<<nb - 1)
	for nb <= 16 && code > t.maxcode[nb] {
		code = code<<1 | r.bits(1)
		nb++
	}
	if nb > 16 || r.left < 0 {
		return 0, r.left >= 0
	}
	return int(t.huffval[byte(code+t.valoffset[nb])]), true
}

// mcu reads one MCU's blocks (decode_mcu_slow or decode_mcu_fast); ok
// false is a suspension (slow) or a marker met (fast: libjpeg reads the
// MCU again the slow way).
func (r *ljReader) mcu(s *jpegScan, fast bool) bool {
	huff := func(t *ljTable) (int, bool) {
		if fast {
			return r.huffFast(t)
		}
		return r.huffSlow(t)
	}
	// extra ensures the n bits after a symbol (CHECK_BIT_BUFFER, or
	// FILL_BIT_BUFFER_FAST) and drops them.
	extra := func(n int) bool {
		if fast && !r.fillFast() || !fast && !r.need(n) {
			return false
		}
		r.left -= n
		return r.left >= 0
	}
	for b := range s.dc {
		v, ok := huff(s.dc[b])
		if !ok || v != 0 && !extra(v) {
			return false
		}
		for k := 1; k < 64; k++ {
			v, ok := huff(s.ac[b])
			if !ok {
				return false
			}
			run, size := v>>4, v&15
			if size == 0 {
				if run != 15 {
					break
				}
				k += 15
				continue
			}
			k += run
			if !extra(size) {
				return false
			}
		}
	}
	return !fast || r.marker == 0
}

// nextMarker is jdmarker.c's next_marker (as read_restart_marker uses it):
// past any bytes before an FF, to the marker code.
func (r *ljReader) nextMarker() bool {
	for {
		for {
			if r.pos >= r.end {
				return false
			}
			c := r.data[r.pos]
			r.pos++
			if c == 0xff {
				break
			}
		}
		var c byte = 0xff
		for c == 0xff {
			if r.pos >= r.end {
				return false
			}
			c = r.data[r.pos]
			r.pos++
		}
		if c != 0 {
			r.marker = c
			return true
		}
	}
}

// libjpegReadsAll replays how PIL's libjpeg reads the scan's MCUs from a
// file without EOI, the file handed over 64 KiB at a time (ImageFile.load's
// MAXBLOCK reads, from the start of the file): an MCU that needs bytes not
// yet handed over is read again once the next 64 KiB are. It reports
// whether every MCU was read without asking for a byte past the end of the
// file, and then the offset of the first byte libjpeg did not read and the
// marker it met reading ahead (0 for none). Data libjpeg would read as
// corrupt (a wrong restart marker, a marker in the middle of a block)
// counts as not read.
func (s *jpegScan) libjpegReadsAll() (end int, marker byte, ok bool) {
	const window = 65536
	r := ljReader{data: s.data, pos: s.start}
	r.end = min(len(s.data), (s.start+window-1)/window*window)
	// more hands over the next 64 KiB after a suspension at state from,
	// false at the end of the file: PIL refuses it as truncated.
	more := func(from ljReader) bool {
		if from.end >= len(s.data) {
			return false
		}
		r = from
		r.end = min(len(s.data), r.end+window)
		return true
	}
	toGo, nextRST := s.restart, byte(0)
	const bufSize = 64 * 8 // decode_mcu's BUFSIZE
	for m := 0; m < s.mcus; {
		if s.restart > 0 && toGo == 0 { // process_restart
			before := r
			r.left = 0
			if r.marker == 0 && !r.nextMarker() {
				if !more(before) {
					return 0, 0, false
				}
				continue
			}
			if r.marker != 0xd0+nextRST {
				return 0, 0, false // libjpeg resynchronises: corrupt data
			}
			r.marker, nextRST = 0, (nextRST+1)&7
			toGo = s.restart
			r.insufficient = false
		}
		saved := r
		// decode_mcu: the fast path without restarts, with enough
		// bytes handed over, before a marker.
		fast := s.restart == 0 && r.end-r.pos >= bufSize*len(s.dc) && r.marker == 0
		if fast && !r.mcu(s, true) {
			r, fast = saved, false
		}
		if !fast && !r.mcu(s, false) {
			if !more(saved) {
				return 0, 0, false
			}
			continue
		}
		if r.insufficient {
			return 0, 0, false // zeros read for missing bits: corrupt data
		}
		if s.restart > 0 {
			toGo--
		}
		m++
	}
	return r.pos, r.marker, true
}

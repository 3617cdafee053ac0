package weights

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// safetensors layout: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data; offsets are relative to the data section.

const maxSafetensorsHeader = 100 << 20 // the reference implementation's limit

type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

var stDTypes = map[string]dtype{"F32": dtFloat32, "F16": dtFloat16, "BF16": dtBFloat16, "F64": dtFloat64}

// readSafetensorsAs reads every tensor straight into its final float32
// slice (one read per float32 tensor, chunked conversion for the others),
// mapping Hugging Face names to official ones when mapHF.
func readSafetensorsAs(path string, mapHF bool) (map[string]*Tensor, error) {
	return readSafetensorsMode(path, mapHF, false)
}

// readSafetensorsMode is readSafetensorsAs that, with header, reads only
// the header: every check above the data (dtypes, shapes, offsets inside
// the file, so a truncated file fails; Hugging Face names, when mapHF)
// and tensors with Data nil.
func readSafetensorsMode(path string, mapHF, header bool) (map[string]*Tensor, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	hdr, dataStart, err := readSafetensorsHeader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	dataLen := st.Size() - dataStart
	type item struct {
		name string
		e    stEntry
		dt   dtype
	}
	items := make([]item, 0, len(hdr))
	// In file order (then by name), so that an error names the same tensor
	// on every run: the first one a truncated file cuts, not whichever a
	// map visits first.
	names := slices.SortedFunc(maps.Keys(hdr), func(a, b string) int {
		return cmp.Or(cmp.Compare(hdr[a].Offsets[0], hdr[b].Offsets[0]), strings.Compare(a, b))
	})
	for _, name := range names {
		e := hdr[name]
		dt, ok := stDTypes[e.DType]
		if !ok {
			return nil, fmt.Errorf("load %s: tensor %s: unsupported dtype %q (want F32, F16, BF16 or F64)", path, name, e.DType)
		}
		n, err := checkedNumel(e.Shape)
		if err != nil {
			return nil, fmt.Errorf("load %s: tensor %s: %w", path, name, err)
		}
		b, end := e.Offsets[0], e.Offsets[1]
		if b < 0 || end < b || end > dataLen {
			why := ""
			if b >= 0 && end >= b {
				why = " (file truncated? the header describes more data than the file holds)"
			}
			return nil, fmt.Errorf("load %s: tensor %s: data_offsets [%d, %d] outside the data section of %d bytes%s", path, name, b, end, dataLen, why)
		}
		// Safe from overflow: n ≤ maxElements and dt.size() ≤ 8.
		if want := int64(n) * int64(dt.size()); end-b != want {
			return nil, fmt.Errorf("load %s: tensor %s: data_offsets [%d, %d] hold %d bytes, shape %v of %s needs %d", path, name, b, end, end-b, e.Shape, e.DType, want)
		}
		items = append(items, item{name, e, dt})
	}
	// Hugging Face names are mapped here rather than after loading, so that
	// query/key/value are read straight into their fused qkv tensor. A
	// header read maps them here too, so that it refuses names as the full
	// read does, naming this file.
	var slots map[string]hfSlot
	var out map[string]*Tensor
	shapes := make(map[string][]int, len(items))
	for _, it := range items {
		shapes[it.name] = it.e.Shape
	}
	if mapHF && isHFNames(shapes) {
		if slots, out, err = planHF(shapes, !header); err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
	} else {
		out = make(map[string]*Tensor, len(items))
	}
	if header {
		if slots == nil {
			for _, it := range items {
				out[it.name] = &Tensor{Shape: append([]int{}, it.e.Shape...)}
			}
		}
		return out, nil
	}
	// File order: sequential reads.
	sort.Slice(items, func(i, j int) bool { return items[i].e.Offsets[0] < items[j].e.Offsets[0] })
	var chunk []byte
	for _, it := range items {
		n := numel(it.e.Shape)
		var data []float32
		if s, ok := slots[it.name]; ok && s.off >= 0 {
			data = s.t.Data[s.off : s.off+n]
		} else {
			data = make([]float32, n)
			if ok {
				s.t.Data = data
			} else {
				out[it.name] = &Tensor{Shape: append([]int{}, it.e.Shape...), Data: data}
			}
		}
		off := dataStart + it.e.Offsets[0]
		if it.dt == dtFloat32 {
			if _, err := f.ReadAt(float32Bytes(data), off); err != nil {
				return nil, fmt.Errorf("load %s: tensor %s: %w", path, it.name, truncated(err))
			}
			leToHostFloat32(data)
			continue
		}
		if chunk == nil {
			chunk = make([]byte, 1<<16)
		}
		if err := readConverted(f, off, data, it.dt, chunk); err != nil {
			return nil, fmt.Errorf("load %s: tensor %s: %w", path, it.name, truncated(err))
		}
	}
	return out, nil
}

// readConverted reads len(dst) elements of dtype dt at off, converting them
// through chunk.
func readConverted(r io.ReaderAt, off int64, dst []float32, dt dtype, chunk []byte) error {
	es := dt.size()
	per := len(chunk) / es
	for i := 0; i < len(dst); i += per {
		m := min(per, len(dst)-i)
		if _, err := r.ReadAt(chunk[:m*es], off+int64(i*es)); err != nil {
			return err
		}
		convertInto(dst[i:i+m], chunk[:m*es], dt)
	}
	return nil
}

func readSafetensorsHeader(f *os.File, size int64) (map[string]stEntry, int64, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, 0, fmt.Errorf("safetensors header length: %w", truncated(err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxSafetensorsHeader || int64(n) > size-8 {
		return nil, 0, fmt.Errorf("safetensors header length %d does not fit a file of %d bytes", n, size)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, 0, fmt.Errorf("safetensors header: %w", truncated(err))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return nil, 0, fmt.Errorf("safetensors header: %w", err)
	}
	out := make(map[string]stEntry, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		if err := dec.Decode(&e); err != nil {
			return nil, 0, fmt.Errorf("safetensors header: tensor %s: %w", name, err)
		}
		if e.DType == "" {
			return nil, 0, fmt.Errorf("safetensors header: tensor %s: no dtype", name)
		}
		out[name] = e
	}
	return out, 8 + int64(n), nil
}

// writeSafetensors writes float32 tensors in the given name order, as F32 or,
// with half, rounded to F16.
func writeSafetensors(w io.Writer, names []string, tensors map[string]*Tensor, metadata map[string]string, half bool) error {
	dtype, size := "F32", int64(4)
	if half {
		dtype, size = "F16", 2
	}
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return err
		}
		h.WriteString(`"__metadata__":`)
		h.Write(m)
	}
	var off int64
	for i, name := range names {
		t := tensors[name]
		if t == nil {
			return fmt.Errorf("tensor %s: missing", name)
		}
		if len(t.Data) != numel(t.Shape) {
			return fmt.Errorf("tensor %s: %d values for shape %v", name, len(t.Data), t.Shape)
		}
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		h.Write(k)
		h.WriteString(`:{"dtype":"` + dtype + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + size*int64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	// Pad with spaces so that the data section starts 8-byte aligned, as the
	// reference writer does.
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(h.Len()))
	bw.Write(lenBuf[:])
	bw.Write(h.Bytes())
	var tmp []byte
	for _, name := range names {
		d := tensors[name].Data
		if half {
			tmp = tmp[:0]
			for _, v := range d {
				tmp = binary.LittleEndian.AppendUint16(tmp, float32To16(v))
			}
			if _, err := bw.Write(tmp); err != nil {
				return err
			}
			continue
		}
		if hostLittleEndian {
			if _, err := bw.Write(float32Bytes(d)); err != nil {
				return err
			}
			continue
		}
		tmp = tmp[:0]
		for _, v := range d {
			tmp = binary.LittleEndian.AppendUint32(tmp, math.Float32bits(v))
		}
		if _, err := bw.Write(tmp); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return nil
}

// SaveSafetensors writes float32 tensors (in sorted name order) and string
// metadata (the header's "__metadata__") to a single safetensors file,
// published atomically: a "."-temporary beside path, fsynced and renamed.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	if len(tensors) == 0 {
		return fmt.Errorf("save %s: no tensors", path)
	}
	names := sortedKeys(tensors)
	err := writeFileAtomic(path, func(f *os.File) error { return writeSafetensors(f, names, tensors, metadata, false) })
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// SafetensorsMetadata returns the string metadata ("__metadata__") of a
// safetensors file; a file without it gives an empty map.
func SafetensorsMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if _, _, err := readSafetensorsHeader(f, st.Size()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.LittleEndian.Uint64(lenBuf[:]))
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, truncated(err))
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(buf, &h); err != nil {
		return nil, fmt.Errorf("%s: __metadata__: %w", path, err)
	}
	if h.Meta == nil {
		h.Meta = map[string]string{}
	}
	return h.Meta, nil
}

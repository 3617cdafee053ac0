package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pickler writes protocol-2 pickle opcodes by hand, so tests can build the
// hostile files a real torch.save never writes.
type pickler struct{ bytes.Buffer }

func newPickler() *pickler { p := &pickler{}; p.Write([]byte{0x80, 2}); return p }

func (p *pickler) str(s string) {
	p.WriteByte('X') // BINUNICODE
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pickler) int(v int64) {
	p.WriteByte(0x8a) // LONG1: 8 bytes, little-endian two's complement
	p.WriteByte(8)
	binary.Write(p, binary.LittleEndian, v)
}

func (p *pickler) global(module, name string) { p.WriteString("c" + module + "\n" + name + "\n") }

func (p *pickler) ints(vs ...int64) {
	p.WriteByte('(')
	for _, v := range vs {
		p.int(v)
	}
	p.WriteByte('t')
}

// tensor pickles _rebuild_tensor_v2(storage key with numel elements, 0,
// shape, stride, False, OrderedDict()); legacy adds the view slot of a
// legacy persistent id.
func (p *pickler) tensor(key string, numel int64, shape, stride []int64, legacy bool) {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.WriteByte('(')
	p.WriteByte('(')
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.str(key)
	p.str("cpu")
	p.int(numel)
	if legacy {
		p.WriteByte('N')
	}
	p.WriteByte('t')
	p.WriteByte('Q') // BINPERSID
	p.int(0)
	p.ints(shape...)
	p.ints(stride...)
	p.WriteByte(0x89) // NEWFALSE
	p.global("collections", "OrderedDict")
	p.WriteString(")R")
	p.WriteString("tR")
}

// stateDict pickles {"w": tensor} and stops.
func stateDictPickle(key string, numel int64, shape, stride []int64, legacy bool) []byte {
	p := newPickler()
	p.WriteByte('}')
	p.str("w")
	p.tensor(key, numel, shape, stride, legacy)
	p.WriteString("s.")
	return p.Bytes()
}

// torchZip writes a torch.save zip: data.pkl and one record per storage,
// with the record header taken as given (a hostile file may lie in it).
func torchZip(t testing.TB, path string, pkl []byte, records map[string]*zip.FileHeader, data map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write(pkl)
	for key, fh := range records {
		fh.Name = "archive/data/" + key
		w, err := zw.CreateRaw(fh)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[key])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// legacyFile writes a legacy torch.save file: magic, protocol, sys info, the
// state dict, the storage key list, then each storage as a count and data.
func legacyFile(t testing.TB, path string, pkl []byte, keys []string, data []byte) {
	t.Helper()
	var b bytes.Buffer
	magic := newPickler()
	magic.WriteByte(0x8a)
	magic.WriteByte(10) // 0x1950a86a20f9469cfc6c, little-endian
	magic.Write([]byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19})
	magic.WriteByte('.')
	b.Write(magic.Bytes())
	proto := newPickler()
	proto.WriteString("M\xe9\x03.") // BININT2 1001
	b.Write(proto.Bytes())
	sys := newPickler()
	sys.WriteString("}.")
	b.Write(sys.Bytes())
	b.Write(pkl)
	kl := newPickler()
	kl.WriteString("]")
	for _, k := range keys {
		kl.str(k)
		kl.WriteString("a")
	}
	kl.WriteString(".")
	b.Write(kl.Bytes())
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadHostileSizes: sizes in a checkpoint are untrusted. Each file here
// claims far more than it holds; loading must fail with an error naming the
// tensor or storage, before allocating what it claims (an unchecked claim
// panics in makeslice or runs out of memory).
func TestLoadHostileSizes(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	const huge = int64(1) << 62

	t.Run("safetensors shape product overflows", func(t *testing.T) {
		// 2^62 float32 = 2^64 bytes wraps to 0, matching empty offsets.
		stFile(t, p("overflow.safetensors"), map[string]any{
			"w": map[string]any{"dtype": "F32", "shape": []int64{huge, 1, 1}, "data_offsets": []int{0, 0}}}, nil)
		wantLoadError(t, p("overflow.safetensors"), "tensor w", "more than")
	})
	t.Run("safetensors shape product overflows to the data size", func(t *testing.T) {
		// (2^62+1)·4 elements ·4 bytes wraps to exactly 16 bytes.
		stFile(t, p("wrap16.safetensors"), map[string]any{
			"w": map[string]any{"dtype": "F32", "shape": []int64{huge + 1, 4}, "data_offsets": []int{0, 16}}}, make([]byte, 16))
		wantLoadError(t, p("wrap16.safetensors"), "tensor w", "more than")
	})
	t.Run("safetensors negative dimension", func(t *testing.T) {
		stFile(t, p("neg.safetensors"), map[string]any{
			"w": map[string]any{"dtype": "F32", "shape": []int{-4}, "data_offsets": []int{0, 16}}}, make([]byte, 16))
		wantLoadError(t, p("neg.safetensors"), "tensor w", "negative dimension")
	})

	four := make([]byte, 16)
	t.Run("zip tensor shape overflows", func(t *testing.T) {
		torchZip(t, p("shape.pth"), stateDictPickle("0", 4, []int64{huge, 4}, []int64{4, 1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("shape.pth"), "more than")
	})
	t.Run("zip tensor larger than its storage", func(t *testing.T) {
		torchZip(t, p("expand.pth"), stateDictPickle("0", 4, []int64{1 << 20, 1 << 20}, []int64{0, 0}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("expand.pth"), "its storage 0 only 4")
	})
	t.Run("zip stride beyond storage", func(t *testing.T) {
		torchZip(t, p("stride.pth"), stateDictPickle("0", 4, []int64{2, 2}, []int64{huge, 1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("stride.pth"), "tensor w", "exceeds its storage")
	})
	t.Run("zip storage claims more than its record", func(t *testing.T) {
		// The pickle and the zip directory agree on 2^40 floats; the record
		// holds 16 bytes and is stored: the claim is a lie.
		n := int64(1) << 40
		torchZip(t, p("record.pth"), stateDictPickle("0", n, []int64{n}, []int64{1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: uint64(4 * n)}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("record.pth"), "tensor w", "claims")
	})
	t.Run("zip deflated storage beyond any ratio", func(t *testing.T) {
		n := int64(1) << 40
		torchZip(t, p("deflate.pth"), stateDictPickle("0", n, []int64{n}, []int64{1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Deflate, CompressedSize64: 16, UncompressedSize64: uint64(4 * n)}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("deflate.pth"), "tensor w", "cannot hold")
	})
	t.Run("zip storage element count overflows", func(t *testing.T) {
		torchZip(t, p("numel.pth"), stateDictPickle("0", huge, []int64{4}, []int64{1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16}},
			map[string][]byte{"0": four})
		wantLoadError(t, p("numel.pth"), "bad element count")
	})
	t.Run("legacy storage larger than the file", func(t *testing.T) {
		n := int64(1) << 40
		var data bytes.Buffer
		binary.Write(&data, binary.LittleEndian, uint64(n))
		data.Write(four)
		legacyFile(t, p("legacy.pth"), stateDictPickle("0", n, []int64{n}, []int64{1}, true), []string{"0"}, data.Bytes())
		wantLoadError(t, p("legacy.pth"), "tensor w", "do not fit")
	})
	t.Run("legacy file is well formed", func(t *testing.T) {
		// The same builder with honest sizes loads: the errors above come
		// from the sizes, not from a malformed file.
		var data bytes.Buffer
		binary.Write(&data, binary.LittleEndian, uint64(4))
		data.Write(four)
		legacyFile(t, p("ok_legacy.pth"), stateDictPickle("0", 4, []int64{2, 2}, []int64{2, 1}, true), []string{"0"}, data.Bytes())
		ck, err := Load(p("ok_legacy.pth"))
		if err != nil {
			t.Fatal(err)
		}
		if w := ck.Tensors["w"]; w == nil || len(w.Data) != 4 {
			t.Fatalf("tensors %v", ck.Tensors)
		}
		torchZip(t, p("ok.pth"), stateDictPickle("0", 4, []int64{2, 2}, []int64{2, 1}, false),
			map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16, CRC32: crc32.ChecksumIEEE(four)}},
			map[string][]byte{"0": four})
		if ck, err = Load(p("ok.pth")); err != nil {
			t.Fatal(err)
		}
		if w := ck.Tensors["w"]; w == nil || len(w.Data) != 4 {
			t.Fatalf("tensors %v", ck.Tensors)
		}
	})
}

// TestLoadPickleCallsNothing: a pickle may name any Python callable; the
// reader never runs one. A checkpoint that calls posix.system (at top level
// or as a state-dict value) is refused and the command has no effect.
func TestLoadPickleCallsNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	call := func(p *pickler) {
		p.global("posix", "system")
		p.WriteByte('(')
		p.str("touch " + marker)
		p.WriteString("tR")
	}
	top := newPickler()
	call(top)
	top.WriteByte('.')
	inDict := newPickler()
	inDict.WriteByte('}')
	inDict.str("w")
	call(inDict)
	inDict.WriteString("s.")
	for name, c := range map[string]struct {
		pkl  []byte
		want string
	}{"top": {top.Bytes(), "not a dict"}, "value": {inDict.Bytes(), "posix.system"}} {
		path := filepath.Join(dir, name+".pth")
		torchZip(t, path, c.pkl, nil, nil)
		wantLoadError(t, path, c.want)
		legacy := filepath.Join(dir, name+"_legacy.pth")
		legacyFile(t, legacy, c.pkl, nil, nil)
		wantLoadError(t, legacy, c.want)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("posix.system ran: %s exists (%v)", marker, err)
	}
}

// TestLoadPickleLengthsChecked: gopickle allocates whatever length an
// opcode claims before reading it; a claim of 2^42 bytes used to end the
// process with "fatal error: runtime: out of memory", which no recover
// catches. Every length is now checked against the bytes left first.
func TestLoadPickleLengthsChecked(t *testing.T) {
	dir := t.TempDir()
	for name, op := range map[string][]byte{
		"BINBYTES8":   append([]byte{0x8e}, binary.LittleEndian.AppendUint64(nil, 1<<42)...),
		"BINUNICODE8": append([]byte{0x8d}, binary.LittleEndian.AppendUint64(nil, 1<<42)...),
		"BINUNICODE":  append([]byte{'X'}, binary.LittleEndian.AppendUint32(nil, 1<<31)...),
		"FRAME":       append([]byte{0x95}, binary.LittleEndian.AppendUint64(nil, 1<<42)...),
	} {
		p := newPickler()
		p.WriteByte('}')
		p.Write(op)
		p.WriteString("abc")
		path := filepath.Join(dir, name+".pth")
		torchZip(t, path, p.Bytes(), nil, nil)
		wantLoadError(t, path, "data.pkl", "corrupt pickle", "claims")
		legacyFile(t, path, p.Bytes(), nil, nil)
		wantLoadError(t, path, "main pickle", "corrupt pickle", "claims")
	}
}

// TestLoadRefusesNonRegularFiles: a checkpoint, config.json or shard index
// that is a FIFO would block the open forever, and a device like /dev/zero
// never ends; an oversized config.json is not a config. All are refused
// with an error naming the path.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.pth")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	hf := filepath.Join(dir, "hf")
	os.Mkdir(hf, 0o755)
	copyFile(t, "testdata/hf_safetensors/model.safetensors", filepath.Join(hf, "model.safetensors"), -1)
	if err := syscall.Mkfifo(filepath.Join(hf, "config.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "hf_big")
	os.Mkdir(big, 0o755)
	copyFile(t, "testdata/hf_safetensors/model.safetensors", filepath.Join(big, "model.safetensors"), -1)
	os.WriteFile(filepath.Join(big, "config.json"), append([]byte(`{"x":"`), bytes.Repeat([]byte{'a'}, 2<<20)...), 0o644)
	cases := []struct {
		path string
		want []string
	}{
		{fifo, []string{"not a regular file but a named pipe (FIFO)"}},
		{hf, []string{"config.json", "not a regular file"}},
		{big, []string{"config.json", "larger than"}},
		{"/dev/zero", []string{"not a regular file"}},
	}
	errs := make(chan error, len(cases))
	go func() {
		for _, c := range cases {
			_, err := Load(c.path)
			errs <- err
		}
	}()
	for _, c := range cases {
		var err error
		select {
		case err = <-errs:
		case <-time.After(time.Minute): // a guard against a hang, not a timing
			t.Fatalf("Load(%s) blocked", c.path)
		}
		if err == nil {
			t.Errorf("Load(%s) succeeded", c.path)
			continue
		}
		for _, w := range append([]string{c.path}, c.want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Load(%s): %q does not mention %q", c.path, err, w)
			}
		}
	}
}

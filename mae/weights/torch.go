package weights

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// The PyTorch formats are read with gopickle's unpickler but with our own
// storage handling rather than gopickle/pytorch: that package (v0.2.0) reads
// storages element by element through an unchecked io.Reader.Read (a short
// read silently corrupts data), requires exactly six arguments to
// _rebuild_tensor_v2, panics on legacy views, and fails on checkpoints that
// also pickle plain Python objects (argparse.Namespace in training
// checkpoints). Here storages are unpickled as descriptors and then read once,
// straight into their final []float32.

// legacyMagic is torch.serialization.MAGIC_NUMBER.
const legacyMagic = "1950a86a20f9469cfc6c"

type dtype int

const (
	dtFloat32 dtype = iota
	dtFloat16
	dtBFloat16
	dtFloat64
	dtOther // integer, bool, complex...: not loadable as weights
)

func (d dtype) size() int {
	switch d {
	case dtFloat32:
		return 4
	case dtFloat16, dtBFloat16:
		return 2
	case dtFloat64:
		return 8
	}
	return 0
}

// storageClass stands for torch.FloatStorage and friends in the pickle.
type storageClass struct {
	name  string
	dtype dtype
	size  int // element size in bytes
}

var storageClasses = map[string]storageClass{
	"FloatStorage":    {"FloatStorage", dtFloat32, 4},
	"HalfStorage":     {"HalfStorage", dtFloat16, 2},
	"BFloat16Storage": {"BFloat16Storage", dtBFloat16, 2},
	"DoubleStorage":   {"DoubleStorage", dtFloat64, 8},
	"LongStorage":     {"LongStorage", dtOther, 8},
	"IntStorage":      {"IntStorage", dtOther, 4},
	"ShortStorage":    {"ShortStorage", dtOther, 2},
	"CharStorage":     {"CharStorage", dtOther, 1},
	"ByteStorage":     {"ByteStorage", dtOther, 1},
	"BoolStorage":     {"BoolStorage", dtOther, 1},
	"UntypedStorage":  {"UntypedStorage", dtOther, 1},
}

// storage is one pickled storage; its data is read after unpickling.
type storage struct {
	key   string
	class storageClass
	numel int
	// base/offset make a legacy storage view a window of a root storage.
	base   *storage
	offset int

	f32    []float32 // the data, converted to float32 when read
	loaded bool
	users  int       // tensors referencing it (a shared float32 storage is copied)
	label  string    // first tensor using it, for error messages
	dst    []float32 // preallocated destination of the data, if any
}

func (s *storage) String() string {
	if r, _ := s.root(); r.label != "" {
		return fmt.Sprintf("tensor %s (storage %s)", r.label, r.key)
	}
	return "storage " + s.key
}

func (s *storage) root() (*storage, int) {
	if s.base != nil {
		return s.base, s.offset
	}
	return s, 0
}

// torchPlan is the state dict of an unpickled file whose storage data has
// not been read yet.
type torchPlan struct {
	tensors []namedTensor
	// For Hugging Face names: where each tensor goes (see planHF).
	slots map[string]hfSlot
	out   map[string]*Tensor
}

// prepare extracts the state dict before any data is read: a file that is not
// a state dict fails early, each storage is named after its first tensor for
// error messages, and Hugging Face query/key/value storages are pointed at
// their rows of the fused qkv tensor so that they are read in place.
// fits is called once per storage the state dict uses, before anything is
// allocated: it checks the element count the pickle claims against the file.
// With header no data will be read: Hugging Face names are mapped (and
// refused) as they would be, but nothing is allocated.
func prepare(obj interface{}, mapHF, header bool, fits func(*storage) error) (*torchPlan, error) {
	tensors, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	shapes := make(map[string][]int, len(tensors))
	for _, nt := range tensors {
		r, _ := nt.t.st.root()
		if r.label == "" {
			r.label = nt.name
		}
		r.users++
		if r.users == 1 {
			if err := fits(r); err != nil {
				return nil, err
			}
		}
		if _, dup := shapes[nt.name]; dup {
			return nil, fmt.Errorf("tensor %s: duplicate name", nt.name)
		}
		shapes[nt.name] = nt.t.shape
	}
	plan := &torchPlan{tensors: tensors}
	if !mapHF || !isHFNames(shapes) {
		return plan, nil
	}
	if plan.slots, plan.out, err = planHF(shapes, !header); err != nil {
		return nil, err
	}
	if header {
		return plan, nil
	}
	for i := range tensors {
		nt := &tensors[i]
		s := plan.slots[nt.name]
		r, base := nt.t.st.root()
		n := numel(nt.t.shape)
		if s.off >= 0 && r.class.dtype != dtOther && r.users == 1 && base == 0 && nt.t.offset == 0 &&
			n == r.numel && isContiguous(nt.t.shape, nt.t.stride) {
			r.dst = s.t.Data[s.off : s.off+n]
			nt.inPlace = true
		}
	}
	return plan, nil
}

// pickledTensor is the result of torch._utils._rebuild_tensor_v2.
type pickledTensor struct {
	st     *storage
	offset int
	shape  []int
	stride []int
}

type rebuildTensor struct{}

func (rebuildTensor) Call(args ...interface{}) (interface{}, error) {
	// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %d arguments", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage argument is %T", args[0])
	}
	off, ok := args[1].(int)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: offset argument is %T", args[1])
	}
	shape, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor_v2 size: %w", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor_v2 stride: %w", err)
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %v and stride %v differ in rank", shape, stride)
	}
	// The shape comes from an untrusted pickle and sizes allocations before
	// any data is read: a weight never has more elements than its storage
	// (expanded, stride-0 tensors are refused), and the storage itself is
	// checked against the file before anything is allocated.
	n, err := checkedNumel(shape)
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %w", err)
	}
	if n > st.numel {
		return nil, fmt.Errorf("_rebuild_tensor_v2: shape %v has %d elements, its storage %s only %d", shape, n, st.key, st.numel)
	}
	return &pickledTensor{st: st, offset: off, shape: shape, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad, hooks[, state]).
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter: no arguments")
	}
	return args[0], nil
}

// rebuildFromType is torch._tensor._rebuild_from_type_v2(func, type, args, state).
type rebuildFromType struct{}

func (rebuildFromType) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 3 {
		return nil, fmt.Errorf("_rebuild_from_type_v2: %d arguments", len(args))
	}
	fn, ok := args[0].(types.Callable)
	if !ok {
		return nil, fmt.Errorf("_rebuild_from_type_v2: function is %T", args[0])
	}
	t, ok := args[2].(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("_rebuild_from_type_v2: arguments are %T", args[2])
	}
	return fn.Call(*t...)
}

// opaqueClass stands for any other Python class or function (argparse.Namespace,
// numpy scalars, optimizer state...): checkpoints carry such objects next to
// the weights and they must not stop the weights from loading.
type opaqueClass struct{ module, name string }

type opaqueObject struct{ class *opaqueClass }

func (c *opaqueClass) Call(...interface{}) (interface{}, error)  { return &opaqueObject{c}, nil }
func (c *opaqueClass) PyNew(...interface{}) (interface{}, error) { return &opaqueObject{c}, nil }
func (o *opaqueObject) PySetState(interface{}) error             { return nil }
func (o *opaqueObject) String() string                           { return o.class.module + "." + o.class.name }

func findClass(module, name string) (interface{}, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return rebuildParameter{}, nil
	case "torch._tensor._rebuild_from_type_v2":
		return rebuildFromType{}, nil
	}
	if module == "torch" {
		if c, ok := storageClasses[name]; ok {
			return c, nil
		}
	}
	return &opaqueClass{module, name}, nil
}

func intTuple(v interface{}) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("tuple expected, got %T", v)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("non-negative int expected, got %v", t.Get(i))
		}
		out[i] = n
	}
	return out, nil
}

// unpickle runs the unpickler, turning a panic on malformed input (gopickle
// allocates whatever length a corrupt opcode claims) into an error.
func unpickle(r io.Reader, persistent func(interface{}) (interface{}, error)) (res interface{}, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt pickle: %v", p)
		}
	}()
	u := pickle.NewUnpickler(r)
	u.FindClass = findClass
	u.PersistentLoad = persistent
	return u.Load()
}

// readTorchAs reads a torch.save file and returns the float32 tensors of
// its state dict, mapping Hugging Face names to official ones when mapHF.
func readTorchAs(path string, mapHF bool) (map[string]*Tensor, string, error) {
	return readTorchMode(path, mapHF, false)
}

// readTorchMode is readTorchAs that, with header, reads only the pickles
// and the zip directory: every check above the data (storages inside the
// file, so a truncated file fails; dtypes; views inside their storages;
// Hugging Face names, when mapHF) and tensors with Data nil.
func readTorchMode(path string, mapHF, header bool) (map[string]*Tensor, string, error) {
	kind, err := sniff(path)
	if err != nil {
		return nil, "", err
	}
	var plan *torchPlan
	switch kind {
	case FormatPthZip:
		plan, err = readTorchZip(path, mapHF, header)
	case FormatPthLegacy:
		plan, err = readTorchLegacy(path, mapHF, header)
	default:
		return nil, "", fmt.Errorf("load %s: not a PyTorch file", path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load %s: %w", path, err)
	}
	if header {
		out, err := plan.shapes()
		if err != nil {
			return nil, "", fmt.Errorf("load %s: %w", path, err)
		}
		return out, kind, nil
	}
	out, err := materialize(plan)
	if err != nil {
		return nil, "", fmt.Errorf("load %s: %w", path, err)
	}
	return out, kind, nil
}

// persistentStorage decodes a ('storage', class, key, location, numel[, view]) id.
func persistentStorage(pid interface{}, stores map[string]*storage) (*storage, interface{}, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, nil, fmt.Errorf("unexpected persistent id %v", pid)
	}
	if name, _ := t.Get(0).(string); name != "storage" {
		return nil, nil, fmt.Errorf("unexpected persistent id kind %v", t.Get(0))
	}
	class, ok := t.Get(1).(storageClass)
	if !ok {
		return nil, nil, fmt.Errorf("unknown storage type %v", t.Get(1))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, nil, fmt.Errorf("storage key is %T", t.Get(2))
	}
	n, ok := t.Get(4).(int)
	if !ok || n < 0 || n > maxElements {
		return nil, nil, fmt.Errorf("storage %s: bad element count %v", key, t.Get(4))
	}
	st := stores[key]
	if st == nil {
		st = &storage{key: key, class: class, numel: n}
		stores[key] = st
	} else if st.class != class {
		return nil, nil, fmt.Errorf("storage %s used as both %s and %s", key, st.class.name, class.name)
	}
	var view interface{}
	if t.Len() > 5 {
		view = t.Get(5)
	}
	return st, view, nil
}

func readTorchZip(path string, mapHF, header bool) (*torchPlan, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated zip: %w", err)
	}
	defer zr.Close()
	// Records live under "<archive name>/": find it from data.pkl.
	var prefix string
	records := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		records[f.Name] = f
		if strings.HasSuffix(f.Name, "data.pkl") && strings.Count(f.Name, "/") <= 1 {
			prefix = strings.TrimSuffix(f.Name, "data.pkl")
		}
	}
	pkl := records[prefix+"data.pkl"]
	if pkl == nil {
		return nil, errors.New("zip has no data.pkl: not a torch.save file")
	}
	if records[prefix+"constants.pkl"] != nil {
		return nil, errors.New("TorchScript archives are not supported: save the state dict with torch.save")
	}
	if bo := records[prefix+"byteorder"]; bo != nil {
		b, err := readZipRecord(bo, 16)
		if err != nil {
			return nil, fmt.Errorf("byteorder: %w", err)
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("byte order %q is not supported", b)
		}
	}
	rc, err := pkl.Open()
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	b, err := readPickle(rc)
	rc.Close()
	if err == nil {
		err = checkPickle(bufio.NewReader(bytes.NewReader(b)), int64(len(b)))
	}
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	stores := map[string]*storage{}
	obj, err := unpickle(bytes.NewReader(b), func(pid interface{}) (interface{}, error) {
		st, _, err := persistentStorage(pid, stores)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	plan, err := prepare(obj, mapHF, header, func(st *storage) error {
		rec := records[prefix+"data/"+st.key]
		if rec == nil {
			return fmt.Errorf("%s: record %sdata/%s missing", st, prefix, st.key)
		}
		return recordFits(st, rec, fi.Size())
	})
	if err != nil || header {
		return plan, err // prepare checked each record against its storage
	}
	chunk := make([]byte, 1<<16) // conversion buffer for non-float32 storages
	for _, key := range sortedKeys(stores) {
		st := stores[key]
		if st.users == 0 {
			continue // not part of the state dict (optimizer state...)
		}
		rec := records[prefix+"data/"+key]
		if rec == nil {
			return nil, fmt.Errorf("%s: record %sdata/%s missing", st, prefix, key)
		}
		if err := recordFits(st, rec, fi.Size()); err != nil {
			return nil, err
		}
		rc, err := rec.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st, err)
		}
		err = st.read(rc, chunk)
		if err == nil {
			// Reading to EOF makes archive/zip check the record's CRC-32.
			var extra [1]byte
			var n int
			n, err = io.ReadFull(rc, extra[:])
			if err == io.EOF && n == 0 {
				err = nil
			} else if err == nil {
				err = errors.New("record longer than its storage")
			}
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st, err)
		}
	}
	return plan, nil
}

// maxDeflateRatio is the largest expansion DEFLATE can achieve (258-byte
// matches coded in 2 bits, ~1032:1): a record claiming more is lying.
const maxDeflateRatio = 1032

// recordFits checks a zip record against the storage the pickle describes
// and against the file, before the storage is allocated: the sizes in a zip
// directory are as untrusted as the pickle.
func recordFits(st *storage, rec *zip.File, fileSize int64) error {
	want := uint64(st.numel) * uint64(st.class.size) // numel ≤ maxElements: no overflow
	if rec.UncompressedSize64 != want {
		return fmt.Errorf("%s: record holds %d bytes, %d %s elements need %d", st, rec.UncompressedSize64, st.numel, st.class.name, want)
	}
	if rec.CompressedSize64 > uint64(fileSize) {
		return fmt.Errorf("%s: record claims %d compressed bytes in a file of %d", st, rec.CompressedSize64, fileSize)
	}
	switch rec.Method {
	case zip.Store:
		if rec.CompressedSize64 != rec.UncompressedSize64 {
			return fmt.Errorf("%s: stored record of %d bytes claims %d uncompressed", st, rec.CompressedSize64, rec.UncompressedSize64)
		}
	case zip.Deflate:
		if rec.UncompressedSize64/maxDeflateRatio > rec.CompressedSize64 {
			return fmt.Errorf("%s: %d deflated bytes cannot hold %d", st, rec.CompressedSize64, rec.UncompressedSize64)
		}
	}
	return nil
}

func readZipRecord(f *zip.File, max int) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, int64(max)))
}

func readTorchLegacy(path string, mapHF, header bool) (*torchPlan, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// One buffered reader for everything: the unpickler must not read past a
	// pickle's STOP into the storage data that follows.
	cr := &countingReader{r: f}
	r := bufio.NewReaderSize(cr, 1<<20)
	// Each pickle is walked first (checkPickle), from its position in the
	// file, so that no length it claims is allocated before it is checked.
	next := func(persistent func(interface{}) (interface{}, error)) (interface{}, error) {
		pos := cr.n - int64(r.Buffered())
		left := fi.Size() - pos
		if err := checkPickle(bufio.NewReader(io.NewSectionReader(f, pos, left)), left); err != nil {
			return nil, err
		}
		return unpickle(r, persistent)
	}
	noPersist := func(interface{}) (interface{}, error) { return nil, errors.New("unexpected persistent id") }
	magic, err := next(noPersist)
	if err != nil {
		return nil, fmt.Errorf("magic number: %w", err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Text(16) != legacyMagic {
		return nil, fmt.Errorf("not a torch.save file: magic number %v", magic)
	}
	if v, err := next(noPersist); err != nil || v != 1001 {
		return nil, fmt.Errorf("unsupported legacy protocol version %v (%v)", v, err)
	}
	sysInfo, err := next(noPersist)
	if err != nil {
		return nil, fmt.Errorf("sys info: %w", err)
	}
	if d, ok := sysInfo.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le == false {
			return nil, errors.New("big-endian checkpoints are not supported")
		}
	}
	stores := map[string]*storage{}
	obj, err := next(func(pid interface{}) (interface{}, error) {
		st, view, err := persistentStorage(pid, stores)
		if err != nil || view == nil {
			return st, err
		}
		// (view_key, offset, view_size): a window of the root storage.
		vt, ok := view.(*types.Tuple)
		if !ok || vt.Len() != 3 {
			return nil, fmt.Errorf("storage %s: bad view metadata %v", st.key, view)
		}
		vkey, _ := vt.Get(0).(string)
		off, ok1 := vt.Get(1).(int)
		size, ok2 := vt.Get(2).(int)
		if !ok1 || !ok2 || off < 0 || size < 0 || off > st.numel || size > st.numel-off {
			return nil, fmt.Errorf("storage %s: bad view metadata %v", st.key, view)
		}
		v := stores["view:"+vkey]
		if v == nil {
			v = &storage{key: vkey, class: st.class, numel: size, base: st, offset: off}
			stores["view:"+vkey] = v
		}
		return v, nil
	})
	if err != nil {
		return nil, fmt.Errorf("main pickle: %w", err)
	}
	// Every storage follows the pickles as an 8-byte count and its data: what
	// the storages claim together must fit in what is left of the file.
	left := fi.Size() - (cr.n - int64(r.Buffered()))
	plan, err := prepare(obj, mapHF, header, func(st *storage) error {
		left -= 8 + int64(st.numel)*int64(st.class.size)
		if left < 0 {
			return fmt.Errorf("%s: %d %s elements do not fit in the %d bytes of %s", st, st.numel, st.class.name, fi.Size(), path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	keysObj, err := next(noPersist)
	if err != nil {
		return nil, fmt.Errorf("storage key list: %w", err)
	}
	keys, ok := keysObj.(*types.List)
	if !ok {
		return nil, fmt.Errorf("storage key list is %T", keysObj)
	}
	chunk := make([]byte, 1<<16) // conversion buffer for non-float32 storages
	need := int64(0)             // the bytes of the listed storages, which end the file
	for _, k := range *keys {
		key, _ := k.(string)
		st := stores[key]
		if st == nil {
			return nil, fmt.Errorf("storage %v listed but never referenced", k)
		}
		if header {
			st.loaded = true // listed: its count and data follow
			need += 8 + int64(st.numel)*int64(st.class.size)
			if have := fi.Size() - (cr.n - int64(r.Buffered())); need > have {
				return nil, fmt.Errorf("%s: file truncated: the storages need %d bytes after the pickles, the file has %d", st, need, have)
			}
			continue
		}
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("%s header: %w", st, truncated(err))
		}
		if n := binary.LittleEndian.Uint64(hdr[:]); n != uint64(st.numel) {
			return nil, fmt.Errorf("%s: file says %d elements, pickle says %d", st, n, st.numel)
		}
		if err := st.read(r, chunk); err != nil {
			return nil, fmt.Errorf("%s: %w", st, err)
		}
	}
	for _, st := range stores {
		if st.base == nil && !st.loaded {
			return nil, fmt.Errorf("%s: no data in file", st)
		}
	}
	return plan, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// read fills the storage from r straight into its final float32 slice:
// float32 data in place, other float dtypes converted chunk by chunk (no
// second full-size buffer). Storages outside the state dict (optimizer
// moments of a training checkpoint) are skipped, and so are integer ones: no
// weight uses them and materialize reports them by tensor name.
func (s *storage) read(r io.Reader, chunk []byte) error {
	s.loaded = true
	dt := s.class.dtype
	if s.users == 0 {
		dt = dtOther
	}
	switch dt {
	case dtFloat32:
		s.f32 = s.alloc()
		if _, err := io.ReadFull(r, float32Bytes(s.f32)); err != nil {
			return truncated(err)
		}
		leToHostFloat32(s.f32)
		return nil
	case dtOther:
		n := int64(s.numel) * int64(s.class.size)
		if m, err := io.CopyN(io.Discard, r, n); err != nil || m != n {
			return truncated(err)
		}
		return nil
	}
	s.f32 = s.alloc()
	es := s.class.dtype.size()
	per := len(chunk) / es
	for i := 0; i < s.numel; i += per {
		m := min(per, s.numel-i)
		if _, err := io.ReadFull(r, chunk[:m*es]); err != nil {
			return truncated(err)
		}
		convertInto(s.f32[i:i+m], chunk[:m*es], s.class.dtype)
	}
	return nil
}

func (s *storage) alloc() []float32 {
	if s.dst != nil {
		return s.dst
	}
	return make([]float32, s.numel)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type namedTensor struct {
	name    string
	t       *pickledTensor
	inPlace bool // read straight into its fused qkv tensor
}

// stateDict finds the state dict: the top-level dict itself, or its "model" or
// "state_dict" entry. Non-tensor entries of the state dict are an error.
func stateDict(obj interface{}) ([]namedTensor, error) {
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, fmt.Errorf("top-level object is %s, not a dict", typeName(obj))
	}
	for _, key := range []string{"model", "state_dict"} {
		for _, e := range entries {
			if e.Key == key {
				if inner, ok := dictEntries(e.Value); ok {
					return tensorEntries(inner, key+".")
				}
			}
		}
	}
	return tensorEntries(entries, "")
}

func tensorEntries(entries []types.DictEntry, where string) ([]namedTensor, error) {
	out := make([]namedTensor, 0, len(entries))
	var others []string
	for _, e := range entries {
		name, ok := e.Key.(string)
		if !ok {
			return nil, fmt.Errorf("state dict key %v is not a string", e.Key)
		}
		t, ok := e.Value.(*pickledTensor)
		if !ok {
			others = append(others, fmt.Sprintf("%s%s (%s)", where, name, typeName(e.Value)))
			continue
		}
		out = append(out, namedTensor{name: name, t: t})
	}
	if len(out) == 0 {
		if len(others) > 0 {
			return nil, fmt.Errorf("no tensors found; entries: %s", strings.Join(others, ", "))
		}
		return nil, errors.New("no tensors found (empty state dict)")
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("state dict entry %s is not a tensor", others[0])
	}
	return out, nil
}

func dictEntries(obj interface{}) ([]types.DictEntry, bool) {
	switch d := obj.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		out := make([]types.DictEntry, 0, d.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			out = append(out, types.DictEntry{Key: oe.Key, Value: oe.Value})
		}
		return out, true
	}
	return nil, false
}

func typeName(v interface{}) string {
	switch v := v.(type) {
	case *opaqueObject:
		return v.String()
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case *types.List:
		return "list"
	case *types.Tuple:
		return "tuple"
	case nil:
		return "None"
	}
	return fmt.Sprintf("%T", v)
}

// materialize turns pickled tensors into float32 Tensors. A contiguous float32
// tensor that is the only user of its storage keeps the storage's memory (no
// copy); everything else is gathered into a new slice.
func materialize(plan *torchPlan) (map[string]*Tensor, error) {
	out := plan.out
	if out == nil {
		out = make(map[string]*Tensor, len(plan.tensors))
	}
	for _, nt := range plan.tensors {
		if nt.inPlace {
			continue
		}
		t, err := nt.t.toFloat32()
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", nt.name, err)
		}
		if plan.slots == nil {
			out[nt.name] = t
			continue
		}
		s := plan.slots[nt.name]
		if s.off < 0 {
			s.t.Data = t.Data
		} else {
			copy(s.t.Data[s.off:s.off+len(t.Data)], t.Data)
		}
	}
	return out, nil
}

// shapes is materialize for a header read: the tensors' shapes, Data nil
// (under the official names when the plan maps Hugging Face ones), after
// the checks materialize makes before it touches the data.
func (plan *torchPlan) shapes() (map[string]*Tensor, error) {
	out := plan.out // planHF's, Data nil
	if out == nil {
		out = make(map[string]*Tensor, len(plan.tensors))
	}
	for _, nt := range plan.tensors {
		if err := nt.t.check(); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", nt.name, err)
		}
		if plan.slots == nil {
			out[nt.name] = &Tensor{Shape: append([]int(nil), nt.t.shape...)}
		}
	}
	return out, nil
}

// check refuses a tensor that cannot be loaded: an unsupported dtype, or
// a shape, stride and offset reaching outside its storage.
func (p *pickledTensor) check() error {
	root, _ := p.st.root()
	if root.class.dtype == dtOther {
		return fmt.Errorf("unsupported dtype (%s); only float32, float16, bfloat16 and float64 weights can be loaded", root.class.name)
	}
	// Bounds: the largest element index must lie inside the storage (view),
	// computed so that no product of untrusted numbers can wrap around.
	last, inside := p.offset, p.offset >= 0 && p.offset < p.st.numel
	for i, d := range p.shape {
		if d == 0 {
			last, inside = -1, p.offset >= 0
			break
		}
		if d > 1 && inside {
			inside = p.stride[i] <= (p.st.numel-1-last)/(d-1)
			last += (d - 1) * p.stride[i]
		}
	}
	if !inside {
		return fmt.Errorf("shape %v stride %v offset %d exceeds its storage of %d elements", p.shape, p.stride, p.offset, p.st.numel)
	}
	return nil
}

func (p *pickledTensor) toFloat32() (*Tensor, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	root, base := p.st.root()
	n := numel(p.shape)
	shape := append([]int(nil), p.shape...)
	if n == 0 {
		return &Tensor{Shape: shape, Data: []float32{}}, nil
	}
	start := base + p.offset
	if isContiguous(p.shape, p.stride) {
		if root.users == 1 && start == 0 && n == len(root.f32) {
			data := root.f32
			root.f32 = nil // handed over
			return &Tensor{Shape: shape, Data: data}, nil
		}
		return &Tensor{Shape: shape, Data: append([]float32(nil), root.f32[start:start+n]...)}, nil
	}
	data := make([]float32, n)
	idx := make([]int, len(shape))
	for k := 0; k < n; k++ {
		off := start
		for i, j := range idx {
			off += j * p.stride[i]
		}
		data[k] = root.f32[off]
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return &Tensor{Shape: shape, Data: data}, nil
}

func isContiguous(shape, stride []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

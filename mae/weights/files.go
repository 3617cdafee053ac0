package weights

import (
	"fmt"
	"os"
	"sort"
)

// WriteSafetensorsFile writes float32 tensors under their given names (no
// renaming) to path, atomically: through a "."-temporary that is fsynced and
// renamed into place. Training uses it for optimiser state.
func WriteSafetensorsFile(path string, tensors map[string]*Tensor) error {
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		names = append(names, k)
	}
	sort.Strings(names)
	err := writeFileAtomic(path, func(f *os.File) error { return writeSafetensors(f, names, tensors, nil, false) })
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// ReadSafetensorsFile reads every tensor of a safetensors file as float32
// under its stored name. A truncated or corrupt file is an error naming it.
func ReadSafetensorsFile(path string) (map[string]*Tensor, error) {
	return readSafetensorsAs(path, false)
}

// WriteFileAtomic writes path through a "."-prefixed temporary in the same
// directory that is filled by write, fsynced and renamed into place.
func WriteFileAtomic(path string, write func(*os.File) error) error {
	return writeFileAtomic(path, write)
}

// SyncDir fsyncs a directory, making renames inside it durable.
func SyncDir(dir string) error { return syncDir(dir) }

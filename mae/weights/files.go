package weights

import (
	"os"
)

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

package weights

import (
	"os"
)

// ReadSafetensorsFile reads every tensor of a safetensors file as float32
// under its stored name. A truncated or corrupt file is an error naming it.
func ReadSafetensorsFile(path string) (map[string]*Tensor, error) {
	return readSafetensorsAs(path, false)
}

// WriteFileAtomic writes path through a ".NAME.tmp-DIGITS" temporary in
// the same directory that is filled by write, fsynced and renamed into
// place (atomicfile.Write); RemoveStaleTemps of the directory removes the
// temporary of a writer killed meanwhile.
func WriteFileAtomic(path string, write func(*os.File) error) error {
	return writeFileAtomic(path, write)
}

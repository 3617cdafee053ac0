package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CheckResume reports whether an embedding run writing meta in format
// ("parquet", "arrow" or "npy") may continue what dir holds, as
// NewEmbeddings and NewErrors check it when they open dir: the newest
// published part (or metadata.parquet of an npy output) and the newest
// error part must come from the same model, pool, preprocessing, precision
// and weights. It reads only file metadata and creates nothing (a dry
// run's check); a missing dir is nothing to continue.
func CheckResume(dir, format string, meta Meta) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	keys, vals := meta.keyValues()
	check := func(path string, ignore string) error {
		kv, err := fileMetadata(path)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		k, v := keys, vals
		if ignore != "" {
			delete(kv, ignore)
			k, v = nil, nil
			for i := range keys {
				if keys[i] != ignore {
					k, v = append(k, keys[i]), append(v, vals[i])
				}
			}
		}
		return compatible(path, kv, k, v)
	}
	if format == "npy" {
		md := filepath.Join(dir, metadataName)
		if _, err := os.Stat(md); err == nil {
			if err := check(md, ""); err != nil {
				return err
			}
		}
	} else {
		_, last, err := nextPartNumber(dir, format)
		if err != nil {
			return err
		}
		if last != "" {
			if err := check(last, ""); err != nil {
				return err
			}
		}
	}
	errDir := filepath.Join(dir, errorsDir)
	if _, err := os.Stat(errDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, last, err := nextPartNumber(errDir, "parquet")
	if err != nil || last == "" {
		return err
	}
	// embed's error parts of earlier versions record maeembed.dim 1 (NewErrors).
	return check(last, "maeembed.dim")
}

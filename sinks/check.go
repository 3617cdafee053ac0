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
	return checkResume(dir, format, meta, nil)
}

// CheckResumeAnyWeights is CheckResume without the weights' fingerprint
// (maeembed.weights), for a dry run whose model is not on this machine
// yet: the run compares it once it has the weights.
func CheckResumeAnyWeights(dir, format string, meta Meta) error {
	meta.Weights = ""
	return checkResume(dir, format, meta, []string{"maeembed.weights"})
}

func checkResume(dir, format string, meta Meta, ignore []string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	keys, vals := meta.keyValues()
	if format == "npy" {
		md := filepath.Join(dir, metadataName)
		if _, err := os.Stat(md); err == nil {
			kv, err := fileMetadata(md)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			for _, k := range ignore {
				delete(kv, k)
			}
			if err := compatible(md, kv, keys, vals); err != nil {
				return err
			}
		}
	} else if _, err := resumeParts(dir, format, keys, vals, ignore); err != nil {
		return err
	}
	errDir := filepath.Join(dir, errorsDir)
	if _, err := os.Stat(errDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := resumeParts(errDir, "parquet", keys, vals, append(ignore, errorsIgnore...))
	return err
}

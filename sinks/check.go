package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// CheckResume reports whether an embedding run writing meta in format
// ("parquet", "arrow" or "npy") may continue what dir holds, as
// NewEmbeddings and NewErrors check it when they open dir: the newest
// published part (or metadata.parquet of an npy output) and the newest
// error part must come from the same model, pool, preprocessing, precision
// and weights, and so must the settings a live run writing into dir
// recorded (LiveRunSettings). It reads only file metadata and creates
// nothing (a dry run's check, and that of a run with nothing left to do,
// which opens no writer); a missing dir is nothing to continue.
func CheckResume(dir, format string, meta Meta) error {
	keys, vals := meta.keyValues()
	return checkResume(dir, format, keys, vals, nil, nil, nil)
}

// CheckResumeAnyWeights is CheckResume without the weights' fingerprint
// (maeembed.weights), for a dry run whose model is not on this machine
// yet: the run compares it once it has the weights.
func CheckResumeAnyWeights(dir, format string, meta Meta) error {
	meta.Weights = ""
	keys, vals := meta.keyValues()
	return checkResume(dir, format, keys, vals, nil, nil, anyWeights)
}

// CheckReconResume is CheckResume for a reconstruct run writing meta in
// format ("npy", "parquet" or "png"), as NewReconstructions (png: its
// maeembed-png.json) and NewReconErrors check it when they
// open dir: another mask ratio, seed, model, precision or weights is
// refused. A dry run's check; it creates nothing. An empty meta.Weights
// (a dry run whose model is not on this machine yet) leaves the weights'
// fingerprint to the run.
func CheckReconResume(dir, format string, meta ReconMeta) error {
	var ignore []string
	if meta.Weights == "" {
		ignore = anyWeights
	}
	keys, vals := meta.keyValues()
	lk, lv := meta.legacyErrorMeta().keyValues()
	return checkResume(dir, format, keys, vals, lk, lv, ignore)
}

// anyWeights is what a dry run without the model's file leaves unchecked.
var anyWeights = []string{"maeembed.weights"}

// checkResume compares what dir holds in format with keys/vals, and its
// newest error part with keys/vals too or, if legacyKeys is set, with
// legacyKeys/legacyVals (resumeErrorParts), and the settings the live runs
// writing into dir recorded with keys/vals (LiveRunSettings, recording
// nothing); keys in ignore are not compared.
func checkResume(dir, format string, keys, vals, legacyKeys, legacyVals, ignore []string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := liveRunSettings(dir, keys, vals, ignore, false); err != nil {
		return err
	}
	switch format {
	case "npy":
		md, err := npyMetadata(dir)
		if err != nil {
			return err
		}
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
	case "png":
		if _, err := checkPNGMeta(dir, keys, vals, ignore); err != nil {
			return err
		}
	default:
		if _, err := resumeParts(dir, format, keys, vals, ignore); err != nil {
			return err
		}
	}
	errDir := filepath.Join(dir, errorsDir)
	if _, err := os.Stat(errDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := resumeErrorParts(errDir, keys, vals, legacyKeys, legacyVals, append(slices.Clip(ignore), errorsIgnore...))
	return err
}

package sinks

import "fmt"

// NewEmbeddings opens the embedding writer of format in dir: "parquet"
// (NewParquet), "arrow" (NewArrow) or "npy" (NewNpy, which takes no
// options).
func NewEmbeddings(format, dir string, meta Meta, opts ParquetOptions) (EmbeddingWriter, error) {
	switch format {
	case "parquet":
		return NewParquet(dir, meta, opts)
	case "arrow":
		return NewArrow(dir, meta, opts)
	case "npy":
		return NewNpy(dir, meta)
	}
	return nil, fmt.Errorf("sinks: no embedding format %q (parquet, arrow, npy)", format)
}

// NewReconstructions opens the reconstruction writer of format in dir:
// "npy" (NewReconNpy), "parquet" (NewReconParquet) or "png" (NewReconPNG).
func NewReconstructions(format, dir string, meta ReconMeta, opts ParquetOptions) (ReconWriter, error) {
	switch format {
	case "npy":
		return NewReconNpy(dir, meta)
	case "parquet":
		return NewReconParquet(dir, meta, opts)
	case "png":
		return NewReconPNG(dir, meta)
	}
	return nil, fmt.Errorf("sinks: no reconstruction format %q (npy, parquet, png)", format)
}

// legacyErrorMeta is the metadata the error parts of a reconstruct run
// recorded before they carried the run's own (NewReconErrors): m's model,
// preprocessing, precision, weights and inputs as an embedding run's Meta,
// with pool "mean" and dim 1. A resume still continues such parts.
func (m ReconMeta) legacyErrorMeta() Meta {
	return Meta{Model: m.Model, Pool: "mean", Preprocess: m.Preprocess, Version: m.Version, Dim: 1, Precision: m.Precision, Kernel: m.Kernel, Weights: m.Weights, Inputs: m.Inputs}
}

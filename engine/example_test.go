package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Embed a folder of images into Parquet parts: the wiring of `maeembed
// embed`. Every input is acked once its row (or error row) is published.
func Example() {
	const fixture = "../mae/testdata/fixtures/tiny32"
	m, err := mae.Load(filepath.Join(fixture, "model.pth"), filepath.Join(fixture, "hf", "config.json"))
	if err != nil {
		panic(err)
	}
	emb, err := mae.NewEmbedder(m, mae.PoolMean, 8)
	if err != nil {
		panic(err)
	}
	out, _ := os.MkdirTemp("", "embed")
	defer os.RemoveAll(out)
	pre := stages.Preprocess{Mode: stages.NoResize, Size: m.Config.ImageSize}
	meta := sinks.Meta{Model: "tiny32", Pool: "mean", Preprocess: pre.String(), Dim: emb.Dim()}
	parquet, _ := sinks.NewParquet(out, meta, sinks.ParquetOptions{})
	errs, _ := sinks.NewErrors(out, meta, sinks.ParquetOptions{})

	src, _ := sources.Open([]string{filepath.Join(fixture, "images")}, sources.Options{})
	defer src.Close()
	e := engine.New(engine.Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 8, Workers: 2, Errors: errs},
		engine.NewEmbedModel(emb, 8), engine.NewEmbeddingOutput(parquet))
	if err := e.Run(context.Background(), src); err != nil {
		panic(err)
	}
	done, _ := sinks.ReadDoneIDs(out)
	fmt.Printf("%+v, %d ids published, %d values each\n", e.Counts(), len(done), emb.Dim())
	// Output: {Processed:3 Written:3 Failed:0 Retryable:0 Duplicates:0 OverBudget:0 Lost:0 Skipped:0}, 3 ids published, 48 values each
}

package sinks_test

import (
	"fmt"
	"os"

	"github.com/maeembed/maeembed/sinks"
)

// Rows carry their acks; a rolling Parquet writer calls them when the part
// holding the rows is published (here by Close), so a caller commits or
// resumes from acks alone.
func ExampleNewParquet() {
	dir, _ := os.MkdirTemp("", "parquet")
	defer os.RemoveAll(dir)
	w, err := sinks.NewParquet(dir, sinks.Meta{Model: "m", Pool: "mean", Dim: 2}, sinks.ParquetOptions{})
	if err != nil {
		panic(err)
	}
	ack := func(id string) func(error) { return func(err error) { fmt.Println("durable:", id, err) } }
	w.Write([]sinks.Row{
		{ID: "a.jpg", Width: 640, Height: 480, Embedding: []float32{0.1, 0.2}, Ack: ack("a.jpg")},
		{ID: "b.jpg", Width: 800, Height: 600, Embedding: []float32{0.3, 0.4}, Ack: ack("b.jpg")},
	})
	fmt.Println("written")
	if err := w.Close(); err != nil {
		panic(err)
	}
	ids, _ := sinks.ReadDoneIDs(dir)
	fmt.Println(len(ids), "ids in", dir != "")
	// Output:
	// written
	// durable: a.jpg <nil>
	// durable: b.jpg <nil>
	// 2 ids in true
}

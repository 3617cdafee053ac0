package sinks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// ackLog records every ack call by id.
type ackLog struct {
	mu    sync.Mutex
	calls map[string][]error
	order []string
}

func newAckLog() *ackLog { return &ackLog{calls: map[string][]error{}} }

func (l *ackLog) ack(id string) func(error) {
	return func(err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.calls[id] = append(l.calls[id], err)
		l.order = append(l.order, id)
	}
}

// ackWriter is one writer of any row type, seen through ids.
type ackWriter struct {
	write        func(ids []string, acks []func(error)) error
	close, abort func() error
	published    func(t *testing.T, dir string) map[string]bool
}

func doneIDs(t *testing.T, dir string) map[string]bool {
	done, err := ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func ackWriters(t *testing.T, dir string) map[string]ackWriter {
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: 4}
	opts := ParquetOptions{MaxFileRows: 5}
	rng := rand.New(rand.NewPCG(1, 2))
	embRows := func(w EmbeddingWriter, err error) ackWriter {
		if err != nil {
			t.Fatal(err)
		}
		return ackWriter{
			write: func(ids []string, acks []func(error)) error {
				rows := testRows(rng, 0, len(ids), meta.Dim)
				for i := range rows {
					rows[i].ID, rows[i].Ack = ids[i], acks[i]
				}
				return w.Write(rows)
			},
			close: w.Close, abort: w.Abort, published: doneIDs,
		}
	}
	reconRowsOf := func(w ReconWriter, err error) ackWriter {
		if err != nil {
			t.Fatal(err)
		}
		return ackWriter{
			write: func(ids []string, acks []func(error)) error {
				rows := reconRows(rng, testReconMeta, 0, len(ids))
				for i := range rows {
					rows[i].ID, rows[i].Ack = ids[i], acks[i]
				}
				return w.Write(rows)
			},
			close: w.Close, abort: w.Abort, published: doneIDs,
		}
	}
	ws := map[string]ackWriter{
		"parquet":       embRows(NewParquet(filepath.Join(dir, "parquet"), meta, opts)),
		"arrow":         embRows(NewArrow(filepath.Join(dir, "arrow"), meta, opts)),
		"npy":           embRows(NewNpy(filepath.Join(dir, "npy"), meta)),
		"recon-npy":     reconRowsOf(NewReconNpy(filepath.Join(dir, "recon-npy"), testReconMeta)),
		"recon-parquet": reconRowsOf(NewReconParquet(filepath.Join(dir, "recon-parquet"), testReconMeta, opts)),
	}
	ew, err := NewErrors(filepath.Join(dir, "errors"), meta, opts)
	if err != nil {
		t.Fatal(err)
	}
	ws["errors"] = ackWriter{
		write: func(ids []string, acks []func(error)) error {
			rows := make([]ErrorRow, len(ids))
			for i := range rows {
				rows[i] = ErrorRow{ID: ids[i], Stage: "decode", Error: "bad", Ack: acks[i]}
			}
			return ew.Write(rows)
		},
		close: ew.Close, abort: ew.Abort, published: doneIDs,
	}
	pngDir := filepath.Join(dir, "png")
	pw := reconRowsOf(NewReconPNG(pngDir, testReconMeta))
	pw.published = func(t *testing.T, _ string) map[string]bool {
		got := map[string]bool{}
		for _, f := range visibleFiles(t, pngDir) {
			got[f] = true
		}
		return got
	}
	ws["png"] = pw
	return ws
}

// TestAckedIffPublished: for every writer, a row's ack is called exactly
// once, with nil exactly when the row is in a published file, whether the
// writer is closed or aborted half-way through a part (and then with
// ErrAborted for the rest).
func TestAckedIffPublished(t *testing.T) {
	for _, end := range []string{"close", "abort"} {
		root := t.TempDir()
		for name, w := range ackWriters(t, root) {
			t.Run(end+"/"+name, func(t *testing.T) {
				log := newAckLog()
				var all []string
				for b := 0; b < 5; b++ { // 15 rows: parts roll at 6 and 12 rows, 3 pending
					ids := make([]string, 3)
					acks := make([]func(error), 3)
					for i := range ids {
						ids[i] = fmt.Sprintf("b%d/img%d.jpg", b, i)
						acks[i] = log.ack(ids[i])
					}
					all = append(all, ids...)
					if err := w.write(ids, acks); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				if end == "close" {
					err = w.close()
				} else {
					err = w.abort()
				}
				if err != nil {
					t.Fatal(err)
				}
				pub := w.published(t, filepath.Join(root, name))
				if name == "png" {
					pub = pngIDs(pub, all)
				}
				acked := 0
				for _, id := range all {
					calls := log.calls[id]
					if len(calls) != 1 {
						t.Fatalf("%s acked %d times (%v)", id, len(calls), calls)
					}
					if ok := calls[0] == nil; ok != pub[id] {
						t.Errorf("%s: acked %v, published %v", id, calls[0], pub[id])
					}
					if calls[0] != nil && !errors.Is(calls[0], ErrAborted) {
						t.Errorf("%s: failed with %v, want ErrAborted", id, calls[0])
					}
					if calls[0] == nil {
						acked++
					}
				}
				switch {
				case end == "close" && acked != len(all):
					t.Errorf("close acked %d of %d", acked, len(all))
				case end == "abort" && (name == "parquet" || name == "arrow" || name == "errors" || name == "recon-parquet") && acked != 12:
					t.Errorf("abort after two rolled parts acked %d, want 12", acked)
				case end == "abort" && (name == "npy" || name == "recon-npy") && acked != 0:
					t.Errorf("aborted npy set acked %d, want 0", acked)
				}
				// Acks come in write order.
				for i := 1; i < len(log.order); i++ {
					if indexOf(all, log.order[i]) < indexOf(all, log.order[i-1]) {
						t.Fatalf("ack order %v", log.order)
					}
				}
			})
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// pngIDs maps the visible PNG files back to ids.
func pngIDs(files map[string]bool, ids []string) map[string]bool {
	got := map[string]bool{}
	for _, id := range ids {
		rel, _ := filepath.Rel("/d", PNGPath("/d", id))
		if files[rel] {
			got[id] = true
		}
	}
	return got
}

// TestRefusedWriteFailsAcks: rows a writer refuses are acked with the error
// at once, not left pending.
func TestRefusedWriteFailsAcks(t *testing.T) {
	dir := t.TempDir()
	w, err := NewParquet(dir, Meta{Model: "m", Pool: "mean", Dim: 4}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := newAckLog()
	if err := w.Write([]Row{{ID: "short", Embedding: []float32{1}, Ack: log.ack("short")}}); err == nil {
		t.Fatal("wrong width accepted")
	}
	w.Close()
	if err := w.Write([]Row{{ID: "late", Embedding: make([]float32, 4), Ack: log.ack("late")}}); err == nil {
		t.Fatal("write after close accepted")
	}
	for _, id := range []string{"short", "late"} {
		if c := log.calls[id]; len(c) != 1 || c[0] == nil {
			t.Errorf("%s: acks %v, want one error", id, c)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files after refused writes: %v", ents)
	}
}

func TestJoinAck(t *testing.T) {
	var got []error
	ack := JoinAck(3, func(err error) { got = append(got, err) })
	ack(nil)
	boom := errors.New("boom")
	ack(boom)
	if len(got) != 0 {
		t.Fatal("acked before every output")
	}
	ack(nil)
	if len(got) != 1 || got[0] != boom {
		t.Fatalf("joined ack %v, want [boom]", got)
	}
}

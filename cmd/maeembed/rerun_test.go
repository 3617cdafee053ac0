package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maeembed/maeembed/sinks"
)

// treeState is every file under dir (hidden ones too) with its size and
// modification time: what a run that writes nothing leaves as it was.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st[rel] = fmt.Sprintf("%s %d", fi.ModTime().Format(time.RFC3339Nano), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A rerun with nothing left to do (every input already in a published
// part or in errors/) makes the run's checks without loading the model:
// no model is opened, nothing in the output changes, and its summary and
// exit status are the run's (a run that did load it printed the same
// lines). --fail-on-error still fails on the earlier run's error rows; one
// new input loads the model and is written.
func TestRerunWithNothingLeftLoadsNoModel(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	for _, tc := range []struct{ cmd, format string }{
		{"embed", "parquet"}, {"embed", "arrow"}, {"embed", "npy"},
		{"reconstruct", "npy"}, {"reconstruct", "parquet"}, {"reconstruct", "png"},
	} {
		t.Run(tc.cmd+"-"+tc.format, func(t *testing.T) {
			root := t.TempDir()
			in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
			tinyImages(t, in, "a.png", "b.png", "c.png")
			if err := os.WriteFile(filepath.Join(in, "bad.png"), []byte("not an image"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := func(more ...string) []string {
				return append([]string{tc.cmd, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--format", tc.format, "-o", out}, append(more, in)...)
			}
			loads := modelLoads.Load()
			first := runCounted(t, summary{3, 1, 0}, args()...)
			if got := modelLoads.Load() - loads; got != 1 {
				t.Fatalf("the first run loaded %d models, want 1", got)
			}
			if !strings.Contains(first, tc.cmd+": memory in flight (read + decoding): peak ") || strings.Contains(first, "peak 0 B") {
				t.Errorf("the first run's summary lacks its memory peak:\n%s", first)
			}
			before := treeState(t, out)

			loads = modelLoads.Load()
			stderr := runCounted(t, summary{0, 0, 4}, args()...)
			if got := modelLoads.Load() - loads; got != 0 {
				t.Errorf("a rerun with nothing left loaded %d models, want none", got)
			}
			for _, want := range []string{
				tc.cmd + ": nothing to do: every input was already done, 1 of them as errors\n",
				tc.cmd + ": 1 of the skipped inputs is recorded as failed in " + filepath.Join(out, "errors"),
				"the model is not loaded",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the rerun's summary lacks %q:\n%s", want, stderr)
				}
			}
			// It decoded nothing: no "peak 0 B of a 1 GiB budget".
			if strings.Contains(stderr, "memory in flight") {
				t.Errorf("the rerun's summary reports a memory peak of nothing:\n%s", stderr)
			}
			if strings.Contains(stderr, "model loaded") {
				t.Errorf("the rerun logged a model load:\n%s", stderr)
			}
			if after := treeState(t, out); !maps.Equal(before, after) {
				t.Errorf("a rerun with nothing left changed the output:\nbefore %v\nafter  %v", before, after)
			}

			// The earlier run's failure still fails a --fail-on-error rerun.
			loads = modelLoads.Load()
			code, _, stderr := maeembed(t, args("--fail-on-error")...)
			if code != 1 || !strings.Contains(stderr, "1 input failed in an earlier run into "+out) || modelLoads.Load() != loads {
				t.Errorf("--fail-on-error rerun: exit %d, %d models loaded, want exit 1 naming the earlier failure, none loaded\n%s", code, modelLoads.Load()-loads, stderr)
			}

			// Something left: the model loads and the new input is written.
			tinyImages(t, in, "d.png")
			loads = modelLoads.Load()
			runCounted(t, summary{1, 0, 4}, args()...)
			if got := modelLoads.Load() - loads; got != 1 {
				t.Errorf("a rerun with one new input loaded %d models, want 1", got)
			}
		})
	}
}

// A rerun with nothing left but other settings (another pool, seed,
// precision) or other weights at the same model path is refused as the
// run refused it when it loaded the model, with the dry run's exit code,
// without loading it.
func TestRerunWithNothingLeftChecksSettings(t *testing.T) {
	root := t.TempDir()
	in, mdl := filepath.Join(root, "in"), filepath.Join(root, "mdl")
	tinyImages(t, in, "a.png", "b.png")
	hf := filepath.Join(fixtures, "tiny32", "hf")
	copyFile(t, filepath.Join(hf, "config.json"), filepath.Join(mdl, "config.json"))
	copyFile(t, filepath.Join(hf, "model.safetensors"), filepath.Join(mdl, "model.safetensors"))
	for _, tc := range []struct {
		cmd, format string
		other       []string
		want        string
	}{
		{"embed", "parquet", []string{"--pool", "cls"}, "maeembed.pool"},
		{"embed", "npy", []string{"--precision", "int8"}, "maeembed.precision"},
		{"reconstruct", "png", []string{"--seed", "7"}, "maeembed.seed"},
		{"reconstruct", "parquet", []string{"--mask-ratio", "0.5"}, "maeembed.mask_ratio"},
	} {
		out := filepath.Join(root, tc.cmd+"-"+tc.format)
		args := func(more ...string) []string {
			return append([]string{tc.cmd, "-m", mdl, "--resize", "none", "--format", tc.format, "-o", out}, append(more, in)...)
		}
		mustRun(t, args()...)
		loads := modelLoads.Load()
		code, _, stderr := maeembed(t, args(tc.other...)...)
		dry, stdout, _ := maeembed(t, args(append(tc.other, "--dry-run")...)...)
		if code == 0 || code != dry || stdout != "" || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "use another output directory") {
			t.Errorf("%s %s %v with nothing left: exit %d (dry run %d, listed %q), want the refusal naming %s\n%s", tc.cmd, tc.format, tc.other, code, dry, stdout, tc.want, stderr)
		}
		if got := modelLoads.Load() - loads; got != 0 {
			t.Errorf("%s %s %v: %d models loaded to refuse a rerun with nothing left, want none", tc.cmd, tc.format, tc.other, got)
		}
	}

	// Other weights at the same path: refused naming the output's.
	st := filepath.Join(mdl, "model.safetensors")
	b, err := os.ReadFile(st)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40 // one bit of the last tensor value
	if err := os.WriteFile(st, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "embed-parquet")
	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	tbl, kv, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	tbl.Release()
	loads := modelLoads.Load()
	code, _, stderr := maeembed(t, "embed", "-m", mdl, "--resize", "none", "-o", out, in)
	if code != 1 || !strings.Contains(stderr, kv["maeembed.weights"]) || !strings.Contains(stderr, "maeembed.weights") {
		t.Errorf("a rerun with nothing left and other weights: exit %d, want a refusal naming the output's weights %s\n%s", code, kv["maeembed.weights"], stderr)
	}
	if got := modelLoads.Load() - loads; got != 0 {
		t.Errorf("%d models loaded to refuse other weights, want none", got)
	}
}

// liveSettings makes out look written by a live run of kind that has
// published nothing yet, with the settings (maeembed.* keys) a run
// recorded in the file at path: its kind lock held, as a live run holds
// it (flocks are per open file, so this process holding it is as good as
// another), and those settings recorded as that run's writers record
// them.
func liveSettings(t *testing.T, out, kind, path string) (release func() error) {
	t.Helper()
	var kv map[string]string
	if filepath.Ext(path) == ".json" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &kv); err != nil {
			t.Fatal(err)
		}
	} else {
		tbl, md, err := sinks.ReadParquet(path)
		if err != nil {
			t.Fatal(err)
		}
		tbl.Release()
		kv = md
	}
	var keys, vals []string
	for k, v := range kv {
		if strings.HasPrefix(k, "maeembed.") {
			keys, vals = append(keys, k), append(vals, v)
		}
	}
	release, _, err := sinks.TakeOutputKind(out, kind)
	if err != nil {
		t.Fatal(err)
	}
	if err := sinks.LiveRunSettings(out, keys, vals); err != nil {
		release()
		t.Fatal(err)
	}
	return release
}

// --dry-run beside a live run of its kind (another shard) that has
// published nothing yet but recorded its settings: with other settings it
// is refused as the run is (it said all was well, and the run was then
// refused), with the run's exit code and message; with the same settings
// it lists what the shard would process. Parquet embeddings, npy sets and
// PNG panels alike.
func TestDryRunBesideLiveRunWithOtherSettings(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	root := t.TempDir()
	in := filepath.Join(root, "in")
	tinyImages(t, in, "a.png", "b.png", "c.png", "d.png")
	for _, tc := range []struct {
		cmd, format, shards, recorded string
		other                         []string
		want                          string
	}{
		{"embed", "parquet", "2", "part-00000.parquet", []string{"--pool", "cls"}, "maeembed.pool"},
		{"embed", "arrow", "2", "part-00000.parquet", []string{"--precision", "bf16"}, "maeembed.precision"},
		{"reconstruct", "png", "2", "maeembed-png.json", []string{"--seed", "7"}, "maeembed.seed"},
		{"reconstruct", "parquet", "2", "part-00000.parquet", []string{"--mask-ratio", "0.5"}, "maeembed.mask_ratio"},
	} {
		name := tc.cmd + "-" + tc.format
		args := func(out string, more ...string) []string {
			return append([]string{tc.cmd, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "-o", out}, append(more, in)...)
		}
		// The settings a live shard records: those of a run like it
		// (Parquet parts record the settings of an Arrow run too).
		ref := filepath.Join(root, name+"-ref")
		refFormat := tc.format
		if refFormat == "arrow" {
			refFormat = "parquet"
		}
		mustRun(t, args(ref, "--format", refFormat)...)
		out := filepath.Join(root, name)
		release := liveSettings(t, out, tc.cmd+"-"+tc.format+"-"+tc.shards+"-shards", filepath.Join(ref, tc.recorded))
		shard := []string{"--format", tc.format, "--shard", "0/" + tc.shards}

		code, stdout, stderr := maeembed(t, args(out, append(shard, "--dry-run")...)...)
		if code != 0 || len(strings.Fields(stdout)) != 2 {
			t.Errorf("%s: dry run beside a live shard with its settings: exit %d, listed %q, want shard 0's two ids\n%s", name, code, stdout, stderr)
		}
		other := append(slices.Clone(shard), tc.other...)
		dry, stdout, dryErr := maeembed(t, args(out, append(other, "--dry-run")...)...)
		run, _, runErr := maeembed(t, args(out, other...)...)
		for _, s := range []string{dryErr, runErr} {
			if !strings.Contains(s, "being written by a live run of this kind") || !strings.Contains(s, tc.want) {
				t.Errorf("%s %v beside a live shard: want a refusal naming the live run and %s\n%s", name, tc.other, tc.want, s)
			}
		}
		if dry == 0 || dry != run || stdout != "" {
			t.Errorf("%s %v beside a live shard: dry run exit %d (listed %q), the run %d: want the run's refusal", name, tc.other, dry, stdout, run)
		}
		if ids := visibleIDs(t, out); len(ids) != 0 {
			t.Errorf("%s: the refused run wrote %v", name, ids)
		}
		if pngs, _ := filepath.Glob(filepath.Join(out, "*.png")); len(pngs) != 0 {
			t.Errorf("%s: the refused run wrote %v", name, pngs)
		}
		release()
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

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
	release, err := sinks.LockOutputKind(out, kind)
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

package main

// End-to-end tests of the batch commands through the real CLI: real photos
// and broken files in, Parquet/npy out, read back by DuckDB; kill -9 and
// Ctrl-C in the middle of a run, then resume.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/maeembed/maeembed/sinks"
)

// e2eSkipOrFail skips a test whose external tool or data is missing, unless
// MAEEMBED_REQUIRE_TOOLS=1 (CI), where a missing tool is a failure.
func e2eSkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("MAEEMBED_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Photos shipped by Debian's python3-skimage and python3-sklearn (PNG and
// JPEG, grey, palette, 300 to 1411 pixels), plus skimage's own truncated
// JPEG, which PIL refuses too.
const (
	skimageData = "/usr/lib/python3/dist-packages/skimage/data"
	sklearnData = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
)

var e2ePhotos = []string{
	skimageData + "/astronaut.png", skimageData + "/camera.png", skimageData + "/chelsea.png",
	skimageData + "/coffee.png", skimageData + "/green_palette.png", skimageData + "/hubble_deep_field.jpg",
	skimageData + "/motorcycle_left.png", skimageData + "/page.png", skimageData + "/retina.jpg",
	skimageData + "/rocket.jpg", sklearnData + "/china.jpg", sklearnData + "/flower.jpg",
}

const e2eTruncatedPhoto = skimageData + "/truncated.jpg"

// The odd files of stages/testdata/gen_odd.py that must fail, and how.
var e2eBadOdd = map[string]string{
	"truncated.jpg":          "unexpected EOF",
	"empty.jpg":              "empty input",
	"not-an-image.jpg":       "unknown format",
	"bomb-100000x100000.png": "more than a 69-byte PNG can hold: corrupt header",
}

const oddDir = "../../stages/testdata/odd"

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(src, "/usr/") {
		e2eSkipOrFail(t, "photo %s missing: apt-get install -y python3-skimage python3-sklearn", src)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// e2eInputs builds IN/photos (real photos) and IN/odd (every odd fixture)
// and returns the root, the ids that must embed and the ids that must fail
// (with a substring of their error).
func e2eInputs(t *testing.T) (root string, good []string, bad map[string]string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "in")
	bad = map[string]string{}
	for _, p := range e2ePhotos {
		copyFile(t, p, filepath.Join(root, "photos", filepath.Base(p)))
		good = append(good, "photos/"+filepath.Base(p))
	}
	copyFile(t, e2eTruncatedPhoto, filepath.Join(root, "photos", "truncated.jpg"))
	bad["photos/truncated.jpg"] = "unexpected EOF"
	ents, err := os.ReadDir(oddDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(oddDir, e.Name()), filepath.Join(root, "odd", e.Name()))
		if msg, ok := e2eBadOdd[e.Name()]; ok {
			bad["odd/"+e.Name()] = msg
		} else {
			good = append(good, "odd/"+e.Name())
		}
	}
	if len(bad) != len(e2eBadOdd)+1 {
		t.Fatalf("odd fixtures missing: bad %v", bad)
	}
	sort.Strings(good)
	return root, good, bad
}

// duckQuery runs sql in DuckDB (npm @duckdb/node-api, installed by CI in
// sinks/testdata/duckdb) and returns its rows.
func duckQuery(t *testing.T, sql string) []map[string]json.RawMessage {
	t.Helper()
	dir, err := filepath.Abs("../../sinks/testdata/duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		e2eSkipOrFail(t, "DuckDB reader not installed: run `npm ci` in sinks/testdata/duckdb")
	}
	cmd := exec.Command("node", "query.mjs", sql)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb %q: %v\n%s", sql, err, stderr.String())
	}
	var r struct {
		Rows []map[string]json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("duckdb output: %v\n%s", err, out)
	}
	return r.Rows
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// fixturePhotoSQL is tiny32's fixture photo img_00N.png (N = i) as an
// absolute path in an SQL string literal, for DuckDB's read_blob.
func fixturePhotoSQL(t *testing.T, i int) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "images", fmt.Sprintf("img_%03d.png", i)))
	if err != nil {
		t.Fatal(err)
	}
	return sqlString(p)
}

func jsonField[T any](t *testing.T, row map[string]json.RawMessage, k string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(row[k], &v); err != nil {
		t.Fatalf("column %s = %s: %v", k, row[k], err)
	}
	return v
}

// summaryCounts reads the counts line of the human summary.
var summaryRe = regexp.MustCompile(`(?m)^(\w+): (\d+) images? written, (\d+) errors?, (\d+) skipped`)

func summaryCounts(t *testing.T, stderr string) (written, failed, skipped int) {
	t.Helper()
	m := summaryRe.FindAllStringSubmatch(stderr, -1)
	if len(m) == 0 {
		t.Fatalf("no summary on stderr:\n%s", stderr)
	}
	last := m[len(m)-1]
	fmt.Sscan(last[2], &written)
	fmt.Sscan(last[3], &failed)
	fmt.Sscan(last[4], &skipped)
	return
}

// summary is the counts line of a run's human summary.
type summary struct{ written, failed, skipped int }

// runCounted runs maeembed in-process (embed or reconstruct) and fails the
// test unless it exits 0 with the summary counts want; it returns stderr.
func runCounted(t *testing.T, want summary, args ...string) string {
	t.Helper()
	code, _, stderr := maeembed(t, args...)
	if code != 0 {
		t.Fatalf("maeembed %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	var got summary
	got.written, got.failed, got.skipped = summaryCounts(t, stderr)
	if got != want {
		t.Fatalf("maeembed %s: %d written, %d errors, %d skipped; want %d, %d, %d\n%s", strings.Join(args, " "),
			got.written, got.failed, got.skipped, want.written, want.failed, want.skipped, stderr)
	}
	return stderr
}

// Real photos and every odd file: each good file gives exactly one row with
// its original size, each bad one exactly one error row (stage decode), the
// run exits 0 and reports the counts; DuckDB reads the Parquet and its
// vectors equal the npy output's; --fail-on-error turns the same run into
// exit 1.
func TestE2EPhotosAndOddFiles(t *testing.T) {
	root, good, bad := e2eInputs(t)
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf"), "--batch-size", "4"}
	out, outNpy := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "npy")

	stderr := runCounted(t, summary{len(good), len(bad), 0}, append([]string{"embed", "-o", out, root}, model...)...)
	for _, stage := range []string{"read", "preprocess", "batch", "model", "write"} {
		if !regexp.MustCompile(`(?m)^` + stage + ` +\d+ +\d+`).MatchString(stderr) {
			t.Errorf("summary lacks stage %s:\n%s", stage, stderr)
		}
	}

	// Embeddings, read by DuckDB.
	rows := duckQuery(t, "SELECT id, width, height, embedding FROM read_parquet("+sqlString(filepath.Join(out, "part-*.parquet"))+") ORDER BY id")
	var ids []string
	parquetVec := map[string][]float32{}
	size := map[string][2]int{}
	for _, r := range rows {
		id := jsonField[string](t, r, "id")
		ids = append(ids, id)
		parquetVec[id] = jsonField[[]float32](t, r, "embedding")
		size[id] = [2]int{jsonField[int](t, r, "width"), jsonField[int](t, r, "height")}
	}
	if !slices.Equal(ids, good) {
		t.Errorf("embedded ids (each once):\n got %v\nwant %v", ids, good)
	}
	for id, wh := range map[string][2]int{
		"photos/astronaut.png": {512, 512}, "photos/chelsea.png": {451, 300}, "photos/china.jpg": {640, 427},
		"odd/exif-orientation-6.jpg": {48, 32}, "odd/cmyk.jpg": {48, 32}, "odd/animated.gif": {48, 32},
	} {
		if size[id] != wh {
			t.Errorf("%s: width, height %v, want %v (original, upright)", id, size[id], wh)
		}
	}

	// Error rows, read by DuckDB.
	erows := duckQuery(t, "SELECT id, stage, error FROM read_parquet("+sqlString(filepath.Join(out, "errors", "*.parquet"))+") ORDER BY id")
	seen := map[string]int{}
	for _, r := range erows {
		id, stage, msg := jsonField[string](t, r, "id"), jsonField[string](t, r, "stage"), jsonField[string](t, r, "error")
		seen[id]++
		if want, ok := bad[id]; !ok || stage != "decode" || !strings.Contains(msg, want) {
			t.Errorf("error row %s stage %s %q; want stage decode mentioning %q", id, stage, msg, want)
		}
	}
	for id := range bad {
		if seen[id] != 1 {
			t.Errorf("%s has %d error rows, want 1", id, seen[id])
		}
	}

	// The npy output of the same run holds the same vectors, row for row.
	mustRun(t, append([]string{"embed", "--format", "npy", "-o", outNpy, root}, model...)...)
	shape, vals := npy(t, filepath.Join(outNpy, "embeddings.npy"))
	tbl, _, err := sinks.ReadParquet(filepath.Join(outNpy, "metadata.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	meta := tbl.Column(0).Data().Chunk(0).(*array.String)
	if shape[0] != len(good) || meta.Len() != len(good) {
		t.Fatalf("npy has %v rows and %d ids, want %d", shape, meta.Len(), len(good))
	}
	dim := shape[1]
	for i := 0; i < meta.Len(); i++ {
		id := meta.Value(i)
		want := vals[i*dim : (i+1)*dim]
		if got := parquetVec[id]; !slices.Equal(got, want) {
			t.Errorf("%s: Parquet (via DuckDB) and npy vectors differ (max %g)", id, maxAbs(t, got, want))
		}
	}

	// --fail-on-error: same inputs, non-zero exit naming the count.
	code, _, stderr := maeembed(t, append([]string{"embed", "--fail-on-error", "-o", filepath.Join(t.TempDir(), "o"), root}, model...)...)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("%d inputs failed (see ", len(bad))) {
		t.Errorf("--fail-on-error: exit %d, want 1 with the count\n%s", code, lastLine(stderr))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// With --resize none and a 32×32 model, the 48×32 odd files fail in the
// resize stage and the undecodable ones in decode: one error row each, with
// the stage that failed.
func TestE2EErrorStages(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	ents, err := os.ReadDir(oddDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(oddDir, e.Name()), filepath.Join(root, e.Name()))
	}
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "square32.png"))
	out := t.TempDir()
	runCounted(t, summary{1, len(ents), 0}, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "-o", out, root)
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	ids := tbl.Column(0).Data().Chunk(0).(*array.String)
	stages := tbl.Column(1).Data().Chunk(0).(*array.String)
	got := map[string]string{}
	for i := 0; i < ids.Len(); i++ {
		if _, dup := got[ids.Value(i)]; dup {
			t.Errorf("%s: two error rows", ids.Value(i))
		}
		got[ids.Value(i)] = stages.Value(i)
	}
	for _, e := range ents {
		want := "resize"
		if _, ok := e2eBadOdd[e.Name()]; ok {
			want = "decode"
		}
		if got[e.Name()] != want {
			t.Errorf("%s: stage %q, want %q", e.Name(), got[e.Name()], want)
		}
	}
}

// writePNGs makes n distinct 32×32 noise PNGs in dir.
func writePNGs(t *testing.T, dir string, n int) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	ids := make([]string, n)
	for i := range ids {
		for j := 0; j < len(img.Pix); j += 4 {
			img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 255
		}
		img.Set(0, 0, color.NRGBA{uint8(i), uint8(i >> 8), 0, 255})
		ids[i] = fmt.Sprintf("img_%05d.png", i)
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ids[i]), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// buildCLI builds the maeembed binary into a test directory (kill and
// signal tests need a real process).
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "maeembed")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// visibleIDs opens every visible part file of out (each must be a complete
// Parquet file) and counts the ids in them.
func visibleIDs(t *testing.T, out string) map[string]int {
	t.Helper()
	ids := partIDs(t, out, "part-*.parquet")
	for id, n := range partIDs(t, out, "errors/part-*.parquet") {
		ids[id] += n
	}
	return ids
}

func checkNoDuplicates(t *testing.T, ids map[string]int, when string) {
	t.Helper()
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s: id %s appears %d times", when, id, n)
		}
	}
}

// kill -9 at random moments of a run that publishes a part every 8 rows:
// after each kill every visible file opens and no id is duplicated; reruns
// resume and the last one completes the set, every id exactly once. The
// moments are read from the output directory, not from a clock, so they
// land mid-run however loaded the machine: after 1 to 3 new parts are
// published, and half the time also once the next part's temporary exists
// (a kill while a part is being written).
func TestE2EKillAndResume(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	want := writePNGs(t, in, 300)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none",
		"--batch-size", "2", "--max-file-rows", "8", "-o", out, in}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	parts := func() int {
		p, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
		return len(p)
	}
	partial := 0
	for kill := 0; kill < 6; kill++ {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		var err error
		go func() { err = cmd.Wait(); close(exited) }()
		target, midPart := parts()+1+rng.IntN(3), rng.IntN(2) == 0
		deadline := time.Now().Add(time.Minute)
	poll:
		for {
			select {
			case <-exited:
				break poll // finished (or failed) before the moment came
			default:
			}
			if parts() >= target {
				tmp, _ := filepath.Glob(filepath.Join(out, ".part-*.maeembed-tmp"))
				if !midPart || len(tmp) > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-exited
				t.Fatalf("kill %d: %d parts within a minute, waiting for %d\n%s", kill, parts(), target, stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		ids := visibleIDs(t, out)
		checkNoDuplicates(t, ids, fmt.Sprintf("after kill %d", kill))
		if err != nil && len(ids) < len(want) {
			partial++
		}
		t.Logf("kill %d: %d ids visible (%v)", kill, len(ids), err)
		if err == nil {
			break // finished before the kill: nothing more to interrupt
		}
	}
	if partial == 0 {
		t.Fatal("no kill landed in the middle of a run")
	}
	cmd := exec.Command(bin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, b)
	}
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after the final run")
	for _, id := range want {
		if ids[id] != 1 {
			t.Errorf("%s: %d rows after resume, want 1", id, ids[id])
		}
	}
	if len(ids) != len(want) {
		t.Errorf("%d ids, want %d", len(ids), len(want))
	}
	rows := duckQuery(t, "SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM read_parquet("+sqlString(filepath.Join(out, "part-*.parquet"))+")")
	if n, d := jsonField[int](t, rows[0], "n"), jsonField[int](t, rows[0], "d"); n != len(want) || d != len(want) {
		t.Errorf("DuckDB counts %d rows, %d distinct ids; want %d", n, d, len(want))
	}
}

// SIGINT drains: the images in flight are finished and published, the
// process exits 1 after its summary, and a rerun completes the rest.
func TestE2ESIGINTDrains(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	want := writePNGs(t, in, 1500)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none",
		"--batch-size", "2", "--max-file-rows", "40", "-o", out, in}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Interrupt once the first part is published: mid-run.
	startUntil(t, cmd, "published part", 30*time.Second, func() bool {
		parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
		return len(parts) > 0
	})
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("after SIGINT: %v, want exit status 1\n%s", err, stderr.String())
	}
	log := stderr.String()
	if !strings.Contains(lastLine(log), "interrupted") {
		t.Errorf("last line %q does not say it was interrupted", lastLine(log))
	}
	written, _, _ := summaryCounts(t, log)
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after SIGINT")
	if written == 0 || written >= len(want) || len(ids) != written {
		t.Fatalf("after SIGINT: summary says %d written, %d ids visible; want the same, between 1 and %d", written, len(ids), len(want)-1)
	}
	if tmp, _ := filepath.Glob(filepath.Join(out, ".*")); len(tmp) > 0 {
		t.Errorf("a drained run left temporary files: %v", tmp)
	}

	b, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	if w, _, s := summaryCounts(t, string(b)); s != written || w != len(want)-written {
		t.Errorf("resume: %d written, %d skipped; want %d, %d", w, s, len(want)-written, written)
	}
	ids = visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after resume")
	if len(ids) != len(want) {
		t.Errorf("%d ids after resume, want %d", len(ids), len(want))
	}
}

// Two shards started one after the other into one directory (which the
// README allows): the second's start-up leaves the first's part in
// progress alone and both complete, every id once. (That a second run of
// the same shard is refused is TestOutputLockedPerShard: here the first
// run may well be over before another could start.)
func TestE2EConcurrentShardsShareOutput(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	want := writePNGs(t, in, 1200)
	out := filepath.Join(t.TempDir(), "out")
	args := func(shard string) []string {
		return []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "--batch-size", "1", "--shard", shard, "-o", out, in}
	}
	first := exec.Command(bin, args("0/2")...)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	if !poll(time.Minute, 5*time.Millisecond, func() bool {
		tmp, _ := filepath.Glob(filepath.Join(out, ".part-*"+".maeembed-tmp"))
		return len(tmp) > 0 // the first shard has a part in progress
	}) {
		first.Process.Kill()
		t.Fatalf("no part in progress within a minute\n%s", firstErr.String())
	}
	if b, err := exec.Command(bin, args("1/2")...).CombinedOutput(); err != nil {
		t.Fatalf("shard 1/2: %v\n%s", err, b)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("shard 0/2 (started first): %v\n%s", err, firstErr.String())
	}
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "two shards")
	if len(ids) != len(want) {
		t.Errorf("%d ids in the shared output, want %d", len(ids), len(want))
	}
}

// A batch run publishes its part on the --flush-interval timer, not only
// when 100,000 rows fill it: a part is visible while the run goes on, and
// a kill -9 then keeps it.
func TestE2EBatchFlushInterval(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 1500)
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none",
		"--batch-size", "1", "--flush-interval", "20ms", "-o", out, in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before any part was published on the timer\n%s", err, stderr.String())
		default:
		}
		if parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet")); len(parts) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after the kill")
	if len(ids) == 0 || len(ids) >= 1500 {
		t.Errorf("%d ids visible after a kill mid-run, want some but not all", len(ids))
	}
}

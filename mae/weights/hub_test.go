package weights

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// fakeServer serves body at every path and counts requests.
type fakeServer struct {
	*httptest.Server
	body     []byte
	requests atomic.Int32
	paths    chan string
}

func newFakeServer(t *testing.T, body []byte, handler func(w http.ResponseWriter, r *http.Request)) *fakeServer {
	t.Helper()
	fs := &fakeServer{body: body, paths: make(chan string, 16)}
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			// Several writes so that progress has something to report.
			for i := 0; i < len(body); i += 4096 {
				w.Write(body[i:min(i+4096, len(body))])
			}
		}
	}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.requests.Add(1)
		select {
		case fs.paths <- r.URL.Path:
		default:
		}
		handler(w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func fakeCheckpoint() []byte {
	b := make([]byte, 100_000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func md5Prefix(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])[:6]
}

func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestHubDownload(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	cache := t.TempDir()
	var prog, logs bytes.Buffer
	h := &Hub{
		CacheDir: cache, BaseURL: srv.URL + "/mae", Progress: &prog,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		MD5:           map[string]string{"pretrain/mae_pretrain_vit_base.pth": md5Prefix(body)},
		ProgressEvery: time.Nanosecond,
	}
	path, err := h.Resolve(context.Background(), "mae_vit_base_patch16")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "pretrain", "mae_pretrain_vit_base.pth"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	if p := <-srv.paths; p != "/mae/pretrain/mae_pretrain_vit_base.pth" {
		t.Errorf("requested %s", p)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, body) {
		t.Errorf("downloaded %d bytes differ from the served %d", len(got), len(body))
	}
	sum := sha256.Sum256(body)
	side, _ := os.ReadFile(path + ".sha256")
	if want := hex.EncodeToString(sum[:]) + "  mae_pretrain_vit_base.pth\n"; string(side) != want {
		t.Errorf(".sha256 = %q, want %q", side, want)
	}
	if files := listAll(t, cache); len(files) != 2 {
		t.Errorf("cache holds %v, want the checkpoint and its .sha256", files)
	}
	if !strings.Contains(prog.String(), "(100.0%") || !strings.Contains(prog.String(), "done") || strings.Count(prog.String(), "\r") < 3 {
		t.Errorf("progress output %q", prog.String())
	}

	// Cached: no second request, for every spelling of the name.
	for _, name := range []string{"mae_vit_base_patch16", "mae_pretrain_vit_base", "mae_pretrain_vit_base.pth"} {
		p2, err := h.Resolve(context.Background(), name)
		if err != nil || p2 != path {
			t.Errorf("Resolve(%s) = %s, %v; want %s", name, p2, err, path)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestHubChecksumMismatch(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	cache := t.TempDir()
	h := &Hub{CacheDir: cache, BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		MD5:    map[string]string{"finetune/mae_finetuned_vit_large.pth": "000000"}}
	_, err := h.Resolve(context.Background(), "mae_finetuned_vit_large")
	if err == nil {
		t.Fatal("a mismatching download was accepted")
	}
	for _, want := range []string{srv.URL + "/finetune/mae_finetuned_vit_large.pth", "000000", md5Prefix(body)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if files := listAll(t, cache); len(files) != 0 {
		t.Errorf("cache holds %v after a failed download", files)
	}
}

// The published table is what a Hub without overrides verifies against.
func TestHubPublishedChecksums(t *testing.T) {
	srv := newFakeServer(t, fakeCheckpoint(), nil)
	h := &Hub{CacheDir: t.TempDir(), BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
	_, err := h.Resolve(context.Background(), "mae_vit_huge_patch14")
	if err == nil || !strings.Contains(err.Error(), "9bdbb0") {
		t.Errorf("error %v, want a mismatch against the published 9bdbb0", err)
	}
}

func TestHubNoPublishedChecksum(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	var logs bytes.Buffer
	h := &Hub{CacheDir: t.TempDir(), BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	path, err := h.Resolve(context.Background(), "mae_visualize_vit_large_ganloss")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, filepath.Join("visualize", "mae_visualize_vit_large_ganloss.pth")) {
		t.Errorf("path %s", path)
	}
	if !strings.Contains(logs.String(), "no published checksum") {
		t.Errorf("log does not say the file is unverified:\n%s", logs.String())
	}
	if _, err := os.Stat(path + ".sha256"); err != nil {
		t.Error(err)
	}
}

func TestHubInterrupted(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, func(w http.ResponseWriter, r *http.Request) {
		// Announce the whole file, send a third, then drop the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/3])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	cache := t.TempDir()
	var prog bytes.Buffer
	h := &Hub{CacheDir: cache, BaseURL: srv.URL, Progress: &prog,
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		MD5:    map[string]string{"pretrain/mae_pretrain_vit_base.pth": md5Prefix(body)}}
	_, err := h.Resolve(context.Background(), "mae_vit_base_patch16")
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("error %v, want an interrupted download naming the URL", err)
	}
	if files := listAll(t, cache); len(files) != 0 {
		t.Errorf("cache holds %v after an interrupted download", files)
	}
	if !strings.Contains(prog.String(), "failed") {
		t.Errorf("progress %q does not report the failure", prog.String())
	}
}

func TestHubHTTPErrorAndCancel(t *testing.T) {
	srv := newFakeServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "large") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	cache := t.TempDir()
	h := &Hub{CacheDir: cache, BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
	_, err := h.Resolve(context.Background(), "mae_vit_large_patch16")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("error %v, want 404", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = h.Resolve(ctx, "mae_vit_base_patch16")
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("error %v, want the context's", err)
	}
	if files := listAll(t, cache); len(files) != 0 {
		t.Errorf("cache holds %v after failed downloads", files)
	}
}

func TestHubLocalPathsAndUnknownNames(t *testing.T) {
	h := NewHub(t.TempDir())
	h.BaseURL = "http://127.0.0.1:1" // never contacted
	for _, p := range []string{"testdata/pretrain_zip.pth", "testdata/hf_bin"} {
		got, err := h.Resolve(context.Background(), p)
		if err != nil || got != p {
			t.Errorf("Resolve(%s) = %s, %v", p, got, err)
		}
	}
	_, err := h.Resolve(context.Background(), "mae_vit_tiny_patch16")
	if err == nil || !strings.Contains(err.Error(), "mae_vit_tiny_patch16") || !strings.Contains(err.Error(), "mae_vit_base_patch16") {
		t.Errorf("error %v, want one naming the input and the presets", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "/some/where")
	if d, err := DefaultCacheDir(); err != nil || d != "/some/where" {
		t.Errorf("DefaultCacheDir() = %s, %v", d, err)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := DefaultCacheDir(); err != nil || d != "/xdg/maeembed" {
		t.Errorf("DefaultCacheDir() = %s, %v", d, err)
	}
}

func TestPresets(t *testing.T) {
	want := map[string]string{
		"mae_vit_base_patch16":            "pretrain/mae_pretrain_vit_base.pth",
		"mae_vit_large_patch16":           "pretrain/mae_pretrain_vit_large.pth",
		"mae_vit_huge_patch14":            "pretrain/mae_pretrain_vit_huge.pth",
		"mae_visualize_vit_base":          "visualize/mae_visualize_vit_base.pth",
		"mae_visualize_vit_large":         "visualize/mae_visualize_vit_large.pth",
		"mae_visualize_vit_large_ganloss": "visualize/mae_visualize_vit_large_ganloss.pth",
		"mae_finetuned_vit_huge":          "finetune/mae_finetuned_vit_huge.pth",
		"mae_pretrain_vit_large":          "pretrain/mae_pretrain_vit_large.pth",
	}
	for name, f := range want {
		if got, ok := PresetFile(name); !ok || got != f {
			t.Errorf("PresetFile(%s) = %s, %v; want %s", name, got, ok, f)
		}
	}
	if n := len(Presets()); n != 12 {
		t.Errorf("%d presets, want 12", n)
	}
}

// Progress to a file (a batch job's redirected stderr) is line by line, not
// rewritten with carriage returns.
func TestHubProgressToFile(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &Hub{CacheDir: t.TempDir(), BaseURL: srv.URL, Progress: f, ProgressEvery: time.Nanosecond,
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		MD5:    map[string]string{"visualize/mae_visualize_vit_base.pth": md5Prefix(body)}}
	if _, err := h.Resolve(context.Background(), "mae_visualize_vit_base"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Contains(string(b), "\r") || len(lines) < 3 ||
		!strings.Contains(lines[len(lines)-2], "(100.0%") || lines[len(lines)-1] != "mae_visualize_vit_base.pth: done" {
		t.Errorf("progress log:\n%s", b)
	}
}

// TestHubOfflineNamesTheRemedies: on a machine without network the error
// says what to do instead: a local checkpoint (--model FILE), the URL and
// checksum to fetch it elsewhere and the cache path to copy it to, or a
// mirror in MAEEMBED_HUB_URL, which a Hub without BaseURL uses.
func TestHubOfflineNamesTheRemedies(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(HubURLEnv, "http://127.0.0.1:1/mirror") // nothing listens on port 1
	h := &Hub{CacheDir: cache, Progress: &bytes.Buffer{}, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
	_, err := h.Resolve(context.Background(), "mae_vit_base_patch16")
	var de *DownloadError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a DownloadError", err)
	}
	t.Log(err)
	for _, want := range []string{
		"--model FILE",
		"http://127.0.0.1:1/mirror/pretrain/mae_pretrain_vit_base.pth",
		"md5 starting with 8cad7c",
		filepath.Join(cache, "pretrain", "mae_pretrain_vit_base.pth"),
		"MAEEMBED_HUB_URL", DefaultBaseURL,
		"connection refused",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	// A checkpoint without a published checksum says so.
	_, err = h.Resolve(context.Background(), "mae_visualize_vit_base")
	if err == nil || !strings.Contains(err.Error(), "no published checksum") {
		t.Errorf("err = %v", err)
	}
}

// A download killed before left a hidden ".NAME.part-N" as large as what
// it got; the next download of that checkpoint removes it, but not the
// one a concurrent download holds, nor one that changed in the last
// seconds.
func TestHubRemovesKilledDownloadsPart(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	cache := t.TempDir()
	dir := filepath.Join(cache, "pretrain")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, soon := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	part := func(name string, at time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("half a checkpoint"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, at, at)
		return p
	}
	dead := part(".mae_pretrain_vit_base.pth.part-3768532552", old)
	recent := part(".mae_pretrain_vit_base.pth.part-2222", soon)
	live, err := atomicfile.Create(filepath.Join(dir, "mae_pretrain_vit_base.pth"), ".mae_pretrain_vit_base.pth.part-*")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	os.Chtimes(live.Name(), old, old)
	other := part(".mae_pretrain_vit_large.pth.part-1", old)
	var logged bytes.Buffer
	h := &Hub{CacheDir: cache, BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&logged, nil)),
		MD5:    map[string]string{"pretrain/mae_pretrain_vit_base.pth": md5Prefix(body)}}
	if _, err := h.Resolve(context.Background(), "mae_vit_base_patch16"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); err == nil {
		t.Errorf("%s: a killed download's part is still there", dead)
	}
	// Said where the Hub says what it does (its Logger), not elsewhere.
	if !strings.Contains(logged.String(), "removed a killed run's temporary") || !strings.Contains(logged.String(), filepath.Base(dead)) {
		t.Errorf("the removal is not in the Hub's log:\n%s", logged.String())
	}
	for _, p := range []string{recent, live.Name(), other} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: removed, but it is a live download's, recent or another checkpoint's: %v", p, err)
		}
	}
}

// Locate downloads nothing and writes nothing: a preset not in the cache
// is the Download Resolve would make (URL, cache path, checksum, and the
// size a HEAD request reports); a cached one, or a local path, is its path.
func TestHubLocateFetchesNothing(t *testing.T) {
	body := fakeCheckpoint()
	var methods []string
	srv := newFakeServer(t, body, func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
	cache := filepath.Join(t.TempDir(), "cache")
	h := &Hub{CacheDir: cache, BaseURL: srv.URL + "/mae"}
	path, dl, err := h.Locate(context.Background(), "mae_finetuned_vit_large")
	want := filepath.Join(cache, "finetune", "mae_finetuned_vit_large.pth")
	if err != nil || dl == nil || path != want {
		t.Fatalf("Locate: %s, %+v, %v; want a download to %s", path, dl, err, want)
	}
	if dl.URL != srv.URL+"/mae/finetune/mae_finetuned_vit_large.pth" || dl.Path != want || dl.Size != int64(len(body)) ||
		dl.SizeErr != nil || dl.MD5 != "51f550" || dl.Kind != "finetune" || dl.Preset != "mae_finetuned_vit_large" {
		t.Errorf("Locate: %+v", dl)
	}
	if len(methods) != 1 || methods[0] != http.MethodHead {
		t.Errorf("requests %v, want one HEAD", methods)
	}
	if _, err := os.Lstat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Locate wrote into the cache: %v", err)
	}

	// Cached: its path, no request.
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, dl, err := h.Locate(context.Background(), "mae_finetuned_vit_large.pth"); p != want || dl != nil || err != nil {
		t.Errorf("Locate of a cached preset: %s, %+v, %v", p, dl, err)
	}
	// The server down (nothing listens): the run's download would fail,
	// so Locate fails with Resolve's error, word for word.
	srv.Close()
	h.Progress, h.Logger = &bytes.Buffer{}, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	_, dl, lerr := h.Locate(context.Background(), "mae_vit_huge_patch14")
	_, rerr := h.Resolve(context.Background(), "mae_vit_huge_patch14")
	var de *DownloadError
	if dl != nil || !errors.As(lerr, &de) || rerr == nil || lerr.Error() != rerr.Error() {
		t.Errorf("Locate with the server down: %+v, %v\nResolve: %v", dl, lerr, rerr)
	}
	if len(methods) != 1 {
		t.Errorf("requests %v", methods)
	}
}

// A download whose last step fails (the rename onto the cache path: here
// a directory is in the way) leaves neither its partial file nor the
// .sha256 it wrote just before, which would otherwise describe a
// checkpoint that is not there.
func TestHubFailedPublishLeavesNothing(t *testing.T) {
	body := fakeCheckpoint()
	srv := newFakeServer(t, body, nil)
	cache := t.TempDir()
	h := &Hub{CacheDir: cache, BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		MD5:    map[string]string{"pretrain/mae_pretrain_vit_base.pth": md5Prefix(body)}}
	dst := filepath.Join(cache, "pretrain", "mae_pretrain_vit_base.pth")
	if err := os.MkdirAll(filepath.Join(dst, "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.download(context.Background(), "pretrain/mae_pretrain_vit_base.pth", dst); err == nil {
		t.Fatal("publishing onto a directory succeeded")
	}
	if files := listAll(t, filepath.Join(cache, "pretrain")); len(files) != 0 {
		t.Errorf("cache holds %v after a failed publish", files)
	}
	if _, err := os.Lstat(dst + ".sha256"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.sha256 stayed after a failed publish: %v", dst, err)
	}
}

// A server that answers a HEAD request with 404 (a mirror without the
// file) fails Locate with the error Resolve's download gets there, word
// for word: the dry run refuses what the run would, as the run would say
// it. Any other status leaves the size unknown.
func TestHubLocateNotFoundIsResolvesError(t *testing.T) {
	status := http.StatusNotFound
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	h := &Hub{CacheDir: t.TempDir(), BaseURL: srv.URL, Progress: &bytes.Buffer{},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
	_, dl, lerr := h.Locate(context.Background(), "mae_pretrain_vit_base")
	_, rerr := h.Resolve(context.Background(), "mae_pretrain_vit_base")
	var de *DownloadError
	if dl != nil || !errors.As(lerr, &de) || rerr == nil || lerr.Error() != rerr.Error() {
		t.Errorf("Locate of a file the server does not have: %+v, %v\nResolve: %v", dl, lerr, rerr)
	}
	status = http.StatusMethodNotAllowed
	if _, dl, err := h.Locate(context.Background(), "mae_pretrain_vit_base"); err != nil || dl == nil || dl.Size != -1 || dl.SizeErr == nil {
		t.Errorf("Locate with HEAD not allowed: %+v, %v", dl, err)
	}
}

// MAEEMBED_CACHE='~/e' (quoted, so the shell left the ~) is ~/e in the
// home directory, not a directory named ~ where the command runs.
func TestDefaultCacheDirExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for env, want := range map[string]string{"~/e": filepath.Join(home, "e"), "~": home, "a/~": "a/~", "~u/e": "~u/e"} {
		t.Setenv(CacheEnv, env)
		if got, err := DefaultCacheDir(); got != want || err != nil {
			t.Errorf("%s=%s: %q, %v; want %q", CacheEnv, env, got, err, want)
		}
	}
	t.Setenv("HOME", "")
	t.Setenv(CacheEnv, "~/e")
	if _, err := DefaultCacheDir(); err == nil || !strings.Contains(err.Error(), CacheEnv) {
		t.Errorf("without a home directory: %v", err)
	}
}

package weights

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/internal/atomicfile"
)

// DefaultBaseURL is where the MAE authors publish their checkpoints.
const DefaultBaseURL = "https://dl.fbaipublicfiles.com/mae"

// CacheEnv overrides the default cache directory.
const CacheEnv = "MAEEMBED_CACHE"

// HubURLEnv names a mirror of DefaultBaseURL (same file layout); a Hub
// without BaseURL uses it when set.
const HubURLEnv = "MAEEMBED_HUB_URL"

// presetFiles maps each accepted preset name to its file under the base URL:
// the model names of models_mae.py (pretrained encoders) and the file stems.
var presetFiles = func() map[string]string {
	m := map[string]string{
		"mae_vit_base_patch16":  "pretrain/mae_pretrain_vit_base.pth",
		"mae_vit_large_patch16": "pretrain/mae_pretrain_vit_large.pth",
		"mae_vit_huge_patch14":  "pretrain/mae_pretrain_vit_huge.pth",
	}
	for _, f := range []string{
		"pretrain/mae_pretrain_vit_base.pth", "pretrain/mae_pretrain_vit_large.pth", "pretrain/mae_pretrain_vit_huge.pth",
		"visualize/mae_visualize_vit_base.pth", "visualize/mae_visualize_vit_large.pth", "visualize/mae_visualize_vit_large_ganloss.pth",
		"finetune/mae_finetuned_vit_base.pth", "finetune/mae_finetuned_vit_large.pth", "finetune/mae_finetuned_vit_huge.pth",
	} {
		m[strings.TrimSuffix(filepath.Base(f), ".pth")] = f
	}
	return m
}()

// PublishedMD5 holds the md5 prefixes the MAE README gives per file; the
// visualize checkpoints have none.
var PublishedMD5 = map[string]string{
	"pretrain/mae_pretrain_vit_base.pth":   "8cad7c",
	"pretrain/mae_pretrain_vit_large.pth":  "b8b06e",
	"pretrain/mae_pretrain_vit_huge.pth":   "9bdbb0",
	"finetune/mae_finetuned_vit_base.pth":  "1b25e9",
	"finetune/mae_finetuned_vit_large.pth": "51f550",
	"finetune/mae_finetuned_vit_huge.pth":  "2541f2",
}

// Presets lists the accepted preset names, sorted.
func Presets() []string { return sortedKeys(presetFiles) }

// PresetFile returns the file (relative to the base URL) of a preset name;
// a trailing ".pth" is accepted.
func PresetFile(name string) (string, bool) {
	f, ok := presetFiles[strings.TrimSuffix(name, ".pth")]
	return f, ok
}

// DefaultCacheDir is $MAEEMBED_CACHE, else <user cache dir>/maeembed. A
// leading ~ of $MAEEMBED_CACHE (~ alone, or ~/...) is the home directory,
// as a shell would expand it unquoted (config.ExpandHome): a quoted
// MAEEMBED_CACHE='~/x' made a directory named ~ in the working directory.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		d, err := config.ExpandHome(d)
		if err != nil {
			return "", fmt.Errorf("%s: %w", CacheEnv, err)
		}
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w (set %s)", err, CacheEnv)
	}
	return filepath.Join(d, "maeembed"), nil
}

// Hub resolves preset names to cached checkpoint files, downloading them on
// first use. The zero value uses the defaults.
type Hub struct {
	CacheDir string       // default DefaultCacheDir()
	BaseURL  string       // default $MAEEMBED_HUB_URL, else DefaultBaseURL
	Client   *http.Client // default http.DefaultClient
	Progress io.Writer    // download progress; default os.Stderr
	Logger   *slog.Logger // default slog.Default()
	// MD5 overrides PublishedMD5 (same keys) when non-nil.
	MD5 map[string]string
	// ProgressEvery throttles progress lines; default 500ms.
	ProgressEvery time.Duration
}

// NewHub returns a Hub caching in cacheDir ("" = DefaultCacheDir()) with
// the other defaults.
func NewHub(cacheDir string) *Hub { return &Hub{CacheDir: cacheDir} }

// Resolve returns a local path for nameOrPath: an existing file or directory
// as is, a preset name as its cached file (downloaded if absent).
func (h *Hub) Resolve(ctx context.Context, nameOrPath string) (string, error) {
	dst, rel, cached, err := h.locate(nameOrPath)
	if err != nil || cached {
		return dst, err
	}
	if err := h.download(ctx, rel, dst); err != nil {
		if ctx.Err() != nil {
			return "", err // the user stopped it: no advice needed
		}
		return "", &DownloadError{URL: h.url(rel), Path: dst, MD5: h.md5(rel), Err: err}
	}
	return dst, nil
}

// Download is a preset download that Resolve would make: what a dry run
// reports instead of making it.
type Download struct {
	Preset string // the file's stem, e.g. mae_pretrain_vit_base
	Kind   string // its directory on the site: pretrain, visualize or finetune
	URL    string // where it would be fetched from
	Path   string // where the cache would keep it
	MD5    string // the published md5 prefix, "" when the publisher gives none
	// Size is the file's size in bytes from a HEAD request (which
	// transfers no content), -1 when unknown; SizeErr says why.
	Size    int64
	SizeErr error
}

// Locate is Resolve without downloading: an existing file or directory,
// or a preset already in the cache, is returned as its path; a preset not
// yet in the cache as the Download Resolve would make (with its size
// asked of the server by a HEAD request, bounded by ctx and 10 seconds).
// A server that answers that the file is not there (404, 410) is the
// error Resolve's download would get, as Resolve returns it: the run
// would fail there. So is a server that cannot be reached at all (its name
// does not resolve, nothing listens, no route to it): the download's GET
// would fail the same way. Any other failure of the request (a timeout, a
// server that does not take HEAD) leaves the size unknown. It writes
// nothing.
func (h *Hub) Locate(ctx context.Context, nameOrPath string) (path string, dl *Download, err error) {
	dst, rel, cached, err := h.locate(nameOrPath)
	if err != nil || cached {
		return dst, nil, err
	}
	dl = &Download{
		Preset: strings.TrimSuffix(filepath.Base(rel), ".pth"), Kind: filepath.Dir(rel),
		URL: h.url(rel), Path: dst, MD5: h.md5(rel), Size: -1,
	}
	dl.Size, dl.SizeErr = h.size(ctx, dl.URL)
	var st *statusError
	if errors.As(dl.SizeErr, &st) && (st.code == http.StatusNotFound || st.code == http.StatusGone) {
		// download's error for this status, in Resolve's DownloadError.
		return "", nil, &DownloadError{URL: dl.URL, Path: dst, MD5: dl.MD5, Err: fmt.Errorf("download %s: %s", dl.URL, st.status)}
	}
	if ue, ok := unreachable(dl.SizeErr); ok {
		// download's error for this failure: the same words, for a GET.
		get := *ue
		get.Op = "Get"
		return "", nil, &DownloadError{URL: dl.URL, Path: dst, MD5: dl.MD5, Err: fmt.Errorf("download %s: %w", dl.URL, &get)}
	}
	return dst, dl, nil
}

// unreachable reports whether err, from a request, failed to connect to
// the server at all: a name that does not resolve, a refused connection,
// no route. A timeout is not (a slow network may still serve the GET).
func unreachable(err error) (*url.Error, bool) {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.Timeout() {
		return nil, false
	}
	var dns *net.DNSError
	var op *net.OpError
	if errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") {
		return ue, true
	}
	return nil, false
}

// statusError is a HEAD request answered with another status than 200.
type statusError struct {
	url, status string
	code        int
}

func (e *statusError) Error() string { return fmt.Sprintf("HEAD %s: %s", e.url, e.status) }

// locate is where nameOrPath is or would be: an existing path as it is
// (cached), else a preset's cache path, its file under the base URL, and
// whether the cache holds it.
func (h *Hub) locate(nameOrPath string) (path, rel string, cached bool, err error) {
	if _, err := os.Stat(nameOrPath); err == nil {
		return nameOrPath, "", true, nil
	}
	rel, ok := PresetFile(nameOrPath)
	if !ok {
		return "", "", false, fmt.Errorf("model %q: no such file or directory, and not a preset (presets: %s)", nameOrPath, strings.Join(Presets(), ", "))
	}
	cache := h.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			return "", "", false, err
		}
	}
	dst := filepath.Join(cache, filepath.FromSlash(rel))
	_, err = os.Stat(dst)
	return dst, rel, err == nil, nil
}

// size asks the server for the size of url with a HEAD request.
func (h *Hub) size(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return -1, err
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return -1, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return -1, &statusError{url: url, status: resp.Status, code: resp.StatusCode}
	case resp.ContentLength < 0:
		return -1, fmt.Errorf("HEAD %s: no Content-Length", url)
	}
	return resp.ContentLength, nil
}

// DownloadError is a failed preset download (no network, a firewall, a
// mirror without the file...). Its message names the ways around it: a
// local checkpoint, the URL and checksum to fetch it elsewhere and the
// cache path to put it at, or a mirror.
type DownloadError struct {
	URL  string // where the checkpoint was fetched from
	Path string // where the cache expects it
	MD5  string // published md5 prefix, "" when the publisher gives none
	Err  error
}

func (e *DownloadError) Error() string {
	sum := "md5 starting with " + e.MD5
	if e.MD5 == "" {
		sum = "no published checksum"
	}
	return fmt.Sprintf("%v\n"+
		"without network access to it, any of these works:\n"+
		"  - pass a local checkpoint instead: --model FILE (a .pth, .safetensors or Hugging Face directory)\n"+
		"  - fetch %s on another machine (%s), then copy it to %s\n"+
		"  - set %s to a mirror of %s with the same layout",
		e.Err, e.URL, sum, e.Path, HubURLEnv, DefaultBaseURL)
}

func (e *DownloadError) Unwrap() error { return e.Err }

// url is where rel is downloaded from: BaseURL, else $MAEEMBED_HUB_URL,
// else DefaultBaseURL.
func (h *Hub) url(rel string) string {
	base := h.BaseURL
	if base == "" {
		base = os.Getenv(HubURLEnv)
	}
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimSuffix(base, "/") + "/" + rel
}

// md5 is the published md5 prefix of rel (MD5 overriding PublishedMD5).
func (h *Hub) md5(rel string) string {
	table := h.MD5
	if table == nil {
		table = PublishedMD5
	}
	return strings.ToLower(table[rel])
}

func (h *Hub) download(ctx context.Context, rel, dst string) error {
	url := h.url(rel)
	log := h.Logger
	if log == nil {
		log = slog.Default()
	}
	wantMD5 := h.md5(rel)
	if wantMD5 == "" {
		log.Info("no published checksum for this checkpoint: only its sha256 will be recorded", "url", url)
	}

	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	// A download killed before (kill -9, a machine going down) left its
	// partial file, as large as the part it got; a concurrent download of
	// the same checkpoint holds the lock of its own.
	partPrefix := "." + filepath.Base(dst) + ".part-"
	removeStaleTemps(log, dir, false, partPrefix) // logged where the download logs
	tmp, err := atomicfile.Create(dst, partPrefix+"*")
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Abort()
		}
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	log.Info("downloading checkpoint", "url", url, "to", dst)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	md5h, shah := md5.New(), sha256.New()
	prog := &progress{
		w: h.Progress, name: filepath.Base(dst), total: resp.ContentLength,
		every: h.ProgressEvery, start: time.Now(),
	}
	if prog.w == nil {
		prog.w = os.Stderr
	}
	// On a terminal one line is rewritten in place; in a log file (a batch
	// job's stderr) each update is its own line, and rarer.
	prog.eol = "\r"
	if f, isFile := prog.w.(*os.File); isFile {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice == 0 {
			prog.eol = "\n"
			if prog.every == 0 {
				prog.every = 10 * time.Second
			}
		}
	}
	if prog.every == 0 {
		prog.every = 500 * time.Millisecond
	}
	n, err := io.Copy(io.MultiWriter(tmp, md5h, shah, prog), resp.Body)
	prog.finish(err == nil)
	if err != nil {
		return fmt.Errorf("download %s: interrupted after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("download %s: got %d of %d bytes", url, n, resp.ContentLength)
	}
	gotMD5 := hex.EncodeToString(md5h.Sum(nil))
	if wantMD5 != "" && !strings.HasPrefix(gotMD5, wantMD5) {
		return fmt.Errorf("download %s: checksum mismatch: md5 %s, published prefix %s (file discarded)", url, gotMD5, wantMD5)
	}
	// The checksum goes first, so a visible checkpoint always has one.
	sum := hex.EncodeToString(shah.Sum(nil))
	line := sum + "  " + filepath.Base(dst) + "\n"
	if err := writeFileAtomic(dst+".sha256", func(f *os.File) error { _, err := io.WriteString(f, line); return err }); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	ok = true // Commit removes the temporary itself if it fails
	if err := tmp.Commit(); err != nil {
		// The checksum written above describes no checkpoint, unless a
		// concurrent download of the same file published one meanwhile.
		if st, serr := os.Stat(dst); serr != nil || !st.Mode().IsRegular() {
			os.Remove(dst + ".sha256")
		}
		return fmt.Errorf("download %s: %w", url, err)
	}
	log.Info("checkpoint downloaded", "path", dst, "bytes", n, "md5", gotMD5, "sha256", sum)
	return nil
}

// progress prints "name: done/total MB (pct%)" at most once per interval.
type progress struct {
	w     io.Writer
	name  string
	total int64
	done  int64
	every time.Duration
	start time.Time
	last  time.Time
	eol   string // "\r" rewrites the line, "\n" starts a new one
}

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.print()
	}
	return len(b), nil
}

func (p *progress) print() {
	prefix := ""
	if p.eol == "\r" {
		prefix = "\r"
	}
	const mb = 1 << 20
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.done) / mb / secs
	}
	if p.total > 0 {
		fmt.Fprintf(p.w, "%s%s: %.1f/%.1f MB (%.1f%%, %.1f MB/s)", prefix, p.name,
			float64(p.done)/mb, float64(p.total)/mb, 100*float64(p.done)/float64(p.total), rate)
	} else {
		fmt.Fprintf(p.w, "%s%s: %.1f MB (%.1f MB/s)", prefix, p.name, float64(p.done)/mb, rate)
	}
	if p.eol == "\n" {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) finish(complete bool) {
	status := "done"
	if !complete {
		status = "failed"
	}
	if p.eol == "\r" {
		p.print()
		fmt.Fprintln(p.w, " "+status)
		return
	}
	p.print()
	fmt.Fprintln(p.w, p.name+": "+status)
}

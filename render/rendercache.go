package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// renderCache keeps the answers of render workers on disk, keyed by
// everything the worker was sent: the chart's and the request's exact wire
// bytes (the encoding is deterministic: maps in key order), the worker's
// environment and the identity of the worker's binary. A worker reads
// nothing else — no file, no clock it was not sent, no network (Helm's DNS
// function is off) — so for the same key it answers the same bytes, with
// three exceptions, which are never stored: a render that called lookup
// (its answer depends on the cluster), a chart or request that names a
// function that generates afresh each time (randAlphaNum, now, …, matched
// anywhere in the bytes sent: templates, files, values for tpl), and an
// error. A hit skips the worker: a no-op run of releases that do not
// change starts none.
//
// An entry carries its key and a checksum; one that does not match (a torn
// write, another version's file) is a miss, removed and rendered afresh.
// Entries are written to a temporary file and renamed. Whoever can write
// the cache directory can change what tandem renders, as whoever can
// write its chart cache can: it belongs to the user running tandem (its
// default is under the user's cache directory).
type renderCache struct {
	dir string
	// identity names the worker's binary and environment (see workerIdentity).
	identity []byte
	// max bounds the directory's size; the oldest entries (by the time
	// last used) go first.
	max int64
	// maxAnswer is the workers' Isolation.MaxOutput: an entry whose
	// answer would not have fit is not served (0: any).
	maxAnswer int64

	mu      sync.Mutex
	written int64 // bytes stored since the last prune, guarded by mu
	// pruning serialises prunes: the calls of one Renderer share its
	// cache, and may end at once.
	pruning sync.Mutex
}

// renderCacheFormat is the first line of every entry; a new format makes
// every older entry a miss.
const renderCacheFormat = "tandem-render-cache/2\n"

// DefaultRenderCacheMax is Options.RenderCacheMax's default.
const DefaultRenderCacheMax = 512 << 20

// newRenderCache returns the cache for iso's workers, or nil (no cache)
// without a directory or when the worker's binary cannot be identified.
func newRenderCache(dir string, max int64, iso Isolation, env []string) *renderCache {
	if dir == "" || len(iso.Command) == 0 {
		return nil
	}
	dir, ok := privateDir(dir)
	if !ok {
		return nil
	}
	id, err := workerIdentity(iso.Command, env)
	if err != nil {
		return nil
	}
	if max <= 0 {
		max = DefaultRenderCacheMax
	}
	return &renderCache{dir: dir, identity: id, max: max, maxAnswer: iso.MaxOutput}
}

// privateDir makes dir if need be and returns it with its symbolic links
// resolved, if only this user can write it and no other user can put
// another directory in its place: entries in a directory others can write
// (a shared /tmp), or in one another user can swap (through a link of
// theirs, or renamed in a directory of theirs, such as a tandem-cache they
// made first under the temporary directory) could be someone else's. Every
// directory above it must be this user's or root's. (A directory root made
// that all can write and that is not sticky is accepted: a pod's emptyDir
// is one, shared only by the pod's containers.)
func privateDir(dir string) (string, bool) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false
	}
	real, err := filepath.Abs(dir)
	if err == nil {
		real, err = filepath.EvalSymlinks(real)
	}
	if err != nil {
		return "", false
	}
	fi, err := os.Lstat(real)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi) {
		return "", false
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() || !ownedByMeOrRoot(fi) {
			return "", false
		}
		if filepath.Dir(p) == p {
			return real, true
		}
	}
}

// workerIdentity is what makes a worker answer as it does besides its
// input: its argv, its binary (device, inode, size and modification time of
// the file it runs: a rebuilt or upgraded tandem is another binary), the
// build's module versions, and its environment (TZ changes what date
// functions print) with the time zone file it names.
func workerIdentity(command, env []string) ([]byte, error) {
	fi, err := os.Stat(command[0])
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%q\x00%d\x00%d\x00%s\x00", workerProtocol, command, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
	if st := statIdentity(fi); st != "" {
		fmt.Fprintf(h, "%s\x00", st)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(h, "%s\x00", bi.String())
	}
	sorted := slices.Clone(env)
	sort.Strings(sorted)
	fmt.Fprintf(h, "%q", sorted)
	h.Write(zoneFile(env))
	return h.Sum(nil), nil
}

// zoneFile is what the worker reads for its local time zone (toDate parses
// in it, date prints in it), as Go's time package finds it: the file TZ
// names, or /etc/localtime without TZ; nil for UTC, or when there is no
// such file (the worker then uses UTC, or Go's own copy of the zone, which
// the binary's identity covers).
func zoneFile(env []string) []byte {
	tz, set := "", false
	for _, kv := range env { // the last one counts, as for exec
		if v, ok := strings.CutPrefix(kv, "TZ="); ok {
			tz, set = v, true
		}
	}
	var paths []string
	switch tz = strings.TrimPrefix(tz, ":"); {
	case !set:
		paths = []string{"/etc/localtime"}
	case tz == "" || tz == "UTC":
		return nil
	case filepath.IsAbs(tz):
		paths = []string{tz}
	default:
		for _, dir := range []string{"/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/"} {
			paths = append(paths, dir+tz)
		}
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	return nil
}

// cacheable reports whether a render of these bytes may be stored: it
// names no generating function.
func cacheable(b []byte) bool {
	return !namesGenerating(b)
}

// key is the entry's name for one render: the chart's wire bytes (hashed
// once per chart) and the request's.
func (c *renderCache) key(chartSum [32]byte, rest []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(renderCacheFormat))
	h.Write(c.identity)
	h.Write(chartSum[:])
	h.Write(rest)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *renderCache) path(k [32]byte) string {
	name := hex.EncodeToString(k[:])
	return filepath.Join(c.dir, name[:2], name)
}

// get returns the stored answer for k.
func (c *renderCache) get(k [32]byte) (rendered, bool) {
	p := c.path(k)
	b, err := c.read(p)
	if err != nil {
		return rendered{}, false
	}
	rd, err := decodeEntry(b, k)
	if err != nil {
		_ = os.Remove(p)
		return rendered{}, false
	}
	if c.maxAnswer > 0 && int64(len((&answer{rendered: rd}).encode())) > c.maxAnswer {
		// Stored under a larger limit: a fresh render fails, and so must this.
		return rendered{}, false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // last used, for pruning
	return rd, true
}

// read reads the entry at p, unless it is far larger than any entry for
// an answer within maxAnswer (whose size get checks).
func (c *renderCache) read(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// An entry holds the answer's manifest and hooks, and their objects
	// (each one's body, and its header): well under four times the answer.
	if c.maxAnswer > 0 && fi.Size() > 4*c.maxAnswer+1<<20 {
		return nil, errBadEntry
	}
	return io.ReadAll(f)
}

// put stores an answer; failing to is not an error (the next run renders).
func (c *renderCache) put(k [32]byte, rd rendered) {
	if rd.usedLookup {
		return
	}
	b := encodeEntry(k, rd)
	p := c.path(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), p) != nil {
		_ = os.Remove(f.Name())
		return
	}
	c.mu.Lock()
	c.written += int64(len(b))
	c.mu.Unlock()
}

func encodeEntry(k [32]byte, rd rendered) []byte {
	e := &encoder{buf: append([]byte(renderCacheFormat), k[:]...)}
	e.str(rd.manifest)
	e.str(rd.hooks)
	e.bool(rd.parsed != nil)
	if rd.parsed != nil {
		e.objects(rd.parsed.manifest)
		e.objects(rd.parsed.hooks)
	}
	sum := sha256.Sum256(e.buf)
	return append(e.buf, sum[:]...)
}

func (e *encoder) objects(objs []Object) {
	e.length(len(objs), objs == nil)
	for _, o := range objs {
		e.str(o.APIVersion)
		e.str(o.Kind)
		e.str(o.Namespace)
		e.str(o.Name)
		e.str(o.Source)
		e.str(o.Hook)
		e.bytes(o.Body)
	}
}

func (d *decoder) objects() []Object {
	n := d.length(7) // seven fields, at least a byte each
	if n < 0 {
		return nil
	}
	out := make([]Object, n)
	for i := range out {
		out[i] = Object{APIVersion: d.str(), Kind: d.str(), Namespace: d.str(), Name: d.str(), Source: d.str(), Hook: d.str(), Body: d.bytes()}
	}
	return out
}

var errBadEntry = errors.New("not a render cache entry for this key")

func decodeEntry(b []byte, k [32]byte) (rendered, error) {
	if len(b) < len(renderCacheFormat)+32+sha256.Size {
		return rendered{}, errBadEntry
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return rendered{}, errBadEntry
	}
	if !bytes.HasPrefix(body, []byte(renderCacheFormat)) {
		return rendered{}, errBadEntry
	}
	body = body[len(renderCacheFormat):]
	if !bytes.Equal(body[:32], k[:]) {
		return rendered{}, errBadEntry
	}
	d := &decoder{buf: body[32:]}
	rd := rendered{manifest: d.str(), hooks: d.str()}
	if d.bool() {
		rd.parsed = &parsedObjects{manifest: d.objects(), hooks: d.objects()}
	}
	if d.finish() != nil {
		return rendered{}, errBadEntry
	}
	return rd, nil
}

// cacheSlot is where an answer goes once parsed: the cache and its key.
type cacheSlot struct {
	c   *renderCache
	key [32]byte
	// also, when set, is the key of another render that answered the very
	// same manifest and hooks (an install's upgrade): stored alike.
	also *[32]byte
}

// store keeps rd, with its objects, under the slot's key (and also).
func (s *cacheSlot) store(rd rendered, objs, hooks []Object) {
	rd.parsed, rd.keep = &parsedObjects{manifest: objs, hooks: hooks}, nil
	s.c.put(s.key, rd)
	if s.also != nil {
		s.c.put(*s.also, rd)
	}
}

// prune removes the least recently used entries once the directory holds
// more than max bytes, down to three quarters of it. It walks the directory
// only when something was stored since the last prune.
func (c *renderCache) prune() {
	c.pruning.Lock()
	defer c.pruning.Unlock()
	c.mu.Lock()
	written := c.written
	c.written = 0
	c.mu.Unlock()
	if written == 0 {
		return
	}
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var entries []entry
	var total int64
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") && time.Since(fi.ModTime()) > time.Hour {
			_ = os.Remove(p) // left by a process that died mid-write
			return nil
		}
		entries = append(entries, entry{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
		return nil
	})
	if total <= c.max {
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	for _, e := range entries {
		if total <= c.max*3/4 {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
}

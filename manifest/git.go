package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Environment variables Fetch reads credentials from.
const (
	// DefaultTokenEnv holds an HTTPS token (a password or personal access token).
	DefaultTokenEnv = "TANDEM_GIT_TOKEN"
	// GitUserEnv holds the HTTPS basic-auth user sent with the token; "git" when unset.
	GitUserEnv = "TANDEM_GIT_USER"
)

// infiniteDepth is what `git fetch --unshallow` asks for.
const infiniteDepth = 0x7fffffff

// GitOptions says which repository and ref Fetch checks out, where it caches them, and how it
// authenticates.
type GitOptions struct {
	// URL is the repository: https://, ssh://, scp-like (git@host:org/repo.git), or http:// (a
	// token is only sent over http:// to a loopback address). It must not hold a password.
	URL string
	// Ref is a branch, a tag, a full ref name (refs/heads/main), or a commit SHA, full or
	// abbreviated to at least 4 hex digits. Empty (or HEAD) means the branch the remote's HEAD
	// names.
	// A name is looked up among the remote's branches first, then its tags, then as a commit.
	Ref string
	// CacheDir holds one cache per URL (a directory named by the URL's hash), reused across
	// calls and processes.
	CacheDir string
	// TokenEnv names the environment variable that holds an HTTPS token; default
	// DefaultTokenEnv. The basic-auth user comes from GitUserEnv, or is "git".
	TokenEnv string
	// SSHKeyFile is a private key file for ssh URLs; without it, go-git asks the SSH agent.
	// Host keys are checked against known_hosts (SSH_KNOWN_HOSTS or ~/.ssh/known_hosts).
	SSHKeyFile string
	// KeepCheckouts is how many commit directories per URL survive pruning, the one just
	// fetched included; default 3. A Checkout's Dir stays valid until it is pruned.
	KeepCheckouts int
	// Timeout bounds the network part of a Fetch (listing the remote's refs and fetching);
	// default DefaultGitTimeout. A server that accepts the connection and never answers
	// then fails the fetch, with an error saying so, instead of hanging the run.
	Timeout time.Duration
	// Logger receives what Fetch does, never a credential; nil discards.
	Logger *slog.Logger
}

// DefaultGitTimeout is GitOptions.Timeout's default.
//
// It is a context deadline because that is the one bound go-git honours per call: its HTTP
// transport is http.DefaultTransport (30s to connect, 10s for TLS, but no bound on waiting for
// a response), and replacing it means client.InstallProtocol, which changes every go-git user in
// the process.
const DefaultGitTimeout = 2 * time.Minute

// DefaultGitOptions returns the defaults Fetch applies to zero fields; set URL and Ref.
func DefaultGitOptions() GitOptions {
	return GitOptions{CacheDir: defaultGitCacheDir(), TokenEnv: DefaultTokenEnv, KeepCheckouts: 3, Timeout: DefaultGitTimeout}
}

func defaultGitCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "tandem", "git")
	}
	return filepath.Join(os.TempDir(), "tandem-git")
}

func (o GitOptions) withDefaults() GitOptions {
	d := DefaultGitOptions()
	if o.CacheDir == "" {
		o.CacheDir = d.CacheDir
	}
	if o.TokenEnv == "" {
		o.TokenEnv = d.TokenEnv
	}
	if o.KeepCheckouts <= 0 {
		o.KeepCheckouts = d.KeepCheckouts
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Checkout is one commit of a repository, checked out.
type Checkout struct {
	// Dir holds the commit's files (no .git). It is written once and never changed afterwards.
	Dir string `json:"dir"`
	// Commit is the full SHA of the commit.
	Commit string `json:"commit"`
	// Ref is the full name of the ref that was resolved (refs/heads/main, refs/tags/v1), or the
	// SHA as given when Ref named a commit.
	Ref string `json:"ref"`
}

// Fetch makes the commit that opts.Ref names available under opts.CacheDir and returns it.
//
// The first call for a URL clones shallowly (depth 1) only that ref into a bare cache
// repository; later calls ask the remote where the ref points now and fetch only when that
// commit is missing, again at depth 1 with the cached commits offered as common ground, so
// only new objects travel. A commit SHA that is already cached needs no network at all. An
// uncached SHA is first asked for directly, which servers that allow reachable SHAs in wants
// (GitHub, GitLab) honour; otherwise Fetch fetches every branch and tag with full history and
// looks the SHA up among them. The commit's files are then written to their own directory,
// once; the directories of older commits beyond KeepCheckouts are removed.
//
// Calls for the same URL are serialized by a file lock in the cache, so concurrent calls from
// goroutines or processes never see a half-written cache. Errors never hold a credential: URLs
// lose their userinfo and the token is blotted out, and they match ErrUnknownRef, ErrGitAuth
// and ErrGitRepoNotFound with errors.Is.
func Fetch(ctx context.Context, opts GitOptions) (Checkout, error) {
	opts = opts.withDefaults()
	if opts.URL == "" {
		return Checkout{}, errors.New("git: URL must be set")
	}
	safe := redactURL(opts.URL)
	f := &fetcher{opts: opts, log: opts.Logger.With("url", safe, "ref", opts.Ref)}
	co, err := f.fetch(ctx)
	if err != nil {
		return Checkout{}, fmt.Errorf("git %s ref %q: %w", safe, opts.Ref, scrub(err, f.secrets))
	}
	return co, nil
}

type fetcher struct {
	opts    GitOptions
	log     *slog.Logger
	auth    transport.AuthMethod
	secrets []string // blotted out of every error
	dir     string   // this URL's cache
	repo    *git.Repository
	// cacheOnly makes resolve fail with errNotCached instead of going to the network
	// (FetchCommit).
	cacheOnly bool
}

func (f *fetcher) fetch(ctx context.Context) (Checkout, error) {
	if err := f.authenticate(); err != nil {
		return Checkout{}, err
	}
	sum := sha256.Sum256([]byte(strings.TrimSuffix(f.opts.URL, "/")))
	f.dir = filepath.Join(f.opts.CacheDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return Checkout{}, fmt.Errorf("cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(f.dir, "lock"))
	if err != nil {
		return Checkout{}, fmt.Errorf("cache lock: %w", err)
	}
	defer unlock()
	if err := f.open(); err != nil {
		return Checkout{}, err
	}

	// The bound starts once the cache is ours: waiting for another fetch of the same URL is
	// bounded by that fetch's own timeout.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	co, err := f.checkoutOrReset(ctx)
	if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Checkout{}, fmt.Errorf("timed out after %s (GitOptions.Timeout): %w", f.opts.Timeout, err)
	}
	return co, err
}

// checkoutOrReset is checkout, once more on a fresh cache if the cache turns out to be missing
// objects.
func (f *fetcher) checkoutOrReset(ctx context.Context) (Checkout, error) {
	ref, dir, commit, err := f.checkout(ctx)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		// An incremental fetch trusts the server to know what the cache holds, which a
		// shallow cache cannot fully tell it (a force-push back to an older commit, a file
		// reverted to content only an uncached commit had). Start the cache afresh.
		f.log.Warn("cache is missing objects; cloning again", "error", scrub(err, f.secrets))
		if err := f.reset(); err != nil {
			return Checkout{}, err
		}
		ref, dir, commit, err = f.checkout(ctx)
	}
	if err != nil {
		return Checkout{}, err
	}
	f.prune(filepath.Base(dir))
	f.log.Info("checked out", "commit", commit.Hash.String(), "resolved", ref)
	return Checkout{Dir: dir, Commit: commit.Hash.String(), Ref: ref}, nil
}

// checkout resolves the ref, fetching what is missing, and writes the commit's files.
func (f *fetcher) checkout(ctx context.Context) (ref, dir string, commit *object.Commit, err error) {
	ref, commit, err = f.resolve(ctx)
	if err != nil {
		return "", "", nil, err
	}
	dir, err = f.materialize(commit)
	if err != nil {
		return "", "", nil, err
	}
	return ref, dir, commit, nil
}

// authenticate picks the credentials for the URL's protocol.
func (f *fetcher) authenticate() error {
	ep, err := transport.NewEndpoint(f.opts.URL)
	if err != nil {
		return errors.New("URL is not a valid git URL")
	}
	if ep.Password != "" {
		return fmt.Errorf("URL must not hold a password: put the token in $%s", f.opts.TokenEnv)
	}
	switch ep.Protocol {
	case "http", "https":
		if f.opts.SSHKeyFile != "" {
			return errors.New("SSHKeyFile is set, but the URL is not an ssh URL")
		}
		token := os.Getenv(f.opts.TokenEnv)
		if token == "" {
			return nil
		}
		if ep.Protocol == "http" && !isLoopback(ep.Host) {
			return fmt.Errorf("refusing to send the token in $%s over plain http to %s; use https", f.opts.TokenEnv, ep.Host)
		}
		user := os.Getenv(GitUserEnv)
		if user == "" {
			user = "git"
		}
		f.secrets = []string{token, base64.StdEncoding.EncodeToString([]byte(user + ":" + token)), url.QueryEscape(token), url.PathEscape(token)}
		f.auth = &githttp.BasicAuth{Username: user, Password: token}
	case "ssh":
		if f.opts.SSHKeyFile == "" {
			return nil
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, f.opts.SSHKeyFile, "")
		if err != nil {
			return fmt.Errorf("ssh key %q: %w", f.opts.SSHKeyFile, err)
		}
		f.auth = keys
	default:
		if f.opts.SSHKeyFile != "" {
			return errors.New("SSHKeyFile is set, but the URL is not an ssh URL")
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reset throws the cache repository away and starts a new one; checkouts stay.
func (f *fetcher) reset() error {
	if err := os.RemoveAll(filepath.Join(f.dir, "repo")); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return f.open()
}

// open opens this URL's bare cache repository, creating it (or recreating a broken one).
func (f *fetcher) open() error {
	path := filepath.Join(f.dir, "repo")
	repo, err := git.PlainOpen(path)
	if err == nil {
		if remote, err := repo.Remote("origin"); err == nil && len(remote.Config().URLs) == 1 && remote.Config().URLs[0] == f.opts.URL {
			f.repo = repo
			return nil
		}
	}
	if err != nil && !errors.Is(err, git.ErrRepositoryNotExists) {
		f.log.Warn("recreating a cache repository that does not open", "error", scrub(err, f.secrets))
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	repo, err = git.PlainInit(path, true)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{f.opts.URL}}); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	f.repo = repo
	return nil
}

var hexRef = regexp.MustCompile(`^[0-9a-fA-F]{4,40}$`)

// resolve finds the commit opts.Ref names, fetching what is missing, and returns the full ref
// name it resolved (or the SHA as given).
func (f *fetcher) resolve(ctx context.Context) (string, *object.Commit, error) {
	ref := f.opts.Ref
	isSHA := hexRef.MatchString(ref)
	if isSHA && len(ref) == 40 {
		// A full SHA names one commit for ever: a cached one needs no network.
		if c, err := f.localCommit(ref); err == nil {
			return ref, c, nil
		}
	}
	if f.cacheOnly {
		return "", nil, errNotCached
	}
	remote, err := f.repo.Remote("origin")
	if err != nil {
		return "", nil, fmt.Errorf("cache: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: f.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return "", nil, fmt.Errorf("list remote refs: %w", err)
	}
	name, hash, ok := findRef(refs, ref)
	switch {
	case ok:
		if !f.has(hash) {
			local := localRefName(name)
			// A ref fetched before has most likely moved forward: fetch without a depth, so
			// that the server, knowing which commit the cache has, sends only new objects.
			// (Asked for depth 1 with the cache's shallow commits, git's upload-pack sends
			// the whole tree again unless the client takes thin packs, which go-git does not.)
			// A ref new to the cache is cloned shallowly.
			depth := 1
			if _, err := f.repo.Reference(local, false); err == nil {
				depth = 0
			}
			if err := f.fetchRefspecs(ctx, depth, config.RefSpec("+"+name.String()+":"+local.String())); err != nil {
				return "", nil, err
			}
			if !f.has(hash) {
				// The ref moved between listing and fetching: take what was fetched.
				r, err := f.repo.Reference(local, true)
				if err != nil {
					return "", nil, fmt.Errorf("%s: %w", name, err)
				}
				hash = r.Hash()
			}
		} else {
			f.log.Debug("ref unchanged since the last fetch", "commit", hash.String())
		}
		c, err := peelToCommit(f.repo.Storer, hash)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", name, err)
		}
		return name.String(), c, nil
	case isSHA:
		c, err := f.fetchCommit(ctx, ref)
		return ref, c, err
	case ref == "":
		return "", nil, fmt.Errorf("%w: the remote's HEAD names no branch; set a ref", ErrUnknownRef)
	default:
		return "", nil, fmt.Errorf("%w: no branch or tag of that name on the remote", ErrUnknownRef)
	}
}

func (f *fetcher) has(h plumbing.Hash) bool {
	_, err := f.repo.Storer.EncodedObject(plumbing.AnyObject, h)
	return err == nil
}

// findRef looks ref up among the remote's refs: as a full name, a branch, then a tag; empty
// means the branch HEAD points to. It returns the ref's name and the object it points to.
func findRef(refs []*plumbing.Reference, ref string) (plumbing.ReferenceName, plumbing.Hash, bool) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	var candidates []plumbing.ReferenceName
	switch {
	case ref == "":
		head, ok := byName[plumbing.HEAD]
		if !ok || head.Type() != plumbing.SymbolicReference {
			return "", plumbing.ZeroHash, false
		}
		candidates = []plumbing.ReferenceName{head.Target()}
	case ref == "HEAD":
		return findRef(refs, "")
	case strings.HasPrefix(ref, "refs/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	default:
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	for _, name := range candidates {
		if r, ok := byName[name]; ok && r.Type() == plumbing.HashReference {
			return name, r.Hash(), true
		}
	}
	return "", plumbing.ZeroHash, false
}

// localRefName is where the cache keeps a remote ref: branches under refs/remotes/origin/,
// tags as tags, anything else under refs/tandem/.
func localRefName(name plumbing.ReferenceName) plumbing.ReferenceName {
	switch {
	case name.IsBranch():
		return plumbing.NewRemoteReferenceName("origin", name.Short())
	case name.IsTag():
		return name
	default:
		return plumbing.ReferenceName("refs/tandem/" + strings.TrimPrefix(name.String(), "refs/"))
	}
}

func (f *fetcher) fetchRefspecs(ctx context.Context, depth int, specs ...config.RefSpec) error {
	f.log.Debug("fetching", "refspecs", fmt.Sprint(specs), "depth", depth)
	err := f.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       f.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch: %w", err)
	}
	return nil
}

// fetchCommit fetches a commit by SHA: directly when the SHA is whole and the server allows
// it, else by fetching all branches and tags with their history.
func (f *fetcher) fetchCommit(ctx context.Context, sha string) (*object.Commit, error) {
	if len(sha) == 40 {
		spec := config.RefSpec(strings.ToLower(sha) + ":refs/tandem/commits/" + strings.ToLower(sha))
		err := f.fetchRefspecs(ctx, 1, spec)
		if err == nil {
			if c, err := f.localCommit(sha); err == nil {
				return c, nil
			}
		} else if ctx.Err() != nil {
			return nil, err
		} else {
			f.log.Debug("fetching the commit directly failed; fetching every branch and tag", "error", scrub(err, f.secrets))
		}
	}
	if err := f.fetchRefspecs(ctx, infiniteDepth, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return nil, err
	}
	c, err := f.localCommit(sha)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// localCommit finds a cached commit by full or abbreviated SHA.
func (f *fetcher) localCommit(sha string) (*object.Commit, error) {
	sha = strings.ToLower(sha)
	if len(sha) == 40 {
		c, err := f.repo.CommitObject(plumbing.NewHash(sha))
		if err != nil {
			return nil, fmt.Errorf("%w: no commit %s is reachable from the remote's branches or tags", ErrUnknownRef, sha)
		}
		return c, nil
	}
	iter, err := f.repo.CommitObjects()
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var found []*object.Commit
	err = iter.ForEach(func(c *object.Commit) error {
		if strings.HasPrefix(c.Hash.String(), sha) {
			found = append(found, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no commit %s is reachable from the remote's branches or tags", ErrUnknownRef, sha)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%w: the abbreviated SHA %s names %d commits; give more digits", ErrUnknownRef, sha, len(found))
	}
}

// peelToCommit follows annotated tags to the commit they tag.
func peelToCommit(s storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := s.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(s, obj)
		case plumbing.TagObject:
			tag, err := object.DecodeTag(s, obj)
			if err != nil {
				return nil, err
			}
			h = tag.Target
		default:
			return nil, fmt.Errorf("points to a %s, not a commit", obj.Type())
		}
	}
	return nil, errors.New("tags nested too deep")
}

// materialize writes the commit's files to checkouts/SHA, unless an earlier call did.
func (f *fetcher) materialize(c *object.Commit) (string, error) {
	base := filepath.Join(f.dir, "checkouts")
	dir := filepath.Join(base, c.Hash.String())
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // marks it recently used for pruning
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	if err := writeCommit(f.repo.Storer, c, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("checkout %s: %w", c.Hash, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("checkout: %w", err)
	}
	// The rename makes a checkout appear whole or not at all.
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("checkout: %w", err)
	}
	return dir, nil
}

// prune removes leftovers of interrupted checkouts and all but the KeepCheckouts most recently
// used commit directories. It runs under the lock; failures only cost disk space.
func (f *fetcher) prune(current string) {
	base := filepath.Join(f.dir, "checkouts")
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	type dated struct {
		name string
		mod  time.Time
	}
	var dirs []dated
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
			continue
		}
		if e.Name() == current {
			continue
		}
		if fi, err := e.Info(); err == nil {
			dirs = append(dirs, dated{e.Name(), fi.ModTime()})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mod.After(dirs[j].mod) })
	for i, d := range dirs {
		if i+1 >= f.opts.KeepCheckouts {
			f.log.Debug("pruning an old checkout", "commit", d.name)
			_ = os.RemoveAll(filepath.Join(base, d.name))
		}
	}
}

// redactURL hides a URL's password (and an unparsable URL's userinfo) for messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Opaque == "" {
		return u.Redacted()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 && strings.ContainsAny(raw[:i], ":/") {
		return "***" + raw[i:]
	}
	return raw // scp-like git@host:path: the user part cannot hold a password
}

var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`)

// scrubbedError carries a message with every secret removed. It unwraps to sentinels only,
// never to the original error, whose message may still hold a secret.
type scrubbedError struct {
	msg   string
	kinds []error
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Unwrap() []error { return e.kinds }

// scrub rewrites err's message without secrets or URL userinfo, keeping what callers test for.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	msg = urlUserinfo.ReplaceAllString(msg, "$1")
	msg = strings.TrimRight(msg, ": \n") // go-git appends the server's (here empty) reason
	var kinds []error
	for _, k := range []error{context.Canceled, context.DeadlineExceeded, ErrUnknownRef, io.ErrUnexpectedEOF} {
		if errors.Is(err, k) {
			kinds = append(kinds, k)
		}
	}
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		kinds = append(kinds, ErrGitAuth)
	}
	if errors.Is(err, transport.ErrRepositoryNotFound) {
		kinds = append(kinds, ErrGitRepoNotFound)
	}
	return &scrubbedError{msg: msg, kinds: kinds}
}

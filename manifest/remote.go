package manifest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// A poller (tandem serve) asks RemoteHead every interval, which costs one request and no
// cache, and fetches only when the answer differs from the commit it last reconciled:
//
//	head, err := manifest.RemoteHead(ctx, opts)      // one ls-remote
//	if head != last {
//		co, err := manifest.FetchCommit(ctx, opts, head) // no request at all if head is cached
//		// reconcile co.Commit (newer than head if the ref moved on meanwhile)
//	}

var fullSHA = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// errNotCached is what a cache-only fetcher returns for a commit the cache does not hold.
var errNotCached = errors.New("commit not cached")

// RemoteHead returns the full SHA of the commit opts.Ref names on the remote now, at the cost of
// one request (what `git ls-remote` asks) and without touching the cache.
//
// opts.Ref is resolved as Fetch resolves it: a full ref name, a branch, then a tag (an annotated
// tag is peeled to the commit it tags); empty or HEAD means the branch the remote's HEAD names.
// A full 40-digit SHA names itself: RemoteHead returns it in lower case with no request. An
// abbreviated SHA that names no branch or tag cannot be resolved by listing refs: the error
// says so (use the full SHA, or Fetch).
//
// Credentials, the http:// loopback rule and GitOptions.Timeout are those of Fetch, and errors
// likewise hold no credential and name the URL without userinfo; a ref the remote does not have
// matches ErrUnknownRef, refused credentials ErrGitAuth, a missing repository
// ErrGitRepoNotFound.
func RemoteHead(ctx context.Context, opts GitOptions) (string, error) {
	opts = opts.withDefaults()
	if opts.URL == "" {
		return "", errors.New("git: URL must be set")
	}
	safe := redactURL(opts.URL)
	f := &fetcher{opts: opts, log: opts.Logger.With("url", safe, "ref", opts.Ref)}
	sha, err := f.remoteHead(ctx)
	if err != nil {
		return "", fmt.Errorf("git %s ref %q: remote head: %w", safe, opts.Ref, scrub(err, f.secrets))
	}
	return sha, nil
}

func (f *fetcher) remoteHead(ctx context.Context) (string, error) {
	if err := f.authenticate(); err != nil {
		return "", err
	}
	ref := f.opts.Ref
	if fullSHA.MatchString(ref) {
		return strings.ToLower(ref), nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	// The remote needs no storage to list refs; the cache stays untouched and unlocked, so a
	// poll never waits behind a long fetch of the same URL.
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{f.opts.URL}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: f.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		err = fmt.Errorf("list remote refs: %w", err)
		if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("timed out after %s (GitOptions.Timeout): %w", f.opts.Timeout, err)
		}
		return "", err
	}
	// Peeled entries (refs/tags/v2^{}) are kept apart so that a ref spelled with ^{} is not
	// mistaken for a tag, and used only to peel what findRef found.
	var named []*plumbing.Reference
	peeled := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, r := range refs {
		if base, ok := strings.CutSuffix(r.Name().String(), "^{}"); ok {
			peeled[plumbing.ReferenceName(base)] = r.Hash()
			continue
		}
		named = append(named, r)
	}
	name, hash, ok := findRef(named, ref)
	switch {
	case ok:
		if commit, ok := peeled[name]; ok {
			hash = commit
		}
		f.log.Debug("remote head", "resolved", name.String(), "commit", hash.String())
		return hash.String(), nil
	case ref == "" || ref == "HEAD":
		return "", fmt.Errorf("%w: the remote's HEAD names no branch; set a ref", ErrUnknownRef)
	case hexRef.MatchString(ref):
		return "", fmt.Errorf("%w: no branch or tag of that name on the remote, and an abbreviated SHA cannot be resolved without fetching; give all 40 hex digits", ErrUnknownRef)
	default:
		return "", fmt.Errorf("%w: no branch or tag of that name on the remote", ErrUnknownRef)
	}
}

// FetchCommit is Fetch for a commit RemoteHead(ctx, opts) returned: if the cache already holds
// sha (a full SHA), its checkout is returned without any request, with Ref set to sha;
// otherwise it is exactly Fetch(ctx, opts).
//
// The fallback fetches opts.Ref, not sha, because a server that does not allow SHAs in wants
// (git's default) would make Fetch of an uncached SHA download every branch with its whole
// history. So when the ref moved on after RemoteHead, the Checkout is of the newer commit:
// callers must use Checkout.Commit, not sha, as what they got.
//
// Fetch itself never goes to the network for a full SHA the cache holds, so Fetch with
// Ref set to a cached SHA costs nothing either; FetchCommit adds the cheap fallback.
func FetchCommit(ctx context.Context, opts GitOptions, sha string) (Checkout, error) {
	if !fullSHA.MatchString(sha) {
		return Checkout{}, fmt.Errorf("git %s: fetch commit %q: not a full 40-digit SHA", redactURL(opts.URL), sha)
	}
	sha = strings.ToLower(sha)
	pinned := opts.withDefaults()
	if pinned.URL == "" {
		return Checkout{}, errors.New("git: URL must be set")
	}
	pinned.Ref = sha
	safe := redactURL(pinned.URL)
	f := &fetcher{opts: pinned, log: pinned.Logger.With("url", safe, "ref", sha), cacheOnly: true}
	co, err := f.fetch(ctx)
	switch {
	case err == nil:
		return co, nil
	case errors.Is(err, errNotCached):
		f.log.Debug("commit not cached; fetching the ref", "ref", opts.Ref)
		return Fetch(ctx, opts)
	default:
		return Checkout{}, fmt.Errorf("git %s ref %q: %w", safe, sha, scrub(err, f.secrets))
	}
}

package comment

import (
	"context"
	"fmt"
	"strings"
)

// note is one pull-request comment or merge-request note, as Upsert needs it.
type note struct {
	ID   int64
	Body string
	// AuthorLogin and AuthorID say who wrote it; empty when the API does not
	// (a deleted account).
	AuthorLogin string
	AuthorID    int64
	// System marks GitLab's system notes, which are nobody's.
	System bool
}

// AuthorError says the token's identity could not be found out, so no
// comment can safely be taken for tandem's. Naming the author (GitHub.Author,
// GitLab.Author) skips the lookup.
type AuthorError struct {
	// Noun is "comment" or "note".
	Noun string
	Err  error
}

func (e *AuthorError) Error() string {
	return fmt.Sprintf("cannot tell whose %ss are tandem's, so none can be edited safely (name the author to skip this lookup): %v", e.Noun, e.Err)
}

func (e *AuthorError) Unwrap() error { return e.Err }

// identity is who tandem writes as.
type identity struct {
	Login string
	// ID is the account's numeric id; 0 when only the login is known (an
	// explicit author). Ids survive renames and need no case folding.
	ID int64
}

// wrote reports whether n is by this identity.
func (i identity) wrote(n note) bool {
	switch {
	case n.System:
		return false
	case i.ID != 0 && n.AuthorID != 0:
		return i.ID == n.AuthorID
	default:
		// GitHub logins and GitLab usernames are unique regardless of case.
		return n.AuthorLogin != "" && strings.EqualFold(i.Login, n.AuthorLogin)
	}
}

// thread is the comments of one pull or merge request, as one forge's REST
// API holds them: the verbs Upsert composes.
type thread interface {
	// noun is what the forge calls a comment: "comment" or "note".
	noun() string
	// whoami asks the API whose token this is.
	whoami(ctx context.Context) (identity, error)
	// list returns every comment, oldest first.
	list(ctx context.Context) ([]note, error)
	edit(ctx context.Context, id int64, body string) (Result, error)
	create(ctx context.Context, body string) (Result, error)
	remove(ctx context.Context, id int64) error
}

// upsert keeps exactly one comment opening with marker by tandem's identity
// (the author, or the token's own when author is empty) on t, with body as its
// text. Comments by anyone else are never touched, whatever they hold: anyone
// can write the marker. Nor are comments by the same identity that hold the
// marker further down: Actions' GITHUB_TOKEN writes as github-actions[bot] for
// every workflow, and another one may quote a pull request's text. Further
// comments of tandem's (two runs raced) are deleted, so that no stale plan
// stays on the page; one already gone (the other run deleted it) is fine. A
// create answered with a server error, or with no answer, may have been
// carried out: the comments are listed again, and the comment edited if it
// landed, rather than created twice.
func upsert(ctx context.Context, t thread, retry RetryOptions, author, body, marker string) (Result, error) {
	who := identity{Login: author}
	if author == "" {
		var err error
		if who, err = t.whoami(ctx); err != nil {
			return Result{}, &AuthorError{Noun: t.noun(), Err: err}
		}
	}
	for round := 1; ; round++ {
		all, err := t.list(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("list %ss: %w", t.noun(), err)
		}
		var ours []note
		for _, n := range all {
			if who.wrote(n) && opensWith(n.Body, marker) {
				ours = append(ours, n)
			}
		}
		if len(ours) > 0 {
			res, err := t.edit(ctx, ours[0].ID, body)
			if err != nil {
				return Result{}, fmt.Errorf("edit %s %d: %w", t.noun(), ours[0].ID, err)
			}
			res.Action, res.Author = ActionUpdated, who.Login
			for _, n := range ours[1:] {
				if err := t.remove(ctx, n.ID); err != nil {
					if notFound(err) {
						continue // a run that raced this one deleted it first
					}
					return res, fmt.Errorf("%s %d updated; delete the older duplicate %d: %w", t.noun(), ours[0].ID, n.ID, err)
				}
				res.Removed = append(res.Removed, n.ID)
			}
			return res, nil
		}
		res, err := t.create(ctx, body)
		if err == nil {
			res.Action, res.Author = ActionCreated, who.Login
			return res, nil
		}
		if !serverError(err) || round >= retry.Attempts || ctx.Err() != nil {
			return Result{}, fmt.Errorf("create %s: %w", t.noun(), err)
		}
		wait := retry.Backoff << (round - 1)
		if serr := retry.sleep(ctx, min(wait, retry.MaxWait)); serr != nil {
			return Result{}, fmt.Errorf("create %s: %w (stopped waiting to list again: %w)", t.noun(), err, serr)
		}
	}
}

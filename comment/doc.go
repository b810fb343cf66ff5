// Package comment keeps one sticky comment per pull request (GitHub) or merge
// request (GitLab) up to date: it finds tandem's own comment whose body
// contains a hidden marker and edits it, or creates it when there is none, so
// that every push to a change replaces the report instead of adding another.
// Only comments written by the token's own identity (or a named author) are
// tandem's: anyone can write the marker into a comment of theirs.
//
// It owns the two REST conversations (who am I, list with pagination, edit,
// create, delete), their authentication, bounded retries of rate limits and
// server errors, and redirects, which are followed only on the API's own host.
// It never puts a token in an error, a log or a result, nor sends it to
// another host.
//
// comment is a leaf: it must not import other tandem packages. It knows
// nothing of what the body says; cmd/tandem formats the report and passes it in.
package comment

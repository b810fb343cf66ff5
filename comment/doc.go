// Package comment keeps one sticky comment per pull request (GitHub) or merge
// request (GitLab) up to date: it finds the comment whose body contains a
// hidden marker and edits it, or creates it when there is none, so that every
// push to a change replaces the report instead of adding another.
//
// It owns the two REST conversations (list with pagination, edit, create) and
// their authentication. It never puts a token in an error, a log or a result.
//
// comment is a leaf: it must not import other tandem packages. It knows
// nothing of what the body says; cmd/tandem formats the report and passes it in.
package comment

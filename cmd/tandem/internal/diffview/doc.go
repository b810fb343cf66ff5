// Package diffview formats a reconciler.DiffReport for people: Text for the
// terminal (`tandem diff`), Markdown for a pull- or merge-request comment
// (`tandem diff -o markdown`), and JSON, the report's stable schema.
//
// It owns presentation only: ordering Active clusters first, wording, and
// keeping a comment under the forge's size limit with every fence and
// <details> block closed. It computes no differences and masks nothing: Secret
// values are already masked by the reconciler, and what it is given is shown.
//
// diffview imports reconciler for the report's types only; it must not import
// manifest, render, clusters or the comment package, and it does no I/O
// beyond the writer it is handed.
package diffview

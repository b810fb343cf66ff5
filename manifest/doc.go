// Package manifest owns tandem's manifest repository: the schema of tandem.yaml (types.go), its
// strict loading and validation (Load), safe access to the repository's files (Path, ReadFile,
// CheckTree), and the git source that checks a repository out (Fetch).
//
// Loading is strict and complete. tandem.yaml is parsed with yaml.v3 into nodes and decoded by
// hand against the json tags of the types, so that unknown fields, wrong types and duplicate keys
// are errors with a line, and every problem is reported at once in a *ValidationError. Scalars
// follow YAML 1.2: `namespace: no` is the string "no", and `adopt: yes` is an error rather than
// true. Aliases and merge keys work; the document's size with aliases expanded is bounded
// (LoadOptions.MaxYAMLNodes), which defuses alias bombs. Validation then checks names, enums,
// references between releases and clusters (a reference is a release name when it is unique, or
// "namespace/name"), dependency cycles, and the files the manifest points at.
//
// Nothing the manifest names may leave the repository: chart directories and values files are
// resolved with symlinks evaluated and must stay under the repository root, and every file of a
// local chart is checked the same way, because Helm follows symlinks when it loads a chart.
//
// Fetch keeps one cache per git URL: a bare repository that is cloned shallowly once and
// fetched incrementally after that, and one directory per fetched commit holding that commit's
// files. A commit's directory is written once and never changed, so a Checkout stays valid while
// other fetches of the same URL run; a file lock serializes fetches of one URL, across goroutines
// and processes. Credentials come from the environment and never appear in an error.
//
// manifest must not import Helm, client-go, or any other tandem package: the reconciler converts
// its types for the render and clusters packages. Its tests use the loopback git server in
// e2e/gitserver.
package manifest

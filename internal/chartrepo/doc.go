// Package chartrepo starts real chart servers on loopback for tests: a Helm
// chart repository (index.yaml and archives) over HTTPS with optional basic
// auth and client certificates, and distribution's OCI registry in memory,
// both with certificates from a throw-away CA. It imports no tandem package.
package chartrepo

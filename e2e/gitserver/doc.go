// Package gitserver runs a real git server on loopback for tests: git's own smart-HTTP server
// (git http-backend) behind net/http/cgi and HTTP basic auth, on a free 127.0.0.1 port. Tests
// create bare repositories, commit directories onto branches, tag commits, and count the requests
// and bytes the server answered, to check that a client fetches incrementally.
//
// It needs the git command-line tool and skips the calling test without it. It must not import
// any other tandem package: it is a fixture that tests of any package can use.
package gitserver

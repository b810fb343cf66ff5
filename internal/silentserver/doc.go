// Package silentserver is a test helper: a TCP server on loopback that
// accepts connections and never answers, the way a server behind a stuck
// proxy does, so tests can prove a wait is bounded. It imports no tandem
// package and is imported only by tests.
package silentserver

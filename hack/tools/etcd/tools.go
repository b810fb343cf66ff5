//go:build tools

// Package tools pins go.etcd.io/etcd/server/v3 for tandem's tests and demo.
package tools

import _ "go.etcd.io/etcd/server/v3"

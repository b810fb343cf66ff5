//go:build tools

// Package tools pins sigs.k8s.io/kwok for tandem's tests and demo.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"

//go:build tools

// Package tools pins helm.sh/helm/v3 for tandem's tests and demo.
package tools

import _ "helm.sh/helm/v3/cmd/helm"

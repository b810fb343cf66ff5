package render

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/ignore"
)

// HelmIgnored returns what Helm's loader and packer leave out of the chart
// directory dir: the rules of its .helmignore and Helm's defaults.
func HelmIgnored(dir string) (func(name string, fi fs.FileInfo) bool, error) {
	rules := ignore.Empty()
	file := filepath.Join(dir, ignore.HelmIgnore)
	if fi, err := os.Stat(file); err == nil && fi.Mode().IsRegular() {
		if rules, err = ignore.ParseFile(file); err != nil {
			return nil, fmt.Errorf("%s: %w", ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	return func(name string, fi fs.FileInfo) bool { return rules.Ignore(name, fi) }, nil
}

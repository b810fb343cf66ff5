package manifest

import (
	"fmt"
	"path/filepath"
	"reflect"
)

// LoadOptions bounds what Load (and later ReadFile and CheckTree) accept. A zero field means its default.
type LoadOptions struct {
	// MaxFileBytes bounds tandem.yaml and every values file; default 1 MiB.
	MaxFileBytes int64 `json:"maxFileBytes,omitempty"`
	// MaxChartFileBytes bounds each file of a local chart; default 5 MiB, Helm's own limit for a
	// file in a chart archive (large CRDs need more than MaxFileBytes).
	MaxChartFileBytes int64 `json:"maxChartFileBytes,omitempty"`
	// MaxChartBytes bounds the sum of a local chart's files; default 100 MiB, Helm's limit for a
	// decompressed chart.
	MaxChartBytes int64 `json:"maxChartBytes,omitempty"`
	// MaxChartFiles bounds the files and directories of a local chart; default 10000.
	MaxChartFiles int `json:"maxChartFiles,omitempty"`
	// MaxYAMLNodes bounds tandem.yaml's YAML nodes counted with every alias expanded, which
	// defuses alias bombs ("billion laughs"); default 100000.
	MaxYAMLNodes int `json:"maxYAMLNodes,omitempty"`
	// MaxProblems bounds the problems a ValidationError lists; default 100.
	MaxProblems int `json:"maxProblems,omitempty"`
	// MaxValuesRefs bounds the values file references of the whole manifest (releases'
	// and clusters' overlays', each reference counted); default 10000. With
	// MaxReleaseValuesBytes it bounds what a render reads and merges: one values file
	// referenced 50,000 times is 50,000 layers to parse.
	MaxValuesRefs int `json:"maxValuesRefs,omitempty"`
	// MaxReleaseValuesBytes bounds the values files of one release, its cluster overlays'
	// included, a file counted each time it is referenced; default 16 MiB.
	MaxReleaseValuesBytes int64 `json:"maxReleaseValuesBytes,omitempty"`
	// MaxValuesBytes bounds the values files of the whole manifest the same way; default
	// 256 MiB. A render request holds its release's values, so a run holds at most this
	// much of them per cluster.
	MaxValuesBytes int64 `json:"maxValuesBytes,omitempty"`
}

// DefaultLoadOptions returns the limits Load applies when given zero options.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{
		MaxFileBytes:      1 << 20,
		MaxChartFileBytes: 5 << 20,
		MaxChartBytes:     100 << 20,
		MaxChartFiles:     10000,
		MaxYAMLNodes:      100000,
		MaxProblems:       100,

		MaxValuesRefs:         10000,
		MaxReleaseValuesBytes: 16 << 20,
		MaxValuesBytes:        256 << 20,
	}
}

func (o LoadOptions) withDefaults() LoadOptions {
	d := DefaultLoadOptions()
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = d.MaxFileBytes
	}
	if o.MaxChartFileBytes <= 0 {
		o.MaxChartFileBytes = d.MaxChartFileBytes
	}
	if o.MaxChartBytes <= 0 {
		o.MaxChartBytes = d.MaxChartBytes
	}
	if o.MaxChartFiles <= 0 {
		o.MaxChartFiles = d.MaxChartFiles
	}
	if o.MaxYAMLNodes <= 0 {
		o.MaxYAMLNodes = d.MaxYAMLNodes
	}
	if o.MaxProblems <= 0 {
		o.MaxProblems = d.MaxProblems
	}
	if o.MaxValuesRefs <= 0 {
		o.MaxValuesRefs = d.MaxValuesRefs
	}
	if o.MaxValuesBytes <= 0 {
		o.MaxValuesBytes = d.MaxValuesBytes
	}
	if o.MaxReleaseValuesBytes <= 0 {
		o.MaxReleaseValuesBytes = d.MaxReleaseValuesBytes
	}
	return o
}

// Load reads dir/tandem.yaml, decodes it strictly (unknown fields, wrong types and duplicate
// keys are errors), validates it against the files of the repository at dir, and applies the
// defaults. Problems with the manifest come back together as a *ValidationError, each with its
// field path and line; failing to read the file is a plain error naming it.
func Load(dir string, opts LoadOptions) (*Manifest, error) {
	opts = opts.withDefaults()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest repository %q: %w", dir, err)
	}
	m := &Manifest{Dir: abs, Options: opts}
	data, err := m.ReadFile(FileName)
	if err != nil {
		return nil, fmt.Errorf("manifest repository %q: %w", abs, err)
	}

	d := newDecoder(FileName, opts.MaxProblems)
	root, ok := d.parse(data)
	if !ok || !d.checkSize(root, opts.MaxYAMLNodes) {
		return nil, d.result()
	}
	d.lines[""] = root.Line
	d.decode("", root, reflect.ValueOf(m).Elem())
	// A root that is not a mapping decodes to nothing: validating that would only add noise.
	if !d.failed[""] {
		applyDefaults(m, d)
		validate(m, d)
	}
	if err := d.result(); err != nil {
		return nil, err
	}
	return m, nil
}

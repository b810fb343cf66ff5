package render

import (
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/chart"
)

// chart encodes a loaded chart and its dependencies: what Helm's engine and
// dependency processing read. Raw (the archive's files as they were, which
// only `helm show` and chart saving read) is not sent.
func (e *encoder) chart(c *chart.Chart) {
	e.bool(c != nil)
	if c == nil {
		return
	}
	e.metadata(c.Metadata)
	e.lock(c.Lock)
	e.files(c.Templates)
	e.anyMap(c.Values)
	e.bytes(c.Schema)
	e.files(c.Files)
	deps := c.Dependencies()
	e.length(len(deps), deps == nil)
	for _, dep := range deps {
		e.chart(dep)
	}
}

func (d *decoder) chart() *chart.Chart {
	if !d.bool() {
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxValueDepth {
		d.fail(fmt.Errorf("charts nested deeper than %d", maxValueDepth))
		return nil
	}
	c := &chart.Chart{}
	c.Metadata = d.metadata()
	c.Lock = d.lock()
	c.Templates = d.files()
	c.Values = d.anyMap()
	c.Schema = d.bytes()
	c.Files = d.files()
	if n := d.length(1); n >= 0 {
		deps := make([]*chart.Chart, n)
		for i := range deps {
			if deps[i] = d.chart(); deps[i] == nil {
				d.fail(errors.New("a dependency is missing"))
				return nil
			}
		}
		c.SetDependencies(deps...)
	}
	return c
}

func (e *encoder) files(fs []*chart.File) {
	e.length(len(fs), fs == nil)
	for _, f := range fs {
		e.bool(f != nil)
		if f != nil {
			e.str(f.Name)
			e.bytes(f.Data)
		}
	}
}

func (d *decoder) files() []*chart.File {
	n := d.length(1)
	if n < 0 {
		return nil
	}
	out := make([]*chart.File, n)
	for i := range out {
		if d.bool() {
			out[i] = &chart.File{Name: d.str(), Data: d.bytes()}
		}
	}
	return out
}

// metadata writes every field of chart.Metadata; TestWorkerCodecChartRoundTrip
// fills every field by reflection, so a field a Helm upgrade adds fails it.
func (e *encoder) metadata(m *chart.Metadata) {
	e.bool(m != nil)
	if m == nil {
		return
	}
	e.str(m.Name)
	e.str(m.Home)
	e.strs(m.Sources)
	e.str(m.Version)
	e.str(m.Description)
	e.strs(m.Keywords)
	e.length(len(m.Maintainers), m.Maintainers == nil)
	for _, mt := range m.Maintainers {
		e.bool(mt != nil)
		if mt != nil {
			e.str(mt.Name)
			e.str(mt.Email)
			e.str(mt.URL)
		}
	}
	e.str(m.Icon)
	e.str(m.APIVersion)
	e.str(m.Condition)
	e.str(m.Tags)
	e.str(m.AppVersion)
	e.bool(m.Deprecated)
	e.strMap(m.Annotations)
	e.str(m.KubeVersion)
	e.dependencies(m.Dependencies)
	e.str(m.Type)
}

func (d *decoder) metadata() *chart.Metadata {
	if !d.bool() {
		return nil
	}
	m := &chart.Metadata{}
	m.Name = d.str()
	m.Home = d.str()
	m.Sources = d.strs()
	m.Version = d.str()
	m.Description = d.str()
	m.Keywords = d.strs()
	if n := d.length(1); n >= 0 {
		m.Maintainers = make([]*chart.Maintainer, n)
		for i := range m.Maintainers {
			if d.bool() {
				m.Maintainers[i] = &chart.Maintainer{Name: d.str(), Email: d.str(), URL: d.str()}
			}
		}
	}
	m.Icon = d.str()
	m.APIVersion = d.str()
	m.Condition = d.str()
	m.Tags = d.str()
	m.AppVersion = d.str()
	m.Deprecated = d.bool()
	m.Annotations = d.strMap()
	m.KubeVersion = d.str()
	m.Dependencies = d.dependencies()
	m.Type = d.str()
	return m
}

func (e *encoder) dependencies(deps []*chart.Dependency) {
	e.length(len(deps), deps == nil)
	for _, dep := range deps {
		e.bool(dep != nil)
		if dep == nil {
			continue
		}
		e.str(dep.Name)
		e.str(dep.Version)
		e.str(dep.Repository)
		e.str(dep.Condition)
		e.strs(dep.Tags)
		e.bool(dep.Enabled)
		e.value(dep.ImportValues)
		e.str(dep.Alias)
	}
}

func (d *decoder) dependencies() []*chart.Dependency {
	n := d.length(1)
	if n < 0 {
		return nil
	}
	out := make([]*chart.Dependency, n)
	for i := range out {
		if !d.bool() {
			continue
		}
		dep := &chart.Dependency{}
		dep.Name = d.str()
		dep.Version = d.str()
		dep.Repository = d.str()
		dep.Condition = d.str()
		dep.Tags = d.strs()
		dep.Enabled = d.bool()
		if iv, ok := d.value().([]any); ok {
			dep.ImportValues = iv
		} else if d.err == nil {
			d.fail(errors.New("import-values is not a list"))
		}
		dep.Alias = d.str()
		out[i] = dep
	}
	return out
}

func (e *encoder) lock(l *chart.Lock) {
	e.bool(l != nil)
	if l == nil {
		return
	}
	t, err := l.Generated.MarshalBinary()
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("chart lock: %w", err)
	}
	e.bytes(t)
	e.str(l.Digest)
	e.dependencies(l.Dependencies)
}

func (d *decoder) lock() *chart.Lock {
	if !d.bool() {
		return nil
	}
	l := &chart.Lock{}
	if t := d.bytes(); d.err == nil {
		var g time.Time
		if err := g.UnmarshalBinary(t); err != nil {
			d.fail(fmt.Errorf("chart lock: %w", err))
		}
		l.Generated = g
	}
	l.Digest = d.str()
	l.Dependencies = d.dependencies()
	return l
}

package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// helmReleaseName is Helm's own check (chartutil.ValidateReleaseName), without importing Helm.
	helmReleaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	repoName        = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	envName         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256Digest    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

const (
	dnsLabelMax       = 63
	helmReleaseMax    = 53
	dnsLabelRules     = "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	releaseNameRules  = "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	maxActiveWeight   = 255
	minActiveWeight   = 1
	maxDrainSeconds   = 3600
	defaultPrefixHelp = "e.g. " + DefaultAnnotationPrefix
)

func isDNSLabel(s string) bool { return len(s) <= dnsLabelMax && dnsLabel.MatchString(s) }

// applyDefaults fills in what tandem.yaml left out. A weight written as 0 is left alone so
// that validation can reject it rather than silently turning it into 100.
func applyDefaults(m *Manifest, d *decoder) {
	if m.ID == "" {
		m.ID = DefaultID
	}
	for i := range m.Clusters {
		if m.Clusters[i].Context == "" {
			m.Clusters[i].Context = m.Clusters[i].Name
		}
	}
	if m.DNS.AnnotationPrefix == "" {
		m.DNS.AnnotationPrefix = DefaultAnnotationPrefix
	}
	if _, set := d.lines["dns.activeWeight"]; !set && m.DNS.ActiveWeight == 0 {
		m.DNS.ActiveWeight = DefaultActiveWeight
	}
	for i := range m.Releases {
		r := &m.Releases[i]
		if r.Standby == "" {
			r.Standby = StandbyScaleToZero
		}
		if r.StandbyHooks == "" {
			r.StandbyHooks = StandbyHooksSkip
		}
		if r.Rollout == "" {
			r.Rollout = RolloutParallel
		}
		if r.OnFailure == "" {
			r.OnFailure = OnFailureRollback
		}
		if r.Timeout == "" {
			r.Timeout = DefaultTimeout
		}
	}
}

// validate records every problem of a decoded and defaulted manifest; it also writes local
// charts in their canonical "./path" form.
func validate(m *Manifest, d *decoder) {
	v := validator{m: m, d: d, ix: newReleaseIndex(m.Releases), parsed: map[string]bool{}}
	v.id()
	v.clusters()
	v.contexts()
	v.clusterCapabilities()
	v.dns()
	v.repositories()
	v.releases()
	v.stages()
	v.cycles()
}

type validator struct {
	m            *Manifest
	d            *decoder
	ix           releaseIndex
	clusterNames map[string]bool
	repos        map[string]bool
	// needs[i] holds the releases release i needs, by index, once resolved.
	needs [][]int
	// parsed holds the values files already parsed, so each file's problems show once.
	parsed map[string]bool
	// valuesRefs counts the manifest's values file references; releaseValues sums the
	// sizes of the current release's, each reference counted.
	valuesRefs    int
	releaseValues int64
	totalValues   int64
	totalReported bool
}

func (v *validator) clusters() {
	v.clusterNames = map[string]bool{}
	if len(v.m.Clusters) == 0 {
		v.d.addAt("clusters", "at least one cluster is required")
		return
	}
	first := map[string]int{}
	active, rolesValid := false, true
	for i, c := range v.m.Clusters {
		p := indexPath("clusters", i)
		switch {
		case c.Name == "":
			v.d.addAt(p+".name", "must be set")
		case !isDNSLabel(c.Name):
			v.d.addAt(p+".name", "%q is not a DNS label (%s)", c.Name, dnsLabelRules)
		}
		if j, dup := first[c.Name]; dup && c.Name != "" {
			v.d.addAt(p+".name", "duplicate cluster name %q (also clusters[%d])", c.Name, j)
		} else {
			first[c.Name] = i
		}
		v.clusterNames[c.Name] = true
		switch c.Role {
		case RoleActive:
			active = true
		case RoleStandby:
		case "":
			rolesValid = false
			v.d.addAt(p+".role", "must be set: active or standby")
		default:
			rolesValid = false
			v.d.addAt(p+".role", "unknown role %q: must be active or standby", c.Role)
		}
		if _, written := v.d.lines[p+".releases"]; written && c.Releases == nil {
			// A bare `releases:` is null, which would mean every release: too easy a slip
			// when staging a cluster, so make the writer say which.
			v.d.addAt(p+".releases", "is empty: write [] to enable no release, or leave the key out to enable every release")
		}
		seen := map[int]int{}
		for j, ref := range c.Releases {
			rp := indexPath(p+".releases", j)
			k, err := v.ix.lookup(ref)
			if err != nil {
				v.d.addAt(rp, "%v", err)
				continue
			}
			if prev, dup := seen[k]; dup {
				v.d.addAt(rp, "release %q is listed twice (also %s)", ref, indexPath(p+".releases", prev))
				continue
			}
			seen[k] = j
		}
	}
	if !active && rolesValid {
		v.d.addAt("clusters", "no cluster has role active: at least one is required (with every DNS weight zero, Route 53 would split traffic equally)")
	}
}

func (v *validator) dns() {
	_, set := v.d.lines["dns.activeWeight"]
	if w := v.m.DNS.ActiveWeight; (set || w != 0) && (w < minActiveWeight || w > maxActiveWeight) {
		v.d.addAt("dns.activeWeight", "must be within %d..%d, got %d", minActiveWeight, maxActiveWeight, w)
	}
	if p := v.m.DNS.DrainSeconds; p != nil && (*p < 0 || *p > maxDrainSeconds) {
		s := *p
		v.d.addAt("dns.drainSeconds", "must be within 0..%d seconds, got %d (it must cover the records' TTL plus the load balancer's deregistration delay)", maxDrainSeconds, s)
	}
	if p := v.m.DNS.AnnotationPrefix; !validAnnotationPrefix(p) {
		v.d.addAt("dns.annotationPrefix", "%q must be a DNS subdomain followed by \"/\" (%s)", p, defaultPrefixHelp)
	}
}

func validAnnotationPrefix(p string) bool {
	host, ok := strings.CutSuffix(p, "/")
	if !ok || host == "" || len(host) > 253 {
		return false
	}
	for _, l := range strings.Split(host, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func (v *validator) repositories() {
	v.repos = map[string]bool{}
	first := map[string]int{}
	for i, r := range v.m.Repositories {
		p := indexPath("repositories", i)
		switch {
		case r.Name == "":
			v.d.addAt(p+".name", "must be set")
		case !repoName.MatchString(r.Name):
			v.d.addAt(p+".name", "%q is not a valid repository name (letters, digits, '.', '_' and '-')", r.Name)
		}
		if j, dup := first[r.Name]; dup && r.Name != "" {
			v.d.addAt(p+".name", "duplicate repository name %q (also repositories[%d])", r.Name, j)
		} else {
			first[r.Name] = i
		}
		v.repos[r.Name] = true
		if r.URL == "" {
			v.d.addAt(p+".url", "must be set")
		} else if msg := checkRepoURL(r.URL, "https", "http", "oci"); msg != "" {
			v.d.addAt(p+".url", "%s", msg)
		} else if strings.HasPrefix(r.URL, "http://") && !r.Insecure {
			v.d.addAt(p+".url", "is plain http://: use https://, or set insecure: true to send charts (and any credentials) unencrypted")
		}
		v.repositoryAccess(p, r)
	}
}

// repositoryAccess checks where a repository's credentials and TLS files are. It never reads
// them: they exist where tandem runs, not where the manifest is validated.
func (v *validator) repositoryAccess(p string, r Repository) {
	for _, e := range []struct{ field, value string }{{"usernameEnv", r.UsernameEnv}, {"passwordEnv", r.PasswordEnv}} {
		if e.value != "" && !envName.MatchString(e.value) {
			v.d.addAt(p+"."+e.field, "%q is not an environment variable name", e.value)
		}
	}
	for _, f := range []struct{ field, value string }{{"passwordFile", r.PasswordFile}, {"certFile", r.CertFile}, {"keyFile", r.KeyFile}} {
		if f.value != "" && !path.IsAbs(f.value) {
			v.d.addAt(p+"."+f.field, "must be an absolute path: a credential does not belong in the manifest repository")
		}
	}
	if r.CAFile != "" && !path.IsAbs(r.CAFile) {
		if _, err := v.m.Path(r.CAFile); err != nil {
			v.d.addAt(p+".caFile", "%v", err)
		}
	}
	switch {
	case r.Username != "" && r.UsernameEnv != "":
		v.d.addAt(p+".usernameEnv", "set username or usernameEnv, not both")
	case r.PasswordEnv != "" && r.PasswordFile != "":
		v.d.addAt(p+".passwordFile", "set passwordEnv or passwordFile, not both")
	case (r.Username != "" || r.UsernameEnv != "") != (r.PasswordEnv != "" || r.PasswordFile != ""):
		v.d.addAt(p, "a user needs a password (passwordEnv or passwordFile) and a password a user (username or usernameEnv)")
	}
	if (r.CertFile == "") != (r.KeyFile == "") {
		v.d.addAt(p, "certFile and keyFile go together")
	}
}

// checkRepoURL returns what is wrong with a chart repository URL, or "". It never repeats the
// URL, which might hold a password.
func checkRepoURL(raw string, schemes ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	if u.User != nil {
		return "must not hold credentials: name where they are with username or usernameEnv, and passwordEnv or passwordFile"
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Sprintf("scheme must be one of %s://, got %q", strings.Join(schemes, "://, "), u.Scheme)
	}
	if u.Host == "" {
		return "has no host"
	}
	return ""
}

func (v *validator) releases() {
	v.needs = make([][]int, len(v.m.Releases))
	first := map[string]int{}
	for i := range v.m.Releases {
		r := &v.m.Releases[i]
		p := indexPath("releases", i)
		switch {
		case r.Name == "":
			v.d.addAt(p+".name", "must be set")
		case len(r.Name) > helmReleaseMax:
			v.d.addAt(p+".name", "%q is %d characters long; Helm allows at most %d", r.Name, len(r.Name), helmReleaseMax)
		case !helmReleaseName.MatchString(r.Name):
			v.d.addAt(p+".name", "%q is not a valid Helm release name (%s)", r.Name, releaseNameRules)
		}
		switch {
		case r.Namespace == "":
			v.d.addAt(p+".namespace", "must be set")
		case !isDNSLabel(r.Namespace):
			v.d.addAt(p+".namespace", "%q is not a DNS label (%s)", r.Namespace, dnsLabelRules)
		}
		if r.Name != "" && r.Namespace != "" {
			if j, dup := first[r.Key()]; dup {
				v.d.addAt(p+".name", "duplicate release %q (also releases[%d])", r.Key(), j)
			} else {
				first[r.Key()] = i
			}
		}
		v.chart(p, r)
		v.digest(p, r)
		checkValues := v.countValuesRefs(p, r)
		v.releaseValues = 0
		for j, f := range r.Values {
			if checkValues {
				v.valuesFile(indexPath(p+".values", j), f)
			}
		}
		for k := range r.Set {
			if k == "" {
				v.d.addAt(p+".set", "a key must not be empty")
			}
		}
		for _, name := range sortedKeys(r.Clusters) {
			cp := keyPath(p+".clusters", name)
			if !v.clusterNames[name] {
				v.d.addAt(cp, "unknown cluster %q", name)
			}
			o := r.Clusters[name]
			for j, f := range o.Values {
				if checkValues {
					v.valuesFile(indexPath(cp+".values", j), f)
				}
			}
			for k := range o.Set {
				if k == "" {
					v.d.addAt(cp+".set", "a key must not be empty")
				}
			}
		}
		opts := v.m.Options.withDefaults()
		if v.releaseValues > opts.MaxReleaseValuesBytes {
			v.d.addAt(p+".values", "release %q: its values files add up to %d bytes, each counted as often as it is referenced (cluster overlays included); the limit is %d", r.Key(), v.releaseValues, opts.MaxReleaseValuesBytes)
		}
		if v.totalValues += v.releaseValues; v.totalValues > opts.MaxValuesBytes && !v.totalReported {
			v.totalReported = true
			v.d.addAt(p+".values", "release %q: the manifest's values files add up to more than %d bytes, each counted as often as it is referenced", r.Key(), opts.MaxValuesBytes)
		}
		v.releaseNeeds(i, p)
		v.enums(p, r)
		for j, rule := range r.Ignore {
			rp := indexPath(p+".ignore", j)
			if len(rule.Paths) == 0 {
				v.d.addAt(rp+".paths", "at least one path is required")
			}
			for k, ptr := range rule.Paths {
				if msg := checkPointer(ptr); msg != "" {
					v.d.addAt(indexPath(rp+".paths", k), "%q is not a JSON pointer: %s", ptr, msg)
				}
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (v *validator) enums(p string, r *Release) {
	switch r.Standby {
	case StandbyScaleToZero, StandbyKeep:
	default:
		v.d.addAt(p+".standby", "unknown standby mode %q: must be %s or %s", r.Standby, StandbyScaleToZero, StandbyKeep)
	}
	switch r.StandbyHooks {
	case StandbyHooksSkip, StandbyHooksRun:
	default:
		v.d.addAt(p+".standbyHooks", "unknown standbyHooks %q: must be %s or %s", r.StandbyHooks, StandbyHooksSkip, StandbyHooksRun)
	}
	switch r.Rollout {
	case RolloutParallel, RolloutStandbyFirst:
	default:
		v.d.addAt(p+".rollout", "unknown rollout %q: must be %s or %s", r.Rollout, RolloutParallel, RolloutStandbyFirst)
	}
	switch r.OnFailure {
	case OnFailureRollback, OnFailureKeep:
	default:
		v.d.addAt(p+".onFailure", "unknown onFailure %q: must be %s or %s", r.OnFailure, OnFailureRollback, OnFailureKeep)
	}
	if t, err := time.ParseDuration(r.Timeout); err != nil {
		v.d.addAt(p+".timeout", "%q is not a Go duration such as 90s or 5m", r.Timeout)
	} else if t <= 0 {
		v.d.addAt(p+".timeout", "must be positive, got %q", r.Timeout)
	}
}

// checkPointer returns what is wrong with an RFC 6901 JSON pointer, or "".
func checkPointer(p string) string {
	if !strings.HasPrefix(p, "/") {
		return `it must start with "/"`
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return `"~" must be followed by 0 (for "~") or 1 (for "/")`
		}
	}
	return ""
}

func (v *validator) releaseNeeds(i int, p string) {
	r := v.m.Releases[i]
	seen := map[int]int{}
	for j, ref := range r.Needs {
		np := indexPath(p+".needs", j)
		k, err := v.ix.lookup(ref)
		switch {
		case err != nil:
			v.d.addAt(np, "%v", err)
			continue
		case k == i:
			v.d.addAt(np, "a release cannot need itself")
			continue
		}
		if prev, dup := seen[k]; dup {
			v.d.addAt(np, "%q is listed twice (also %s)", ref, indexPath(p+".needs", prev))
			continue
		}
		seen[k] = j
		if w := v.m.Releases[k].Wave; w > r.Wave {
			v.d.addAt(np, "needs %q, which is in a later wave (%d) than this release (%d)", ref, w, r.Wave)
		}
		v.needs[i] = append(v.needs[i], k)
	}
}

// countValuesRefs adds release r's values file references to the manifest's count and
// reports whether its files are still to be checked: past MaxValuesRefs, reading and parsing
// them (a file referenced 50,000 times is 50,000 layers per cluster) is what the bound is
// for, so the problem is reported once and the files are left alone.
func (v *validator) countValuesRefs(p string, r *Release) bool {
	max := v.m.Options.withDefaults().MaxValuesRefs
	if v.valuesRefs > max {
		return false
	}
	n := len(r.Values)
	for _, o := range r.Clusters {
		n += len(o.Values)
	}
	v.valuesRefs += n
	if v.valuesRefs > max {
		v.d.addAt(p+".values", "release %q: the manifest references values files more than %d times (each reference of a file counts)", r.Key(), max)
		return false
	}
	return true
}

// digest checks a release's chart pin: only for remote charts, sha256 only.
func (v *validator) digest(p string, r *Release) {
	if r.Digest == "" {
		return
	}
	switch {
	case !sha256Digest.MatchString(r.Digest):
		v.d.addAt(p+".digest", "must be \"sha256:\" and 64 lower-case hex digits (the SHA-256 of the chart archive)")
	case r.Local():
		v.d.addAt(p+".digest", "pins a remote chart's archive; a chart in this repository is pinned by its commit")
	}
}

// chart checks a release's chart and writes a local one in canonical form.
func (v *validator) chart(p string, r *Release) {
	cp := p + ".chart"
	chart := r.Chart
	switch {
	case chart == "":
		v.d.addAt(cp, "must be set: a directory in this repository (./charts/web), repository/chart, or oci://")
		return
	case strings.HasPrefix(chart, "oci://"):
		if msg := checkRepoURL(chart, "oci"); msg != "" {
			v.d.addAt(cp, "%s", msg)
		}
		v.needVersion(p, r)
		return
	case strings.Contains(chart, "://"):
		v.d.addAt(cp, "unsupported chart reference: use a directory in this repository (./charts/web), repository/chart, or oci://")
		return
	}
	if repo, name, ok := strings.Cut(chart, "/"); ok && !strings.HasPrefix(chart, "./") && v.repos[repo] {
		if name == "" || strings.Contains(name, "/") {
			v.d.addAt(cp, "%q must be repository/chart", chart)
		}
		v.needVersion(p, r)
		return
	}
	c, err := cleanRel(chart)
	if err != nil {
		v.d.addAt(cp, "chart %q is %v", chart, err)
		return
	}
	_, real, err := v.m.resolve(c)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		hint := ""
		if repo, _, ok := strings.Cut(chart, "/"); ok && !strings.HasPrefix(chart, ".") {
			hint = fmt.Sprintf(", and %q is not a declared repository", repo)
		}
		v.d.addAt(cp, "chart directory %q does not exist%s", chart, hint)
		return
	case err != nil:
		v.d.addAt(cp, "chart %q is %v", chart, err)
		return
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		v.d.addAt(cp, "chart %q is not a directory", chart)
		return
	}
	if !v.regularFile(path.Join(c, "Chart.yaml")) {
		v.d.addAt(cp, "chart directory %q has no Chart.yaml", chart)
		return
	}
	if err := v.m.CheckTree(c); err != nil {
		v.d.addAt(cp, "chart %v", err)
		return
	}
	if c == "." {
		r.Chart = "."
	} else {
		r.Chart = "./" + c
	}
}

// regularFile reports whether rel is a regular file inside the repository.
func (v *validator) regularFile(rel string) bool {
	_, real, err := v.m.resolve(rel)
	if err != nil {
		return false
	}
	fi, err := os.Stat(real)
	return err == nil && fi.Mode().IsRegular()
}

func (v *validator) needVersion(p string, r *Release) {
	if r.Version == "" {
		v.d.addAt(p+".version", "must be set for the remote chart %q", r.Chart)
	}
}

// valuesFile checks that a values file is a regular file inside the repository, within the
// size limit, and parses as a YAML mapping.
func (v *validator) valuesFile(field, rel string) {
	if rel == "" {
		v.d.addAt(field, "must not be empty")
		return
	}
	_, real, err := v.m.resolve(rel)
	if err != nil {
		v.d.addAt(field, "values file %q %v", rel, errorPhrase(err))
		return
	}
	opts := v.m.Options.withDefaults()
	fi, err := os.Stat(real)
	switch {
	case err != nil:
		v.d.addAt(field, "values file %q: %v", rel, err)
		return
	case !fi.Mode().IsRegular():
		v.d.addAt(field, "values file %q is not a regular file", rel)
		return
	case fi.Size() > opts.MaxFileBytes:
		v.d.addAt(field, "values file %q is %d bytes, over the limit of %d", rel, fi.Size(), opts.MaxFileBytes)
		return
	}
	v.releaseValues += fi.Size()
	c, _ := cleanRel(rel)
	if v.parsed[c] {
		return
	}
	v.parsed[c] = true
	data, err := readLimited(real, opts.MaxFileBytes)
	if err != nil {
		v.d.addAt(field, "values file %q: %v", rel, err)
		return
	}
	vd := newDecoder(c, opts.MaxProblems)
	root, ok := vd.parse(data)
	if ok && vd.checkSize(root, opts.MaxYAMLNodes) && !isNull(root) && root.Kind != yaml.MappingNode {
		vd.add("", root.Line, "a values file must hold a mapping, got %s", describe(root))
	}
	for _, p := range vd.problems {
		if p.Message != msgEmpty { // Helm takes an empty values file as no values
			v.d.addProblem(p)
		}
	}
}

// errorPhrase turns a resolve error into the end of a sentence about a file.
func errorPhrase(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "does not exist"
	}
	return "is " + err.Error()
}

// stages checks staged enablement: a release enabled on a cluster needs its needs there too,
// or it would wait for them forever.
func (v *validator) stages() {
	for i, c := range v.m.Clusters {
		if c.Releases == nil {
			continue
		}
		enabled := map[int]bool{}
		for _, ref := range c.Releases {
			if k, err := v.ix.lookup(ref); err == nil {
				enabled[k] = true
			}
		}
		for j, ref := range c.Releases {
			k, err := v.ix.lookup(ref)
			if err != nil {
				continue
			}
			for _, n := range v.needs[k] {
				if !enabled[n] {
					v.d.addAt(indexPath(indexPath("clusters", i)+".releases", j),
						"release %q needs %q, which is not enabled on cluster %q", ref, v.displayName(n), c.Name)
				}
			}
		}
	}
}

// displayName is a release's name, or namespace/name when the name alone is ambiguous.
func (v *validator) displayName(i int) string {
	r := v.m.Releases[i]
	if len(v.ix.byName[r.Name]) > 1 {
		return r.Key()
	}
	return r.Name
}

// cycles reports each dependency cycle among needs once, starting from its first release.
func (v *validator) cycles() {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make([]int, len(v.m.Releases))
	var stack []int
	reported := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		state[i] = onStack
		stack = append(stack, i)
		for _, k := range v.needs[i] {
			switch state[k] {
			case unvisited:
				visit(k)
			case onStack:
				at := len(stack) - 1
				for stack[at] != k {
					at--
				}
				v.reportCycle(append([]int(nil), stack[at:]...), reported)
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range v.m.Releases {
		if state[i] == unvisited {
			visit(i)
		}
	}
}

func (v *validator) reportCycle(cycle []int, reported map[string]bool) {
	low := 0
	for j, k := range cycle {
		if k < cycle[low] {
			low = j
		}
	}
	cycle = append(cycle[low:], cycle[:low]...)
	names := make([]string, 0, len(cycle)+1)
	for _, k := range cycle {
		names = append(names, v.displayName(k))
	}
	key := fmt.Sprint(cycle)
	if reported[key] {
		return
	}
	reported[key] = true
	names = append(names, names[0])
	v.d.addAt(indexPath("releases", cycle[0])+".needs", "dependency cycle: %s", strings.Join(names, " -> "))
}

package manifest

// maxIDLength keeps "tandem-state-<id>" and label values well inside their limits.
const maxIDLength = 40

// id checks the manifest's ID: it becomes a Helm release label value and part of an object name.
func (v *validator) id() {
	if !isDNSLabel(v.m.ID) || len(v.m.ID) > maxIDLength {
		v.d.addAt("id", "%q is not a DNS label of at most %d characters (%s)", v.m.ID, maxIDLength, dnsLabelRules)
	}
}

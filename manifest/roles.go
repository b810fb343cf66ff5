package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SetRoles rewrites the role of the named clusters in the tandem.yaml at
// path, in place. Only the bytes of each role value change: comments, key
// order, quoting style elsewhere and blank lines are kept, so the change a
// user commits (and a reviewer reads) is one line per cluster. Every named
// cluster must exist and have a role: key; roles must be active or standby.
// Clusters whose role is already the one asked for are left as they are; it
// returns the names of the clusters whose role changed, sorted.
func SetRoles(path string, roles map[string]Role) ([]string, error) {
	for name, r := range roles {
		if r != RoleActive && r != RoleStandby {
			return nil, fmt.Errorf("%s: cluster %q: role %q is neither active nor standby", path, name, r)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("set roles: %w", err)
	}
	out, changed, err := setRoles(data, roles)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("set roles: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tandem.yaml-*")
	if err != nil {
		return nil, fmt.Errorf("set roles: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("set roles: %w", err)
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("set roles: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("set roles: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("set roles: %w", err)
	}
	return changed, nil
}

// roleEdit is one role value to replace, by byte offset in the file.
type roleEdit struct {
	offset, length int
	role           Role
}

// setRoles is SetRoles on the file's bytes.
func setRoles(data []byte, roles map[string]Role) ([]byte, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("not a mapping")
	}
	var clusters *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "clusters" {
			clusters = root.Content[i+1]
		}
	}
	if clusters == nil || clusters.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("no clusters list")
	}
	lineStarts := []int{0}
	for i, b := range data {
		if b == '\n' {
			lineStarts = append(lineStarts, i+1)
		}
	}
	var edits []roleEdit
	var changed []string
	seen := map[string]bool{}
	for _, c := range clusters.Content {
		if c.Kind != yaml.MappingNode {
			continue
		}
		var name string
		var role *yaml.Node
		for i := 0; i+1 < len(c.Content); i += 2 {
			switch c.Content[i].Value {
			case "name":
				name = c.Content[i+1].Value
			case "role":
				role = c.Content[i+1]
			}
		}
		want, ok := roles[name]
		if !ok {
			continue
		}
		seen[name] = true
		if role == nil || role.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf("cluster %q has no role: key to change", name)
		}
		if Role(role.Value) == want {
			continue
		}
		if role.Line < 1 || role.Line > len(lineStarts) {
			return nil, nil, fmt.Errorf("cluster %q: role at an unknown line", name)
		}
		off := lineStarts[role.Line-1] + role.Column - 1
		length := len(role.Value)
		if role.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			length += 2
		}
		if off+length > len(data) || strings.Trim(string(data[off:off+length]), `"'`) != role.Value {
			return nil, nil, fmt.Errorf("cluster %q: role %q is not written plainly at line %d; edit it by hand", name, role.Value, role.Line)
		}
		edits = append(edits, roleEdit{offset: off, length: length, role: want})
		changed = append(changed, name)
	}
	var missing []string
	for name := range roles {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, nil, fmt.Errorf("no cluster named %s", strings.Join(missing, ", "))
	}
	// Apply from the end, so earlier offsets stay valid.
	sort.Slice(edits, func(i, j int) bool { return edits[i].offset > edits[j].offset })
	out := bytes.Clone(data)
	for _, e := range edits {
		out = append(out[:e.offset:e.offset], append([]byte(e.role), out[e.offset+e.length:]...)...)
	}
	sort.Strings(changed)
	return out, changed, nil
}

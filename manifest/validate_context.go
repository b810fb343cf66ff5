package manifest

// contexts refuses two clusters whose effective kubeconfig context (context, or the name when
// it is left out) is the same. Both would reach one API server, and that server would be
// reconciled twice per run: once as Active and once as Standby, so the Standby overlay
// (replicas 0, DNS weight 0) would land on the cluster serving traffic. Clusters that share
// a name are already reported as duplicates and are not reported again here.
//
// Two different contexts can still point at one server; only a connected tandem can tell
// (by the cluster's identity), so that check lives with the connection, not here.
func (v *validator) contexts() {
	first := map[string]int{}
	for i, c := range v.m.Clusters {
		if c.Context == "" || c.Name == "" {
			continue
		}
		j, dup := first[c.Context]
		if !dup {
			first[c.Context] = i
			continue
		}
		if v.m.Clusters[j].Name == c.Name {
			continue
		}
		p := indexPath("clusters", i)
		field, how := p+".context", ""
		if _, written := v.d.lines[field]; !written {
			field, how = p+".name", " (the cluster's name, as it sets no context)"
		}
		v.d.addAt(field, "kubeconfig context %q%s is also the context of clusters[%d] (%s): %s",
			c.Context, how, j, v.m.Clusters[j].Name, dupContextWhy)
	}
}

// dupContextWhy is the consequence a duplicate context would have, said once for every report.
const dupContextWhy = "two manifest clusters would be one cluster, reconciled as both Active and Standby; give each its own context"

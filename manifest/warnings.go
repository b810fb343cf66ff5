package manifest

import "fmt"

// Warnings are what a valid manifest holds that is allowed but risky, one
// line each naming the file and field: validate, the switchover plan and
// the pull-request plan print them.
func (m *Manifest) Warnings() []string {
	var out []string
	if m.DNS.DrainSeconds != nil && *m.DNS.DrainSeconds == 0 {
		out = append(out, fmt.Sprintf("%s: dns.drainSeconds: 0: a switchover moves the CronJobs and scales the old Active down the moment its DNS weight is 0, while resolvers still answer with the old weights until the record TTL expires and the load balancer still sends open connections until its deregistration delay: set it to cover both (default %d); 0 suits only clusters nobody reaches by DNS",
			FileName, DefaultDrainSeconds))
	}
	return out
}

package manifest

// DropUnreviewedCredentials removes the credentials (user, password, client certificate) of
// every repository of m that base, the reviewed revision, does not declare exactly alike: same
// name, URL and settings. A pull request controls its own tandem.yaml; without this, one that
// adds a repository, or points a reviewed one at a host of its choosing, would make the CI plan
// send CI's credentials there (or read any file CI can read as a "password"). The plan then
// downloads such a repository's charts anonymously, and fails if it needs credentials, until
// the change is merged. It returns the names of the repositories it changed, in manifest order.
func (m *Manifest) DropUnreviewedCredentials(base *Manifest) []string {
	reviewed := map[string]Repository{}
	if base != nil {
		for _, r := range base.Repositories {
			reviewed[r.Name] = r
		}
	}
	var dropped []string
	for i, r := range m.Repositories {
		if !r.HasCredentials() && r.CertFile == "" && r.KeyFile == "" {
			continue
		}
		if b, ok := reviewed[r.Name]; ok && b == r {
			continue
		}
		r.Username, r.UsernameEnv, r.PasswordEnv, r.PasswordFile = "", "", "", ""
		r.CertFile, r.KeyFile = "", ""
		m.Repositories[i] = r
		dropped = append(dropped, r.Name)
	}
	return dropped
}

package manifest

import "strings"

// DropUnreviewedCredentials removes the credentials (user, password, client certificate) of
// every repository of m that base, the reviewed revision, does not declare exactly alike: same
// name, URL and settings. A pull request controls its own tandem.yaml; without this, one that
// adds a repository, or points a reviewed one at a host of its choosing, would make the CI plan
// send CI's credentials there (or read any file CI can read as a "password"). The plan then
// downloads such a repository's charts anonymously, and fails if it needs credentials, until
// the change is merged. It returns the names of the repositories it changed, in manifest order.
//
// The runner's registry logins (Helm's or Docker's config) are held back the same way: an OCI
// repository not declared alike in base, and an oci:// chart no release of base names, are
// pulled anonymously (see RegistryLogin), so that a pull request cannot read into its plan a
// private chart the reviewed manifest never used.
func (m *Manifest) DropUnreviewedCredentials(base *Manifest) []string {
	reviewed := map[string]Repository{}
	reviewedCharts := map[string]bool{}
	if base != nil {
		for _, r := range base.Repositories {
			reviewed[r.Name] = r
		}
		for _, rel := range base.Releases {
			reviewedCharts[rel.Chart] = true
		}
	}
	m.NoRegistryLogin = map[string]bool{}
	for _, r := range m.Repositories {
		if b, ok := reviewed[r.Name]; !ok || b != r {
			m.NoRegistryLogin[r.Name] = true
		}
	}
	for _, rel := range m.Releases {
		if strings.HasPrefix(rel.Chart, "oci://") && !reviewedCharts[rel.Chart] {
			m.NoRegistryLogin[rel.Chart] = true
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

// RegistryLogin reports whether a release's OCI chart may be pulled with the credentials of
// Helm's or Docker's registry login: always, unless DropUnreviewedCredentials held them back
// for its repository (repo is its name) or for its oci:// chart reference (repo empty).
func (m *Manifest) RegistryLogin(repo string, rel Release) bool {
	if repo != "" {
		return !m.NoRegistryLogin[repo]
	}
	return !m.NoRegistryLogin[rel.Chart]
}

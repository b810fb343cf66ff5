// Package wild holds end-to-end tests of charts written the way public charts
// are (issue 14): a database on a common library that generates its password
// once and keeps it through lookup, a chart that generates values at every
// render without lookup, and a chart with crds/. They drive the built tandem
// binary against two local clusters and a local git repository.
package wild

// Package helmchart copies Helm charts and values so that a Helm action may
// mutate its copy. Helm's dependency processing rewrites the chart it is given
// (it drops disabled subcharts, renames aliased ones, merges imported values
// and flips metadata flags), so sharing one loaded chart between renders or
// installs would race and leak one release's choices into the next.
//
// It is shared by render (Helm's chart side) and clusters (Helm's release
// side), which must not import each other; it imports no tandem package.
package helmchart

// Package house holds no code: its test encodes the house's arrows
// (cmd -> daemon -> reconciler -> manifest, render, clusters; cmd -> webhook) so that an import that
// breaks them fails the build's tests, not a review.
package house

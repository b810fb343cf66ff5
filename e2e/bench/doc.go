// Package bench holds tandem's end-to-end benchmarks: the built tandem binary
// against two real local clusters (blue active, green standby), side by side
// with the baseline a team would script without tandem — the stock helm CLI,
// `helm upgrade --install --wait` per release, one release after another,
// both clusters in parallel — measured in the same run.
//
// Every API request of either side goes through a counting HTTPS proxy in
// front of each cluster's kube-apiserver, so both sides are counted the same
// way. Run them one benchmark at a time, once each:
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 60m ./e2e/bench/
//
// TANDEM_BENCH_RELEASES sets the number of synthetic releases (default 50).
//
// The package has no product code: it is test support, and nothing imports it.
package bench

# Local Kubernetes clusters for manual work and the demo; included by the Makefile.
# Works on its own too: make -f hack/clusters.mk clusters-up
#
#   make clusters-up     start blue and green in the background, print `export KUBECONFIG=...`
#   make clusters-down   stop them and wait until every process is gone
#
# The clusters run under one process, e2e/localcluster/cmd/localclusters, that keeps
# its pid file, the kubeconfig (written once every cluster is ready), its log and
# the clusters' data in CLUSTERS_STATE. Killing it kills its clusters too.

GO ?= go
CLUSTERS_ROOT  := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
CLUSTERS_STATE ?= $(CLUSTERS_ROOT)/.cache/clusters
CLUSTERS_NAMES ?= blue,green
CLUSTERS_NODES ?= 2
# Seconds clusters-up waits for the kubeconfig (a warm start takes about 10).
CLUSTERS_WAIT  ?= 300

clusters_pid := $(CLUSTERS_STATE)/localclusters.pid
clusters_bin := $(CLUSTERS_STATE)/localclusters
clusters_log := $(CLUSTERS_STATE)/localclusters.log
clusters_kc  := $(CLUSTERS_STATE)/kubeconfig
# Matches the command lines of the clusters' processes (their arguments name files
# in the work dir) but not this recipe's own shell: "[w]ork" matches "work".
clusters_children := $(CLUSTERS_STATE)/[w]ork/

.PHONY: tools
tools: ## Build the pinned kube-apiserver, etcd, kwok, helm, ... once into ~/.cache/tandem/tools (cold: ~11 min)
	@$(CLUSTERS_ROOT)/hack/tools/build.sh >/dev/null

.PHONY: clusters-up
clusters-up: tools ## Start local clusters blue and green in the background; prints export KUBECONFIG=...
	@mkdir -p "$(CLUSTERS_STATE)"
	@if [ -f "$(clusters_pid)" ] && kill -0 "$$(cat "$(clusters_pid)")" 2>/dev/null; then \
	  echo "clusters already running (pid $$(cat "$(clusters_pid)"))" >&2; \
	else \
	  cd "$(CLUSTERS_ROOT)" && $(GO) build -o "$(clusters_bin)" ./e2e/localcluster/cmd/localclusters || exit 1; \
	  rm -f "$(clusters_kc)"; \
	  nohup "$(clusters_bin)" --state-dir "$(CLUSTERS_STATE)" --names "$(CLUSTERS_NAMES)" --nodes "$(CLUSTERS_NODES)" \
	    >"$(clusters_log)" 2>&1 </dev/null & \
	  pid=$$!; start=$$(date +%s); \
	  echo "starting clusters $(CLUSTERS_NAMES) (pid $$pid, log $(clusters_log))" >&2; \
	  while [ ! -f "$(clusters_kc)" ]; do \
	    if ! kill -0 $$pid 2>/dev/null; then \
	      echo "clusters failed to start; end of $(clusters_log):" >&2; tail -n 40 "$(clusters_log)" >&2; exit 1; \
	    fi; \
	    if [ $$(( $$(date +%s) - start )) -ge $(CLUSTERS_WAIT) ]; then \
	      echo "clusters not ready after $(CLUSTERS_WAIT)s; stopping them; end of $(clusters_log):" >&2; \
	      tail -n 40 "$(clusters_log)" >&2; kill -TERM $$pid; exit 1; \
	    fi; \
	    sleep 0.2; \
	  done; \
	  echo "clusters ready in $$(( $$(date +%s) - start ))s" >&2; \
	fi
	@echo "export KUBECONFIG=$(clusters_kc)"

.PHONY: clusters-down
clusters-down: ## Stop the clusters that clusters-up started; waits until every process is gone
	@if [ ! -f "$(clusters_pid)" ]; then echo "no clusters running" >&2; exit 0; fi; \
	pid=$$(cat "$(clusters_pid)"); i=0; \
	kill -TERM $$pid 2>/dev/null || true; \
	while kill -0 $$pid 2>/dev/null; do \
	  i=$$((i + 1)); \
	  if [ $$i -eq 300 ]; then echo "pid $$pid still running after 60s; sending SIGKILL (its clusters die with it)" >&2; kill -KILL $$pid 2>/dev/null || true; fi; \
	  sleep 0.2; \
	done; \
	i=0; \
	while pgrep -f "$(clusters_children)" >/dev/null; do \
	  i=$$((i + 1)); \
	  if [ $$i -eq 50 ]; then echo "processes of $(CLUSTERS_STATE)/work still running:" >&2; pgrep -af "$(clusters_children)" >&2; exit 1; fi; \
	  sleep 0.2; \
	done; \
	rm -rf "$(clusters_pid)" "$(clusters_kc)" "$(CLUSTERS_STATE)/work"; \
	echo "clusters stopped" >&2

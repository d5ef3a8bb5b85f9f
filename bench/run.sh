#!/usr/bin/env bash
# The full performance comparison of issue 6: builds our test server, the raw
# coder/websocket server and the load tool, installs the Node incumbent
# (npm ci in bench/node), and measures the three one after another.
#
#   bench/run.sh                                  # the full comparison (about 10 minutes)
#   bench/run.sh -runs 1 -duration 2s -idle 5000  # a quicker look
#   bench/run.sh -smoke -servers our              # what CI runs, about 15 s
#   bench/run.sh -runs 1 -servers our,raw -profile /tmp/prof   # pprof profiles
#
# Arguments go to primus-bench (see primus-bench -h). The markdown table goes
# to standard output, followed by the JSON report (or to -json FILE);
# progress goes to standard error.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

go build -o "$bin/primus-testserver" ./cmd/primus-testserver
go build -o "$bin/rawserver" ./bench/cmd/rawserver
go build -o "$bin/primus-bench" ./bench/cmd/primus-bench

need_node=1
prev=""
for a in "$@"; do
	if [ "$prev" = "-servers" ] || [ "$prev" = "--servers" ]; then
		case ",$a," in *,node,*) ;; *) need_node=0 ;; esac
	fi
	case "$a" in -servers=*|--servers=*) case ",${a#*=}," in *,node,*) ;; *) need_node=0 ;; esac ;; esac
	prev=$a
done
if [ "$need_node" = 1 ]; then
	(cd bench/node && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

"$bin/primus-bench" -our "$bin/primus-testserver" -raw "$bin/rawserver" -node bench/node "$@"

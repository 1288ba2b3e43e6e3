#!/usr/bin/env bash
# Two orchestrator instances sharing work by capability domain, on one machine.
# Needs: a redis/valkey server binary on PATH (or REDIS_SERVER=/path/to/valkey-server), and
# mlflowdsl installed (`pip install -e .`). Run from anywhere; everything stops on exit.
set -euo pipefail
cd "$(dirname "$0")"
REDIS_SERVER=${REDIS_SERVER:-$(command -v valkey-server || command -v redis-server)}
REDIS_PORT=${REDIS_PORT:-6399}
DASK_PORT=${DASK_PORT:-8799}
export MLW_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export MLW_DASK_SCHEDULER="tcp://127.0.0.1:${DASK_PORT}"
export MLW_HOME="${MLW_HOME:-$PWD/.mlw-cluster}"   # shared by both instances: the disk cache
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# Redis with AOF (appendfsync always): what "nothing committed is lost" needs.
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always \
    --dir "$work" >"$work/redis.log" 2>&1 & pids+=($!)
dask scheduler --host 127.0.0.1 --port "$DASK_PORT" --no-dashboard >"$work/scheduler.log" 2>&1 & pids+=($!)
sleep 3
# Workers advertise the domains they serve as Dask resources.
dask worker "$MLW_DASK_SCHEDULER" --nthreads 1 --resources "CPU=2,MEMORY=4e9,domain:training=1" \
    --no-dashboard >"$work/worker-train.log" 2>&1 & pids+=($!)
dask worker "$MLW_DASK_SCHEDULER" --nthreads 1 --resources "CPU=2,MEMORY=4e9,domain:inference=1" \
    --no-dashboard >"$work/worker-infer.log" 2>&1 & pids+=($!)

# One instance per domain (the leader maps domains onto instances; see `mlw cluster status`).
mlw orchestrator start --id trainer --domains training 2>"$work/trainer.log" & pids+=($!)
mlw orchestrator start --id scorer --domains inference 2>"$work/scorer.log" & pids+=($!)
sleep 8

a=$(mlw submit train_and_score.mlw)   # shard: training (3 of its 4 tasks)
b=$(mlw submit score_only.mlw)        # shard: inference
echo "submitted $a (training) and $b (inference)"
mlw cluster status

for id in "$a" "$b"; do
  until mlw status "$id" --json --redis "$MLW_REDIS_URL" | grep -qE '"status": "(succeeded|failed|cancelled)"'; do
    sleep 1
  done
  mlw status "$id" --redis "$MLW_REDIS_URL"
done
grep -h "execution" "$work/trainer.log" "$work/scorer.log"

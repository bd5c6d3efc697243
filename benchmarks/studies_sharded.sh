#!/usr/bin/env bash
# The two coverage studies (coverage_two_stage.py, critical_study.py) at their committed settings,
# sharded over processes (one per core, jax on the CPU, one thread each), then summarised together.
# Every grid / replicate has its own seeds, so the shards give the same rows as one long run.
#   OUT=/some/dir bash benchmarks/studies_sharded.sh        (default OUT=benchmarks/results)
# Settings: GRIDS=30 GRID_SHARDS=10 REPS=20 REP_SHARDS=5 BOOTSTRAP=100 PYTHON=python3
set -uo pipefail
CORES=$(nproc)
OUT=${OUT:-benchmarks/results}
PY=${PYTHON:-python3}
GRIDS=${GRIDS:-30}; GRID_SHARDS=${GRID_SHARDS:-10}
REPS=${REPS:-20}; REP_SHARDS=${REP_SHARDS:-5}
B=${BOOTSTRAP:-100}
export JAX_PLATFORMS=cpu OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
TMP=$(mktemp -d)
mkdir -p "$OUT"
t0=$(date +%s)
# shard SCRIPT NAME TOTAL SHARDS COUNT_OPTION: TOTAL grids/replicates in SHARDS background processes
shard() {
    local per=$(( ($3 + $4 - 1) / $4 )) s k
    for ((s = 0; s < $3; s += per)); do
        k=$(( s + per > $3 ? $3 - s : per ))
        $PY "benchmarks/$1" --start $s "$5" $k --bootstrap $B --out "$TMP/$2$s" > "$TMP/$2$s.log" 2>&1 &
    done
}
shard coverage_two_stage.py cov "$GRIDS" "$GRID_SHARDS" --grids
shard critical_study.py cs "$REPS" "$REP_SHARDS" --reps
wait
secs=$(( $(date +%s) - t0 ))
note=" ($GRID_SHARDS + $REP_SHARDS processes on $CORES cores, $($PY -c 'import platform; print(platform.processor() or platform.machine())'))"
tail -n 2 "$TMP"/*.log
$PY benchmarks/coverage_two_stage.py --bootstrap $B --from-csv "$TMP"/cov*/coverage_two_stage.csv \
    --seconds $secs --note "$note" --out "$OUT" > "$OUT/coverage_two_stage.log" 2>&1 || tail "$OUT/coverage_two_stage.log"
$PY benchmarks/critical_study.py --bootstrap $B --from-csv "$TMP"/cs*/critical_study.csv \
    --seconds $secs --note "$note" --out "$OUT" > "$OUT/critical_study.log" 2>&1 || tail "$OUT/critical_study.log"
echo "shards done in $secs s$note"

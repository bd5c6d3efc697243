#!/usr/bin/env bash
# One short command for a GPU node: the runner paths (a tiny real sweep: pretraining, FMT / prompt
# tuning / LoRA, evaluation; rows must say backend gpu, dtype bfloat16) and the throughput benchmark
# (benchmarks/bench_runners.py --device). Results go to $OUT (default /tmp/device_check).
#   OUT=/some/dir bash benchmarks/device_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/device_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import jax, flax, optax, orbax.checkpoint; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/gpu.txt"
$PY -m runners.device 2>&1 | tee -a "$OUT/gpu.txt"

echo "== tiny sweep"
rm -rf /tmp/gpu_tiny_sweep /tmp/gpu_tiny_sweep_checkpoints
t0=$(date +%s)
timeout "${SWEEP_TIMEOUT:-200}" $PY -m runners run benchmarks/gpu_tiny_sweep.toml --out /tmp/gpu_tiny_sweep > "$OUT/sweep.log" 2>&1
echo "sweep exit $? in $(( $(date +%s) - t0 )) s"; tail -n 8 "$OUT/sweep.log"
$PY - "$OUT" <<'PYEOF' 2>&1 | tee "$OUT/sweep_rows.txt"
import sys, glob
import pandas as pd
files = glob.glob("/tmp/gpu_tiny_sweep/*.parquet")
if not files:
    sys.exit("no rows written")
df = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
cols = [c for c in ["method", "pet_params", "base_loss", "loss", "chrf", "backend", "device_kind", "device_count",
                    "dtype", "wall_seconds"] if c in df]
df[cols].to_csv(sys.argv[1] + "/sweep_rows.csv", index=False)
print(df[cols].to_string(index=False))
PYEOF

echo "== throughput"
XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.9} timeout "${BENCH_TIMEOUT:-300}" \
    $PY benchmarks/bench_runners.py --device ${SMOKE:+--smoke} --steps "${STEPS:-5}" --windows 3 --out "$OUT" > "$OUT/bench.log" 2>&1
echo "bench exit $?"
grep -v '^{' "$OUT/bench.log" | tail -n 16

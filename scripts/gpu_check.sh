#!/usr/bin/env bash
# The project's GPU checks in one go, for a machine with one CUDA GPU (docs/gpu.md):
#   1. the throughput benchmark on the GPU (project loop vs bare loop, all three models) at batch 32 and 256, with
#      the project loop's host syncs counted; then compiled (model.compile=true) at batch 256;
#   2. 10-epoch `trainer=gpu` training runs of the DCGAN and the conditional GAN (RUNS: NAME:MODEL:BATCH:LR
#      each; the default recipe's batch of 32 and larger ones), each scored on 10,000 samples by
#      scripts/evaluate.py, side by side with the fast tests (`pytest -m "not slow"`,
#      the CUDA-only tests included; the demo's browser test and the sweep plugins' tests left out) with the GPU
#      visible. The runs share the machine, so their seconds per epoch are upper bounds; the benchmark's are not.
# Everything goes under WORK (default outputs/gpu_check); summary.md there is the table of the training runs. With
# OUT set to another folder, the logs, the tables and results.tgz (logs, reports, last sample grids) are copied there.
# A machine without Hydra and without a package index: wheels in .whl/ are installed first (docs/gpu.md).
# Knobs for a dry run on a CPU: DEVICE=cpu TRAINER=cpu EPOCHS=1 LIMIT=5 BENCH_BATCHES=12 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-outputs/gpu_check}
OUT=${OUT:-$WORK}
DEVICE=${DEVICE:-cuda}
TRAINER=${TRAINER:-gpu}
EPOCHS=${EPOCHS:-10}
LIMIT=${LIMIT:-}                    # trainer.limit_train_batches for a dry run
XDIST=${XDIST--n 4}                 # pytest-xdist workers (XDIST= without it); -n 8 with nothing beside them
TESTS=${TESTS:-tests}               # what the fast tests run
BENCH_BATCHES=${BENCH_BATCHES:-40}
PYTHON=${PYTHON:-python3}
PARTS=${PARTS:-bench compile train tests}  # which of the steps below to run
RUNS=${RUNS:-dcgan_b32_lr2e-4:dcgan:32:2e-4 cgan_b32_lr2e-4:cgan:32:2e-4 dcgan_b64_lr2e-4:dcgan:64:2e-4 dcgan_b256_lr2e-4:dcgan:256:2e-4}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-330}  # seconds per training run; one stopped by it saves last.ckpt and is scored all the same
TESTS_TIMEOUT=${TESTS_TIMEOUT:-$TRAIN_TIMEOUT}  # seconds for the fast tests, which run beside the training runs
mkdir -p "$WORK/runs" "$OUT"
if ! "$PYTHON" -c "import hydra, omegaconf" 2>/dev/null; then
  site=$(realpath -m "$WORK/site")
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH=$site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
log() { echo "== $(date +%T) $*" | tee -a "$WORK/steps.log"; }

log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__,
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc; } > "$WORK/machine.txt" 2>&1
cat "$WORK/machine.txt"

bench=(scripts/benchmark_throughput.py --device "$DEVICE" --batches "$BENCH_BATCHES" --warmup 5 --repeats 3)
if [[ $PARTS == *bench* ]]; then
  log "throughput, eager"
  for batch in 32 256; do
    timeout 90 "$PYTHON" "${bench[@]}" --batch-size $batch --syncs 2>&1 | grep -v "^Epoch\|it/s\]" >> "$WORK/throughput.md"
  done
fi
if [[ $PARTS == *profile* ]]; then
  log "profile of the project loop"
  timeout 60 "$PYTHON" "${bench[@]}" --batch-size 32 --models dcgan --repeats 1 --profile 2>&1 \
    | grep -v "^Epoch\|it/s\]" >> "$WORK/throughput.md"
fi
if [[ $PARTS == *compile* ]]; then
  log "throughput, compiled"
  timeout 100 "$PYTHON" "${bench[@]}" --batch-size 256 --compile --repeats 2 --models dcgan cgan 2>&1 \
    | grep -v "^Epoch\|it/s\]" >> "$WORK/throughput.md"
fi
[ -f "$WORK/throughput.md" ] && grep "^|\|host syncs\|^  \|throughput\|rror" "$WORK/throughput.md" | head -60

if [[ $PARTS == *train* ]]; then
log "training runs and tests, side by side"
train() {  # NAME MODEL BATCH LR
  local dir="$WORK/runs/$1"
  { OMP_NUM_THREADS=2 timeout "$TRAIN_TIMEOUT" "$PYTHON" scripts/train.py trainer="$TRAINER" model="$2" data.batch_size="$3" optimizer.lr="$4" \
      seed=0 trainer.max_epochs="$EPOCHS" trainer.enable_progress_bar=false ${LIMIT:+trainer.limit_train_batches=$LIMIT} \
      hydra.run.dir="$dir"
    echo "train exit $?"  # a run stopped by the time limit saves last.ckpt on SIGTERM: scored all the same
    timeout 50 "$PYTHON" scripts/evaluate.py ckpt_path="$dir/checkpoints/last.ckpt" n=10000 device="$DEVICE" \
      out="$dir/eval.json"; } > "$WORK/runs/$1.log" 2>&1
  echo "$1 exit $?" >> "$WORK/steps.log"
}
for run in $RUNS; do
  IFS=: read -r name model batch lr <<< "$run"
  train "$name" "$model" "$batch" "$lr" &
done
fi
if [[ $PARTS == *tests* ]]; then
# the fast tests, the CUDA-only ones among them (-rs lists what was skipped, and why); the Optuna sweeper's config
# needs the sweeps extra, which the machine lacks
OMP_NUM_THREADS=2 timeout "$TESTS_TIMEOUT" "$PYTHON" -m pytest -q -rfEs -m "not slow" -p no:cacheprovider $XDIST "$TESTS" \
  -k "not fid_optuna" \
  --ignore=tests/test_demo.py --ignore=tests/test_sweeps.py > "$WORK/pytest.log" 2>&1
echo "pytest exit $?" >> "$WORK/steps.log"
tail -15 "$WORK/pytest.log"
fi
wait
log "done"

[[ $PARTS == *train* ]] && "$PYTHON" - "$WORK" <<'EOF' | tee "$WORK/summary.md"
import json, sys
from pathlib import Path
from omegaconf import OmegaConf
runs = Path(sys.argv[1]) / "runs"
print("| run | status | epochs | train s | s/epoch (val. incl.) | FID | KID | min class share | label accuracy |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for run in sorted(p for p in runs.iterdir() if p.is_dir()):
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    report = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
    m = report.get("model", {})
    # epochs done: one sample grid per epoch (a run stopped by the time limit did fewer than max_epochs)
    epochs = len(list((run / "samples").glob("epoch_*.png"))) or OmegaConf.load(run / ".hydra" / "config.yaml").trainer.max_epochs
    seconds = metrics.get("seconds", float("nan"))
    fmt = lambda v: "-" if v is None else f"{v:.4g}"
    print(f"| {run.name} | {metrics.get('status', '?')} | {epochs} | {seconds:.0f} | {seconds / max(epochs, 1):.1f} | "
          f"{fmt(m.get('fid'))} | {fmt(m.get('kid_mean'))} | {fmt(m.get('min_class_share'))} | "
          f"{fmt(m.get('label_accuracy'))} |")
if report:
    r = report["real_reference"]
    print(f"| real data | | | | | {r['fid']:.4g} | {r['kid_mean']:.4g} | {r['min_class_share']:.4g} | "
          f"{r.get('label_accuracy', float('nan')):.4g} |")
EOF
(cd "$WORK" && tar czf results.tgz steps.log machine.txt throughput.md pytest.log summary.md runs/*.log \
  runs/*/eval.json runs/*/metrics.json runs/*/train.log runs/*/samples/epoch_*.png 2>/dev/null)
if [ "$(realpath "$OUT")" != "$(realpath "$WORK")" ]; then
  cp "$WORK"/{steps.log,machine.txt,throughput.md,pytest.log,summary.md,results.tgz} "$OUT"/ 2>/dev/null
fi
exit 0

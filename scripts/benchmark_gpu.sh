#!/usr/bin/env bash
# The GPU measurements of docs/results/speed.md, in one go (about 8 minutes on an H200):
#   scripts/benchmark_gpu.sh OUT_DIR [CASES_DIR]
# 0. the GPU-only tests (CUDA graphs equal to the eager path; tests_gpu.txt), when pytest is installed;
# 1. scripts/benchmark.py on CUDA: every benchmark case at 64/128/256 px, plain / fast / fast without CUDA graphs /
#    Lightning / bf16-mixed, and where a fast step's time goes at 128 px (seg, denoise);
# 2. quality of bf16-mixed against fp32 (TF32 convolutions, PyTorch's default on CUDA): scripts/evaluate.py on
#    the cases seg_textures, haze_building and noisy_f16 of CASES_DIR (the dev cases of docs/results/README.md),
#    once per precision, both at once; skipped without CASES_DIR.
# OUT_DIR receives ten files (test log, tables, JSON, the GPU's name); run dirs stay in a temporary folder.
set -u
out=${1:?usage: scripts/benchmark_gpu.sh OUT_DIR [CASES_DIR]}
cases=${2:-}
BENCH_ARGS=${BENCH_ARGS:-"--steps 30"}   # e.g. BENCH_ARGS="--sizes 64 --steps 3" for a dry run
EVAL_ARGS=${EVAL_ARGS:-""}               # e.g. EVAL_ARGS="--steps 5"
ACCELERATOR=${ACCELERATOR:-gpu}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, '| cuDNN', torch.backends.cudnn.version(), '| TF32 convolutions', torch.backends.cudnn.allow_tf32)"
} | tee "$out/gpu.txt"
if python3 -c "import pytest" 2>/dev/null; then
  timeout 180 python3 -m pytest -q tests/test_speed.py -k "cuda_graphs or graphed" > "$out/tests_gpu.txt" 2>&1
  tail -1 "$out/tests_gpu.txt"
fi
# shellcheck disable=SC2086
timeout 400 python3 scripts/benchmark.py --accelerator "$ACCELERATOR" --bf16 --eager $BENCH_ARGS \
  --tasks seg dehaze denoise denoise-ensemble denoise-ensemble-stacked --out "$out/benchmark_gpu.json" 2>&1 | grep -v -i warn
timeout 120 python3 scripts/benchmark.py --accelerator "$ACCELERATOR" --tasks seg denoise --sizes 128 --steps 20 --repeats 2 \
  --profile 128 --out "$out/profile_gpu_128.json" 2>&1 | grep -v -i warn
[ -n "$cases" ] || { echo "no CASES_DIR: quality runs skipped"; exit 0; }
for precision in 32-true bf16-mixed; do
  # shellcheck disable=SC2086
  timeout 240 python3 scripts/evaluate.py --cases "$cases" --only seg_textures haze_building noisy_f16 $EVAL_ARGS \
    --out "$work/$precision" --override "trainer=$ACCELERATOR" "trainer.precision=$precision" > "$work/$precision.log" 2>&1 &
done
wait
for precision in 32-true bf16-mixed; do
  cp "$work/$precision/evaluate.md" "$out/evaluate_$precision.md" && cp "$work/$precision/evaluate.json" "$out/evaluate_$precision.json" \
    || tail -20 "$work/$precision.log"
done
cat "$out"/evaluate_*.md

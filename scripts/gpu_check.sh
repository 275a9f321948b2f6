#!/usr/bin/env bash
# bash scripts/gpu_check.sh     On a machine with a GPU: the GPU tests, then a short GPU
# training per precision, printing device, precision and throughput (< 3 min on one H100).
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
.venv/bin/python -c "import torch; print('device:', torch.cuda.get_device_name(0))"
.venv/bin/pytest -q tests/test_distributed.py -k gpu
for precision in 32-true bf16-mixed 16-mixed; do
    start=$(date +%s.%N)
    .venv/bin/litlab train trainer=gpu trainer.precision="$precision" experiment=seed \
        runs_dir="$(mktemp -d)" > /tmp/gpu_check_$precision.log 2>&1
    end=$(date +%s.%N)
    echo "precision $precision: 1000 epochs in $(echo "$end - $start" | bc) s (whole process)"
    grep -E "^test/acc" /tmp/gpu_check_$precision.log
done

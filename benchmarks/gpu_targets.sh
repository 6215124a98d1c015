#!/usr/bin/env bash
# The GPU targets of issue #12, ready to paste on a machine with one CUDA GPU (run from the repository root,
# after `make setup TORCH_SPEC="torch torchvision"` and with CIFAR-10 in $COURSE_DATA or downloadable).
#
#   target                                              command below
#   batched augmentation >= 5x the per-image pipeline   1, 2 (same GPU, same process, side by side)
#   SimCLR, ResNet-18, >= 85 % kNN in <= 10 min (H100)  3
#   BYOL,   ResNet-18, >= 86 % kNN in <= 15 min (H100)  4
#
# Each prints its device, the achieved fraction of the card's peak, and the wall time beside a matmul probe;
# summary.json / the --json file keep the numbers. Budgets are in epochs: the minutes are what the card gives.
set -euo pipefail
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
OUT=${OUT:-runs/gpu-targets}
mkdir -p "$OUT"

# 1. augmentation alone: views/s of the per-image torchvision chain vs the batched one on the GPU
python benchmarks/augment.py --device cuda --n 50000 --batch 1024 | tee "$OUT/augment.txt"
# 2. end to end, the same ResNet-18 and steps: device-resident + batched vs a per-image DataLoader (8 workers)
python benchmarks/ssl_cifar.py simclr --profile gpu --epochs 3 --batch-size 512 --workers 8 --compare-baseline \
    --json "$OUT/ssl_cifar_simclr.json" | tee "$OUT/ssl_cifar_simclr.txt"
# 3. SimCLR: LARS at 0.3 x 512/256, warm-up 10 epochs then cosine, tau 0.2 (solo-learn's CIFAR choice), bf16, compiled
python -m course_lib.train simclr --profile gpu --epochs 200 --batch-size 512 --optimizer lars --weight-decay 1e-6 \
    --set temperature=0.2 --set projector_hidden=2048 --compile --knn-every 10 --out "$OUT/simclr"
# 4. BYOL: LARS, tau_base 0.99 with the cosine schedule, same budget
python -m course_lib.train byol --profile gpu --epochs 200 --batch-size 512 --optimizer lars --weight-decay 1.5e-6 \
    --compile --knn-every 10 --out "$OUT/byol"
python - "$OUT" <<'EOF'
import json, sys, pathlib
for name in ("simclr", "byol"):
    s = json.loads((pathlib.Path(sys.argv[1]) / name / "summary.json").read_text())
    print(f"{name}: kNN {s['knn_acc']:.4f}, linear probe {s['linear_probe']:.4f}, {s['train_time_s'] / 60:.1f} min "
          f"training ({s['wall_time_s'] / 60:.1f} min wall) on {s['device']}, {s['epochs']} epochs, probe {s['matmul_gflops']:.0f} GFLOPS")
EOF

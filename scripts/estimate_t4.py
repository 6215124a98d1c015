"""How long the ``gpu`` profile of notebooks 00-04 takes on a Colab T4, estimated from FLOP counts.

The gpu profile cannot be timed on the project's machines (no GPU), so this counts instead: the FLOPs
of one training step (forward + backward) and one feature-extraction pass of the gpu profile's
models, counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, no
arithmetic: a second), times the number of images each notebook pushes through them, divided by
an assumed achievable T4 throughput::

    python scripts/estimate_t4.py              # the budgets the notebooks hold now, and the proposed ones
    python scripts/estimate_t4.py --current    # only the current ones

Assumptions (printed with the table):

* T4 peaks: 65 TFLOPS fp16 on tensor cores, 8.1 TFLOPS fp32 (NVIDIA's data sheet).
* Achievable training throughput, three cases: fp16 autocast at 25 % of peak (16 TFLOPS, optimistic),
  fp16 autocast at 15 % of peak (9.8 TFLOPS: NVIDIA's measured T4 ResNet-50 mixed-precision rate,
  1 198 img/s x 8.2 GFLOP at batch 256, DeepLearningExamples, and their V100 numbers show training
  running at about the inference FLOP rate), and fp32 at 40 % of peak (3.2 TFLOPS: the same
  source's fp32 T4 rate, 415 img/s). ``fit`` uses fp16 autocast with a gradient scaler on a T4.
* Feature extraction (``extract_features``, kNN/retrieval monitors) runs without autocast, so
  always at the fp32 rate.
* A step cannot be faster than the host can launch its kernels: ~350 PyTorch ops a step
  (counted below for forward + backward, plus ~60 for Adam, the gradient scaler and the batched
  augmentation) at 10 us each on Colab's 2 vCPUs. This matters only for small batches (04's
  N-pair loader: 20 images a step).
* Not counted: the pip install and the CIFAR-10 download (~1-2 min together), DataLoader work
  on the CPU (02's PairDataset assembles pairs image by image in one worker), t-SNE (01: 3 maps
  of 2 000 points on the CPU), linear probes, kNN/MAP@R distance matrices (cheap on the GPU).
  So the verdict asks for <= 15 min of estimated GPU time, leaving 5 of the 20 minutes for these.

The budgets are written out below (one entry per training run), each with the notebook cell that
holds them: parsing ``pick(...)`` out of the notebooks would be brittle, so when a notebook's budget
changes, change its entry here too.
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

T4_FP16_PEAK = 65e12
T4_FP32_PEAK = 8.1e12
THROUGHPUT = {  # column name: (training FLOP/s, what it assumes)
    "fp16 25%": (0.25 * T4_FP16_PEAK, "fp16 autocast, 25 % of the 65 TFLOPS tensor-core peak (optimistic)"),
    "fp16 15%": (0.15 * T4_FP16_PEAK, "fp16 autocast, 15 % of peak (NVIDIA's measured T4 ResNet-50 AMP rate)"),
    "fp32 40%": (0.40 * T4_FP32_PEAK, "no autocast, 40 % of the 8.1 TFLOPS fp32 peak"),
}
EVAL_FLOPS = 0.40 * T4_FP32_PEAK      # extract_features runs without autocast
SECONDS_PER_OP = 10e-6                # host-side launch cost of one PyTorch op on Colab's CPU
EXTRA_OPS_PER_STEP = 60               # Adam (foreach), GradScaler, batched crop/flip of the batch
TARGET_MIN = 20.0                     # COURSE.md: <= 20 min a notebook on a T4
GPU_SHARE_MIN = 15.0                  # what the GPU work may take of it (the rest: install, data, CPU work)

TRAIN, TEST = 50_000, 10_000          # full CIFAR-10 in the gpu profile (course_lib.data.PROFILE_SIZES)


# ------------------------------------------------------------------------------------------ counting
def _copy_to(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """A copy of ``model`` on ``device``, in training mode; the caller's model is left as it is."""
    if any(p.is_meta for p in model.parameters()):
        model = copy.deepcopy(model)
        return model.to_empty(device=device) if device != "meta" else model
    return copy.deepcopy(model).to(device).train()


def flops_by_module(model: torch.nn.Module, batch_size: int = 1, image_size: int = 32,
                    backward: bool = True, device: str = "meta") -> dict:
    """FLOPs (2 per multiply-add, as FlopCounterMode counts) of one pass of ``batch_size`` images,
    forward (+ backward of ``output.sum()``), per module name (``"Global"`` = everything).
    Counts on a copy on ``device`` (``"meta"``: shapes only, no memory, no arithmetic)."""
    model = _copy_to(model, device)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    counter = FlopCounterMode(display=False)
    if backward:
        with counter:
            model(x).float().sum().backward()
    else:
        with counter, torch.no_grad():
            model(x)
    return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}


def step_flops(model: torch.nn.Module, batch_size: int = 1, backward: bool = True, device: str = "meta") -> int:
    """Total FLOPs of one forward (+ backward) pass of ``batch_size`` 32x32 images."""
    return flops_by_module(model, batch_size, backward=backward, device=device).get("Global", 0)


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(model: torch.nn.Module, device: str = "meta") -> int:
    """PyTorch ops dispatched by one forward + backward (each roughly one kernel launch on a GPU),
    plus EXTRA_OPS_PER_STEP for the optimizer, the gradient scaler and the augmentation."""
    model = _copy_to(model, device)
    with _OpCounter() as counter:
        model(torch.randn(2, 3, 32, 32, device=device)).float().sum().backward()
    return counter.ops + EXTRA_OPS_PER_STEP


# ------------------------------------------------------------------------------------------ budgets
@dataclass
class Run:
    """One training run: ``epochs`` passes over ``images`` images in batches of ``batch`` images."""
    what: str
    epochs: float
    images: int
    batch: int


@dataclass
class Notebook:
    name: str
    where: str                          # the cell holding the gpu budgets
    model: str                          # "classifier" or "embedding"
    runs: list = field(default_factory=list)
    eval_images: int = 0                # images through extract_features (monitors, tables)

    def train_images(self) -> float:
        return sum(r.epochs * r.images for r in self.runs)

    def steps(self) -> float:
        return sum(r.epochs * (r.images // r.batch) for r in self.runs)


def current_budgets() -> list:
    """The gpu budgets the notebooks hold now (cell numbers count every cell from 0)."""
    pk_320 = (TRAIN // 320) * 320   # PKSampler: len = N // (P*K) batches an epoch
    pk_128 = (TRAIN // 128) * 128
    return [
        Notebook("00_start_here", "cell 5: EPOCHS = pick(gpu=3, ...), BATCH = pick(gpu=512, ...)", "classifier",
                 [Run("1 epoch, then resumed to EPOCHS (cells 19, 21)", 3, TRAIN, 512),
                  Run("the same run uninterrupted (cell 21)", 3, TRAIN, 512)],
                 # kNN monitor after each of the 3 resumed epochs: bank (all train) + test; final test logits
                 eval_images=3 * (TRAIN + TEST) + TEST),
        Notebook("01_representations", "cell 3: EPOCHS = pick(gpu=30, ...), BATCH = pick(gpu=512, ...)", "classifier",
                 [Run("supervised classifier (cell 9)", 30, TRAIN, 512)],
                 # monitor every EPOCHS // 4 epochs and after the last (5x train + test), test accuracy,
                 # features of random + supervised CNN over train + test (cell 11), invariance (cells 15, 17)
                 eval_images=5 * (TRAIN + TEST) + TEST + 2 * (TRAIN + TEST) + 2 * 2 * 7 * 1000),
        Notebook("02_siamese_contrastive", "cell 3: EPOCHS = pick(gpu=10, ...), PAIRS = pick(gpu=20_000, ...), "
                 "BATCH = pick(gpu=256, ...)", "embedding",
                 [Run("2-D hinge, snapshot every epoch (cell 15)", 10, 2 * 20_000, 2 * 256),
                  Run("3 more models: squared 2-D, hinge and squared 32-D (cell 29)", 3 * 10, 2 * 20_000, 2 * 256)],
                 eval_images=11 * TEST + 4 * TEST),            # test snapshots (epochs 0-10) + the comparison
        Notebook("03_triplets_mining", "cell 3: EPOCHS = pick(gpu=4, ...), P, K = pick(gpu=(10, 32), ...)", "embedding",
                 [Run("7 strategies (cell 15)", 7 * 4, pk_320, 320)],
                 eval_images=(7 * 4 + 1) * TEST),               # RetrievalMonitor on the test set every epoch
        Notebook("04_beyond_triplets", "cell 3: EPOCHS = pick(gpu=6, ...); P, K = 8, 16", "embedding",
                 [Run("9 losses on PK batches of 8 x 16 (cell 19)", 9 * 6, pk_128, 128),
                  Run("N-pair, batches of 10 classes x 2 (cell 19)", 6, (TRAIN // 20) * 20, 20),
                  Run("prototypical on 5 classes, 2 x EPOCHS (cell 27)", 2 * 6, (TRAIN // 2 // 80) * 80, 80)],
                 eval_images=11 * TEST + 3 * 2000 + 3 * TEST // 2),   # table, histograms, few-shot
    ]


def proposed_budgets() -> list:
    """The current budgets with 04's shrunk to fit GPU_SHARE_MIN at the 15 % assumption; 00-03 fit."""
    pk_128 = (TRAIN // 128) * 128
    nbs = current_budgets()
    nbs[4] = Notebook("04_beyond_triplets", "cell 3: EPOCHS = pick(gpu=3, cpu=3, smoke=1)", "embedding",
                      [Run("9 losses on PK batches of 8 x 16 (cell 19)", 9 * 3, pk_128, 128),
                       Run("N-pair, batches of 10 classes x 2 (cell 19)", 3, (TRAIN // 20) * 20, 20),
                       Run("prototypical on 5 classes, 2 x EPOCHS (cell 27)", 2 * 3, (TRAIN // 2 // 80) * 80, 80)],
                      eval_images=11 * TEST + 3 * 2000 + 3 * TEST // 2)
    return nbs


# ------------------------------------------------------------------------------------------ estimate
def gpu_models() -> dict:
    from course_lib.models import Classifier, EmbeddingNet, resnet18_cifar

    return {"classifier": Classifier(resnet18_cifar(), num_classes=10),
            "embedding": EmbeddingNet(resnet18_cifar(), dim=128)}


def estimate(notebooks: list) -> list:
    """Per notebook: FLOPs and minutes under each throughput assumption."""
    counts = {}
    for kind, model in gpu_models().items():
        # per image, counted on a batch of 2 (BatchNorm1d in the neck needs 2); FLOPs scale with the batch
        counts[kind] = (step_flops(model, 2, backward=True) / 2, step_flops(model, 2, backward=False) / 2,
                        ops_per_step(model))
    rows = []
    for nb in notebooks:
        train_per_image, fwd_per_image, ops = counts[nb.model]
        train_flops = nb.train_images() * train_per_image
        eval_flops = nb.eval_images * fwd_per_image
        minutes = {}
        for column, (rate, _) in THROUGHPUT.items():
            seconds = sum(r.epochs * (r.images // r.batch) * max(r.batch * train_per_image / rate,
                                                                 ops * SECONDS_PER_OP) for r in nb.runs)
            minutes[column] = (seconds + eval_flops / EVAL_FLOPS) / 60
        rows.append({"notebook": nb.name, "where": nb.where, "train_flops": train_flops,
                     "eval_flops": eval_flops, "epochs": nb.train_images() / TRAIN, "steps": nb.steps(),
                     "minutes": minutes, "per_image": (train_per_image, fwd_per_image), "ops": ops})
    return rows


def print_table(title: str, rows: list) -> None:
    cols = list(THROUGHPUT)
    print(f"\n{title}")
    print(f"{'notebook':<24s} {'epochs*':>7s} {'steps':>7s} {'train PFLOP':>11s} {'eval PFLOP':>10s} "
          + " ".join(f"{c + ' min':>12s}" for c in cols) + "  within 20 min?")
    for r in rows:
        m = r["minutes"]
        verdict = ("yes" if m["fp16 15%"] <= GPU_SHARE_MIN else
                   "only if 25% holds" if m["fp16 25%"] <= GPU_SHARE_MIN else "NO")
        print(f"{r['notebook']:<24s} {r['epochs']:7.1f} {r['steps']:7.0f} {r['train_flops'] / 1e15:11.1f} "
              f"{r['eval_flops'] / 1e15:10.2f} " + " ".join(f"{m[c]:12.1f}" for c in cols) + f"  {verdict}")
    print("  epochs: full-CIFAR-10 ResNet-18 training epochs, all runs together; steps: optimizer steps")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--current", action="store_true", help="only the budgets the notebooks hold now")
    args = parser.parse_args(argv)
    rows = estimate(current_budgets())
    train_per_image, fwd_per_image = rows[0]["per_image"]
    print(f"ResNet-18 (CIFAR stem) on 32x32, counted by FlopCounterMode on the meta device: "
          f"{fwd_per_image / 1e9:.2f} GFLOP forward, {train_per_image / 1e9:.2f} GFLOP forward + backward "
          f"per image; {rows[0]['ops']} PyTorch ops a training step")
    print("assumptions: T4 peaks 65 TFLOPS fp16 (tensor cores), 8.1 TFLOPS fp32; training at")
    for column, (rate, what) in THROUGHPUT.items():
        print(f"  {column}: {rate / 1e12:5.1f} TFLOPS  ({what})")
    print(f"  feature extraction without autocast at {EVAL_FLOPS / 1e12:.1f} TFLOPS; a step takes at least "
          f"ops x {SECONDS_PER_OP * 1e6:.0f} us of host time; verdict 'yes' = <= {GPU_SHARE_MIN:.0f} min at 15 %, "
          f"leaving {TARGET_MIN - GPU_SHARE_MIN:.0f} min of the {TARGET_MIN:.0f} for install, download and CPU work")
    print_table("current gpu budgets", rows)
    for r in rows:
        print(f"  {r['notebook']}: {r['where']}")
    if not args.current:
        proposed = estimate(proposed_budgets())
        print_table("proposed gpu budgets", proposed)
        for r in proposed:
            print(f"  {r['notebook']}: {r['where']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

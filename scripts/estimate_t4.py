"""How long the ``gpu`` profile of notebooks 00-04 and 06-08 takes on a Colab T4, estimated from FLOP counts.

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
  N-pair loaders: 20 and 10 images a step).
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
    "fp16 15%": (0.15 * T4_FP16_PEAK, "fp16 autocast, 15 % of peak (NVIDIA's measured T4 ResNet-50 AMP inference rate)"),
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
    """``epochs`` passes over ``images`` training images in batches of ``batch`` images."""
    what: str
    epochs: float
    images: int
    batch: int

    def steps(self) -> int:
        return int(self.epochs * (self.images // self.batch))


@dataclass
class Notebook:
    name: str
    holds: tuple                        # the notebook's gpu budget lines, verbatim (a test checks they are there)
    where: str                          # the cell that holds them
    model: str                          # "classifier" or "embedding"
    runs: list = field(default_factory=list)
    eval_images: int = 0                # images through extract_features (monitors, tables, figures)

    def train_images(self) -> float:
        return sum(r.epochs * r.images for r in self.runs)

    def steps(self) -> int:
        return sum(r.steps() for r in self.runs)


def pk(images: int, p: int, k: int) -> int:
    """Images a PKSampler epoch uses: len = N // (P·K) batches."""
    return (images // (p * k)) * p * k


def monitor_calls(epochs: int, every: int) -> int:
    """How often ``fit(..., monitor_every=every)`` runs its monitor: every ``every``-th epoch and the last."""
    return sum(1 for e in range(1, epochs + 1) if e % every == 0 or e == epochs)


def current_budgets(e04: int = 1, e01: int = 20, e02: int = 10, e03: int = 4,
                    every01_29=lambda e: max(1, e // 4), e06: int = 12, e07: int = 15, e08: int = 6) -> list:
    """The notebooks' gpu budgets (as of this script's last edit; cells counted from 0), with the
    epochs of 01-04 and 06-08 (and 01 cell 29's ``monitor_every``) as arguments so that others can be tried."""
    every01 = max(1, e01 // 4)
    return [
        Notebook("00_start_here", ("EPOCHS = pick(gpu=3,", "BATCH = pick(gpu=512,"), "cell 5, lines 4-5", "classifier",
                 [Run("1 epoch (cell 19), resumed to EPOCHS (cell 21)", 3, TRAIN, 512),
                  Run("the same run uninterrupted (cell 21)", 3, TRAIN, 512),
                  Run("per-run checkpoint, 1 epoch (cell 27)", 1, TRAIN, 512)],
                 # kNN monitor (bank = all train + test) after epochs of cells 19, 21 (2) and 27; test logits x 2
                 eval_images=4 * (TRAIN + TEST) + 2 * TEST),
        Notebook("01_representations", (f"EPOCHS = pick(gpu={e01},", "BATCH = pick(gpu=512,"), "cell 3, lines 1-2",
                 "classifier",
                 [Run("supervised classifier, 10 classes (cell 9)", e01, TRAIN, 512),
                  Run("classifier on classes 0-4 (cell 29)", e01, TRAIN // 2, 512)],
                 # cell 9: monitor every EPOCHS // 4 epochs + the last, and test accuracy; cell 11: random and
                 # supervised CNN over train + test; cells 15, 17: 1000 images x 7 transforms x 2 encoders x 2;
                 # cell 29: kNN monitor on classes 5-9 (25k bank + 5k test) every EPOCHS // 4 epochs; cell 30: 30k
                 eval_images=monitor_calls(e01, every01) * (TRAIN + TEST) + TEST + 2 * (TRAIN + TEST) + 28_000
                 + monitor_calls(e01, every01_29(e01)) * (TRAIN + TEST) // 2 + TEST // 2 + (TRAIN + TEST) // 2),
        Notebook("02_siamese_contrastive", (f"EPOCHS = pick(gpu={e02},", "PAIRS = pick(gpu=20_000,",
                                            "BATCH = pick(gpu=256,"), "cell 3, lines 1-3", "embedding",
                 [Run("2-D hinge, a test snapshot every epoch (cell 19)", e02, 2 * 20_000, 2 * 256),
                  Run("squared 2-D, hinge and squared 32-D (cell 33)", 3 * e02, 2 * 20_000, 2 * 256)],
                 eval_images=(e02 + 1) * TEST + 4 * TEST),        # snapshots (epochs 0..E), the comparison (cell 34)
        Notebook("03_triplets_mining", (f"EPOCHS = pick(gpu={e03},", "P, K = pick(gpu=(10, 32),"), "cell 3, lines 1-2",
                 "embedding", [Run("7 strategies, PK 10 x 32 (cell 16)", 7 * e03, pk(TRAIN, 10, 32), 320)],
                 eval_images=(7 * e03 + 1) * TEST),             # RetrievalMonitor on the test set every epoch
        Notebook("04_beyond_triplets", (f"EPOCHS = pick(gpu={e04},", "OPEN_EPOCHS = 2 * EPOCHS", "P, K = 8, 16"),
                 "cell 3, lines 1-2 and 4", "embedding",
                 [Run("closed set: 10 losses on PK 8 x 16 (cell 24)", 10 * e04, pk(TRAIN, 8, 16), 128),
                  Run("closed set: N-pair, 10 classes x 2 (cell 24)", e04, pk(TRAIN, 10, 2), 20),
                  Run("open set (5 classes): 10 losses on PK 5 x 16 (cell 24)", 10 * 2 * e04, pk(TRAIN // 2, 5, 16), 80),
                  Run("open set: N-pair, 5 classes x 2 (cell 24)", 2 * e04, pk(TRAIN // 2, 5, 2), 10)],
                 # cell 26: 12 encoders x (closed 10k + open 5k test images); cell 32: 4 x 2k; cell 35: 3 x 5k
                 eval_images=12 * (TEST + TEST // 2) + 4 * 2000 + 3 * TEST // 2),
        Notebook("06_simclr", (f"EPOCHS = pick(gpu={e06},", "BATCH = pick(gpu=256,", "MONITOR_EVERY = pick(gpu=4,",
                               "ABL_EPOCHS = pick(gpu=3,", "ABL_IMAGES = pick(gpu=10_000,"), "cell 3, lines 1-5",
                 "embedding",   # ResNet-18 + projection head 512-512-128 ~ EmbeddingNet's neck + head
                 # a SimCLR step pushes 2 views of each of its B images through the network: 2N images, batch 2B
                 [Run("main run, B = 256 (cell 17)", e06, 2 * TRAIN, 2 * 256),
                  Run("8 ablation runs at B = 256 on 10k images: base, 3 tau, 2 heads, 2 augmentations (cell 21)",
                      8 * 3, 2 * 10_000, 2 * 256),
                  Run("ablation B = 128 (cell 21)", 3, 2 * 10_000, 2 * 128),
                  Run("ablation B = 512 (cell 21)", 3, 2 * 10_000, 2 * 512)],
                 # cell 17: kNN monitor (bank = train + test) every 4 epochs and the last; cell 19: h of random init and
                 # SimCLR (train + test); cell 27: z of the main run; cell 21: 10 ablation monitors on h (10k bank +
                 # 10k test), 3 of them on z too
                 eval_images=(monitor_calls(e06, 4) + 3) * (TRAIN + TEST) + 13 * (10_000 + TEST)),
        Notebook("07_moco", (f"EPOCHS = pick(gpu={e07},", "BATCH = pick(gpu=256,", "MONITOR_EVERY = pick(gpu=5,",
                             "ABL_EPOCHS = pick(gpu=3,", "ABL_IMAGES = pick(gpu=10_000,", "SMALL_BATCH = pick(gpu=32,"),
                 "cell 3, lines 1-6", "embedding",   # ResNet-18 + MoCo v2's MLP head 512-512-128
                 # a MoCo step: the query encoder forward + backward on one view of each of its B images, the key
                 # encoder forward only on the other (~1/3 of a forward + backward, autocast too); the symmetric MoCo
                 # of cell 25 does both for each view: two query passes of B images a step
                 [Run("main run, B = 256, query encoder (cell 21)", e07, TRAIN, 256),
                  Run("main run's key encoder, forward only (cell 21)", e07 / 3, TRAIN, 256),
                  Run("SimCLR at B = 32 and B = 256 on 10k images (cell 25): 2B views a step", 3, 2 * 10_000, 2 * 32),
                  Run("SimCLR at B = 256 (cell 25)", 3, 2 * 10_000, 2 * 256),
                  Run("symmetric MoCo at B = 32 (cell 25): two query passes a step", 3, 2 * 10_000, 32),
                  Run("symmetric MoCo at B = 256 (cell 25)", 3, 2 * 10_000, 256),
                  Run("their key encoders at B = 32, forward only (cell 25)", 3 / 3, 2 * 10_000, 32),
                  Run("their key encoders at B = 256, forward only (cell 25)", 3 / 3, 2 * 10_000, 256),
                  Run("6 ablation runs at B = 256 on 10k images: 4 momenta, 2 queue sizes (cell 28)", 6 * 3, 10_000, 256),
                  Run("their key encoders, forward only (cell 28)", 6 * 3 / 3, 10_000, 256)],
                 # cell 21: kNN monitor (bank = train + test) every 5 epochs and the last; cell 23: random init and MoCo
                 # (train + test); cells 25, 28: 10 short-run monitors (10k bank + 10k test)
                 eval_images=(monitor_calls(e07, 5) + 2) * (TRAIN + TEST) + 10 * (10_000 + TEST)),
        Notebook("08_byol_barlow", (f"BYOL_EPOCHS = pick(gpu={e08},", f"BARLOW_EPOCHS = pick(gpu={e08},",
                                    "ABLATION_EPOCHS = pick(gpu=2,", "ABLATION_IMAGES = pick(gpu=10_000,",
                                    "BATCH = pick(gpu=256,", "MONITOR_EVERY = pick(gpu=3,"), "cell 3, lines 1-6",
                 "embedding",   # ResNet-18 + BYOL's / Barlow's MLP heads: the heads are ~3 % of ResNet-18's FLOPs
                 # online network: 2 views of each of the B images forward + backward (2N images, batch 2B);
                 # BYOL's target network: 2 views forward only, ~1/3 of a forward + backward pass (autocast too)
                 [Run("BYOL main run, B = 256 (cell 15)", e08, 2 * TRAIN, 2 * 256),
                  Run("BYOL main run's target, forward only (cell 15)", e08 / 3, 2 * TRAIN, 2 * 256),
                  Run("Barlow Twins main run, B = 256 (cell 27)", e08, 2 * TRAIN, 2 * 256),
                  Run("8 ablation runs on 10k images: 4 BYOL collapse variants (cell 19), 4 Barlow (cell 31)",
                      8 * 2, 2 * 10_000, 2 * 256),
                  Run("the 4 collapse variants' targets, forward only (cell 19)", 4 * 2 / 3, 2 * 10_000, 2 * 256)],
                 # kNN monitor (bank = train + test) every 3 epochs and the last in both main runs; the ablations'
                 # monitor (bank = 10k subset + test) once per run and on random init; collapse monitor (1 024 test
                 # images) every epoch of the main and collapse runs and before each collapse run; random init +
                 # BYOL + Barlow (train + test, cells 17, 29); C on 2 x 1 024 views (cells 25, 27, 31: 6 times)
                 eval_images=2 * monitor_calls(e08, 3) * (TRAIN + TEST) + 9 * (10_000 + TEST)
                 + (2 * e08 + 4 * 3) * 1024 + 3 * (TRAIN + TEST) + 6 * 2 * 1024),
    ]


def proposed_budgets() -> list:
    """01 shrunk (its cell 29 run, with a kNN monitor after every epoch, pushed it over): EPOCHS 30 -> 20
    and cell 29's fit(..., monitor_every=max(1, EPOCHS // 4)) as cell 9 has it. The rest fit."""
    return current_budgets(e01=20, every01_29=lambda e: max(1, e // 4))


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
            seconds = sum(r.steps() * max(r.batch * train_per_image / rate, ops * SECONDS_PER_OP) for r in nb.runs)
            minutes[column] = (seconds + eval_flops / EVAL_FLOPS) / 60
        rows.append({"notebook": nb.name, "where": nb.where, "holds": nb.holds, "train_flops": train_flops,
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
    for nb in current_budgets():
        print(f"  {nb.name}, {nb.where}: " + "  ".join(nb.holds))
    if not args.current:
        print_table("proposed gpu budgets", estimate(proposed_budgets()))
        for old, new in zip(current_budgets(), proposed_budgets()):
            if old.holds != new.holds:
                print(f"  {new.name}, {new.where}: " + "  ".join(new.holds))
        print("  01_representations, cell 29: fit(..., monitor_every=max(1, EPOCHS // 4)) (now: every epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

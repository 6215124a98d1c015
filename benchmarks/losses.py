"""Forward + backward time of course_lib's metric losses against pytorch-metric-learning (pml).

    python benchmarks/losses.py                 # 1024 x 128 embeddings, 64 classes x 16, ~1-2 min on 2 cores
    python benchmarks/losses.py --repeats 9 --only batch-hard arcface
    python benchmarks/losses.py --threads 1     # when other processes load the cores

Both sides get the same inputs and are run side by side in alternation (ours, pml, pml, ours, ...:
the order flips every repeat), so a change of machine speed hits both; each cell is the median
over the repeats. These VMs change speed by up to ~5x within an hour: a matmul GFLOPS probe is
printed before and after, and only the ratio ours/pml (target <= 1.0) means anything.

pml is configured to compute the same loss where its convention allows it ("rel. diff" column);
where pml's memory grows past what a laptop holds the size is reduced and says so:

* lifted structured: pml's LiftedStructureLoss builds a (positive pairs x negative pairs) matrix,
  15 360 x 1 032 192 floats at N = 1024, so both run at N = 128 (8 classes x 16);
* InfoNCE vs pml NTXentLoss (explicit pairs, shared negatives): its (positive pairs x negative
  pairs) matrix is N x N*M, so N = 256 queries and M = 512 negatives (1024 embeddings in all);
* contrastive: pml's positive term is D, ours (slide 000) D^2, so the values differ; the work
  (512 given pairs out of 1024 embeddings) is the same.

"rel. diff" is |ours - pml| / |pml| of the loss values, where the conventions match.

Losses without a pml counterpart (center loss, hard-cluster, prototypical) are not timed.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib import losses  # noqa: E402

try:
    from pytorch_metric_learning import losses as pml
    from pytorch_metric_learning.distances import DotProductSimilarity, LpDistance
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer
except ImportError:  # pragma: no cover
    sys.exit("pytorch-metric-learning is needed: pip install pytorch-metric-learning")


def gflops_probe(n: int = 1024, repeats: int = 5) -> float:
    """Median GFLOPS of an (n x n) @ (n x n) float32 matmul on this machine, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def lp():
    return LpDistance(normalize_embeddings=False, p=2, power=1)


def make_cases(n: int, dim: int, classes: int, seed: int = 0):
    """name -> (note, leaves, ours(), theirs(), same_value): each callable returns a scalar loss."""
    g = torch.Generator().manual_seed(seed)

    def leaf(*shape):
        return torch.randn(*shape, generator=g).requires_grad_(True)

    per = n // classes
    labels = torch.arange(classes).repeat_interleave(per)[torch.randperm(classes * per, generator=g)]
    cases = {}

    # contrastive: N/2 pairs (z1_i, z2_i)
    z1, z2 = leaf(n // 2, dim), leaf(n // 2, dim)
    same = torch.rand(n // 2, generator=g) < 0.5
    i = torch.arange(n // 2)
    pml_contrastive = pml.ContrastiveLoss(pos_margin=0, neg_margin=1.0, distance=lp(), reducer=MeanReducer())
    pairs = (i[same], i[same] + n // 2, i[~same], i[~same] + n // 2)
    cases["contrastive"] = (f"{n // 2} pairs", [z1, z2],
                            lambda: losses.contrastive_loss(z1, z2, same, 1.0),
                            lambda: pml_contrastive(torch.cat([z1, z2]), indices_tuple=pairs), False)

    x = leaf(n, dim)
    pml_all = pml.TripletMarginLoss(margin=0.2, distance=lp())  # all triplets, AvgNonZeroReducer = BA!=0
    cases["triplet batch-all"] = (f"N={n}", [x], lambda: losses.batch_all_triplet_loss(x, labels, 0.2),
                                  lambda: pml_all(x, labels), True)

    miner = BatchHardMiner(distance=lp())
    pml_hard = pml.TripletMarginLoss(margin=0.2, distance=lp(), reducer=MeanReducer())
    cases["triplet batch-hard"] = (f"N={n}", [x], lambda: losses.batch_hard_triplet_loss(x, labels, 0.2),
                                   lambda: pml_hard(x, labels, miner(x, labels)), True)

    n_l = min(n, 128)
    x_l, labels_l = leaf(n_l, dim), torch.arange(n_l // per).repeat_interleave(per)
    pml_lifted = pml.LiftedStructureLoss(neg_margin=1.0, pos_margin=0, distance=lp(), reducer=MeanReducer())
    cases["lifted structured"] = (f"N={n_l} (pml memory)", [x_l],
                                  lambda: losses.lifted_structured_loss(x_l, labels_l, 1.0),
                                  lambda: pml_lifted(x_l, labels_l), True)

    f_a, f_p = leaf(n // 2, dim), leaf(n // 2, dim)
    pml_npair = pml.NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    pair_labels = torch.arange(n // 2).repeat(2)
    cases["npair"] = (f"{n // 2} pairs", [f_a, f_p], lambda: losses.npair_loss(f_a, f_p),
                      lambda: pml_npair(torch.cat([f_a, f_p]), pair_labels), True)

    nq, m = n // 4, n - n // 2
    q, k, neg = leaf(nq, dim), leaf(nq, dim), leaf(m, dim)
    pml_nce = pml.NTXentLoss(temperature=0.1)
    iq = torch.arange(nq)
    nce_pairs = (iq, iq + nq, iq.repeat_interleave(m), 2 * nq + torch.arange(m).repeat(nq))
    cases["info_nce / NT-Xent"] = (f"N={nq}, M={m} shared", [q, k, neg],
                                   lambda: losses.info_nce_loss(q, k, neg, 0.1),
                                   lambda: pml_nce(torch.cat([q, k, neg]), indices_tuple=nce_pairs), True)

    for name, K in (("cosface", 1), ("arcface", 1), ("arcface K=3", 3)):
        W = leaf(classes * K, dim)
        kw = dict(num_classes=classes, embedding_size=dim, scale=30.0, reducer=MeanReducer())
        if name == "cosface":
            ref = pml.CosFaceLoss(margin=0.35, **kw)
            ours = (lambda W=W: F.cross_entropy(losses.cosface_logits(x, W, labels, s=30.0, m=0.35), labels))
        elif K == 1:
            ref = pml.ArcFaceLoss(margin=math.degrees(0.5), **kw)
            ours = (lambda W=W: F.cross_entropy(losses.arcface_logits(x, W, labels, s=30.0, m=0.5), labels))
        else:
            ref = pml.SubCenterArcFaceLoss(margin=math.degrees(0.5), sub_centers=K, **kw)
            ours = (lambda W=W, K=K: F.cross_entropy(
                losses.arcface_logits(x, W, labels, s=30.0, m=0.5, subcenters=K), labels))
        ref.W = torch.nn.Parameter(W.detach().T.clone())  # pml's W is (D, C*K)
        cases[name] = (f"N={n}, C={classes}", [x, W, ref.W], ours, (lambda ref=ref: ref(x, labels)), True)
    return cases


def timed(fn, leaves) -> float:
    for t in leaves:
        t.grad = None
    start = time.perf_counter()
    fn().backward()
    return time.perf_counter() - start


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1024, help="batch size N")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    ap.add_argument("--classes", type=int, default=64, help="classes in the batch")
    ap.add_argument("--repeats", type=int, default=5, help="least timed repeats per side (median)")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="seconds per side a cheap case may take: its repeats grow up to 51 to fill it")
    ap.add_argument("--only", nargs="*", help="substrings of the cases to run")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own choice). On a shared VM whose other "
                         "cores are busy, every multi-threaded op waits for a descheduled thread; 1 avoids that")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"matmul probe: {gflops_probe():.1f} GFLOPS (before)")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.8 * cores and torch.get_num_threads() > 1:
        print(f"note: load average {load:.1f} on {cores} cores: other processes hold the cores, and "
              "multi-threaded small ops then wait on descheduled threads; --threads 1 measures the work")
    cases = make_cases(args.n, args.dim, args.classes)
    if args.only:
        cases = {k: v for k, v in cases.items() if any(s in k for s in args.only)}

    rows = []
    for name, (note, leaves, ours, theirs, same_value) in cases.items():
        with torch.no_grad():
            a, b = ours().item(), theirs().item()
        check = (f"{abs(a - b) / max(abs(b), 1e-12):.1e}" if same_value else "n/a")
        warm = max(timed(ours, leaves), timed(theirs, leaves))  # warm-up
        repeats = max(args.repeats, min(51, int(args.budget / max(warm, 1e-4))))  # cheap cases: more
        t_ours, t_pml = [], []
        for r in range(repeats):  # interleaved, order flipped every repeat
            pair = ((ours, t_ours), (theirs, t_pml)) if r % 2 == 0 else ((theirs, t_pml), (ours, t_ours))
            for fn, out in pair:
                out.append(timed(fn, leaves))
        mo, mp = statistics.median(t_ours), statistics.median(t_pml)
        rows.append((name, note, mo * 1e3, mp * 1e3, mo / mp, min(t_ours) / min(t_pml), repeats, check))
        print(f"  done {name}", file=sys.stderr, flush=True)

    head = (f"| {'loss':<20} | {'size':<22} | {'ours ms':>8} | {'pml ms':>8} | {'ours/pml':>8} "
            f"| {'min/min':>8} | {'reps':>4} | {'rel. diff':>9} |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for name, note, mo, mp, ratio, ratio_min, repeats, check in rows:
        print(f"| {name:<20} | {note:<22} | {mo:>8.2f} | {mp:>8.2f} | {ratio:>8.3g} | {ratio_min:>8.3g} "
              f"| {repeats:>4} | {check:>9} |")
    print("ours/pml: ratio of the medians (forward + backward, interleaved repeats); min/min: ratio of the "
          f"fastest runs (less sensitive to other load). D={args.dim}. "
          f"matmul probe: {gflops_probe():.1f} GFLOPS (after)")


if __name__ == "__main__":
    main()

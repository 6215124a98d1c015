"""Few-shot evaluation (chapter 04): N-way K-shot episodes and nearest-prototype accuracy."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _checks as check
from .features import ArrayLike


def few_shot_episodes(labels: ArrayLike, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int = 0):
    """The N-way K-shot test episodes of Vinyals et al. (2016) and Snell et al. (2017), as indices.

    Each episode draws ``n_way`` classes at random among those with at least ``k_shot + n_query``
    members, then, per class, ``k_shot`` support and ``n_query`` query items without replacement
    (support and query disjoint). ``labels`` ``(N,)``. Yields ``(support (n_way·k_shot,),
    query (n_way·n_query,))`` int64 index tensors, grouped class by class. Draws from its own
    generator seeded ``seed``: the same episodes every time, the global random state untouched.
    """
    y = check.labels(labels)  # (N,)
    if min(n_way, k_shot, n_query, episodes) < 1:
        raise ValueError(f"n_way, k_shot, n_query and episodes must be >= 1, got {n_way}, {k_shot}, {n_query}, {episodes}")
    y = y.long().cpu()
    classes, counts = torch.unique(y, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]  # (C',)
    if len(eligible) < n_way:
        raise ValueError(f"a {n_way}-way {k_shot}-shot episode with {n_query} queries per class needs {n_way} "
                         f"classes of >= {k_shot + n_query} items; only {len(eligible)} of the {len(classes)} have that many")
    members = [torch.nonzero(y == c).squeeze(1) for c in eligible.tolist()]  # item indices per class
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(episodes):
        picked = torch.randperm(len(eligible), generator=g)[:n_way]  # (n_way,) classes of the episode
        rows = [members[int(c)][torch.randperm(len(members[int(c)]), generator=g)[: k_shot + n_query]] for c in picked]
        rows = torch.stack(rows)  # (n_way, k_shot + n_query)
        yield rows[:, :k_shot].reshape(-1), rows[:, k_shot:].reshape(-1)


def few_shot_accuracy(
    embeddings: ArrayLike, labels: ArrayLike, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
    episodes: int = 600, seed: int = 0, normalize: bool = False,
) -> dict:
    """N-way K-shot accuracy of nearest-prototype classification (Snell et al., 2017), over episodes.

    For each episode of :func:`few_shot_episodes`: the prototypes c_k = mean of class k's support
    embeddings, each query labelled by its nearest prototype in squared Euclidean distance
    (:func:`course_lib.losses.prototypical_accuracy`). ``embeddings`` ``(N, D)`` of a frozen
    encoder, ``labels`` ``(N,)``; usually classes the encoder never saw (held-out classes).
    ``normalize=True`` L2-normalises the embeddings first (for encoders trained with a cosine loss).

    Returns ``{"accuracy": mean over the episodes, "ci95": 1.96 · std / √episodes, the half-width
    of the 95 % confidence interval the few-shot papers report}``. Chance is ``1 / n_way``.
    """
    from ..losses import prototypical_accuracy

    x = check.features(embeddings, "embeddings")
    y = check.labels(labels, len(x), "labels").long()
    if normalize:
        x = F.normalize(x, dim=1)
    accs = torch.tensor([
        prototypical_accuracy(x[s], y[s], x[q], y[q])
        for s, q in few_shot_episodes(y, n_way, k_shot, n_query, episodes, seed)
    ], dtype=torch.float64)  # (episodes,)
    ci95 = 1.96 * accs.std(unbiased=True).item() / math.sqrt(len(accs)) if len(accs) > 1 else math.nan
    return {"accuracy": accs.mean().item(), "ci95": ci95}


__all__ = ["few_shot_episodes", "few_shot_accuracy"]

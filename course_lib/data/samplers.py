"""Which examples go together: random pairs and triplets over a whole dataset, their datasets,
P×K batches for batch-hard / batch-all mining, and a few examples per class for a grid.

Drawn in O(N) memory from examples grouped by class (no (N, N) mask), so they work on all 50 000
CIFAR-10 images.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch

from .. import _checks as check
from .loaders import check_images, check_labels, to_model_input


class _ClassIndex:
    """Examples grouped by class: ``order`` sorts the dataset by label; class ``c`` owns
    ``order[start[c] : start[c] + count[c]]``. Lets samplers draw positives and negatives in O(n)
    memory, with no (N, N) mask, so they work on all 50 000 CIFAR-10 images."""

    def __init__(self, labels: torch.Tensor):
        labels = check.labels(labels).long().cpu()  # (N,)
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)  # (N,)
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(labels))  # position of each example in order
        classes, counts = torch.unique(labels, return_counts=True)
        self.classes = classes  # (C,) sorted ids
        self.count = torch.zeros(int(classes.max()) + 1, dtype=torch.int64)
        self.count[classes] = counts
        self.start = torch.cumsum(self.count, 0) - self.count  # (max id + 1,)

    def positives(self, anchors: torch.Tensor, generator=None) -> torch.Tensor:
        """One other example of each anchor's class, uniformly (needs a class of >= 2)."""
        c = self.labels[anchors]
        r = (torch.rand(len(anchors), generator=generator) * (self.count[c] - 1)).long()
        r = r + (r >= self.rank[anchors] - self.start[c]).long()  # skip the anchor itself
        return self.order[self.start[c] + r]

    def negatives(self, anchors: torch.Tensor, generator=None) -> torch.Tensor:
        """One example of another class for each anchor, uniformly over those examples."""
        c = self.labels[anchors]
        r = (torch.rand(len(anchors), generator=generator) * (len(self.labels) - self.count[c])).long()
        r = r + self.count[c] * (r >= self.start[c]).long()  # jump over the anchor's class block
        return self.order[r]


def _anchor_pool(index: _ClassIndex) -> torch.Tensor:
    ok = index.count[index.labels] >= 2
    ok &= index.count[index.labels] < len(index.labels)
    pool = torch.nonzero(ok).squeeze(1)
    if len(pool) == 0:
        raise ValueError("need at least two classes and a class with two examples to form pairs")
    return pool


def random_pairs(labels, n: int, positive_fraction: float = 0.5, seed: int = 0):
    """``n`` random pairs ``(i, j, same)`` for a Siamese network (Hadsell et al., 2006).

    A ``positive_fraction`` of them are same-class pairs (i ≠ j), the rest different-class pairs;
    ``i`` is uniform over examples whose class has a partner. ``labels`` (N,); returns three (n,)
    tensors: int64 ``i``, ``j`` and bool ``same``.
    """
    index, g = _ClassIndex(labels), torch.Generator().manual_seed(seed)
    pool = _anchor_pool(index)
    i = pool[torch.randint(len(pool), (n,), generator=g)]  # (n,)
    same = torch.rand(n, generator=g) < positive_fraction  # (n,)
    j = torch.where(same, index.positives(i, g), index.negatives(i, g))  # (n,)
    return i, j, same


def random_triplets_by_class(labels, n: int, seed: int = 0):
    """``n`` random triplets ``(a, p, n)``: p shares a's class (p ≠ a), n does not.

    Unlike :func:`course_lib.mining.random_triplets` (masks over one batch) this works on a whole
    dataset. ``labels`` (N,) → three (n,) int64 tensors.
    """
    index, g = _ClassIndex(labels), torch.Generator().manual_seed(seed)
    pool = _anchor_pool(index)
    a = pool[torch.randint(len(pool), (n,), generator=g)]  # (n,)
    return a, index.positives(a, g), index.negatives(a, g)


class PairDataset(torch.utils.data.Dataset):
    """Fixed random pairs over a labelled image set: item ``k`` is ``(x_i, x_j, same)`` with
    ``x`` float (3, H, W) normalised as model input and ``same`` a 0/1 float."""

    def __init__(self, images, labels, n_pairs: int, positive_fraction: float = 0.5, seed: int = 0):
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images))
        self.i, self.j, self.same = random_pairs(self.labels, n_pairs, positive_fraction, seed)

    def __len__(self) -> int:
        return len(self.i)

    def __getitem__(self, k):
        x = to_model_input(self.images[[int(self.i[k]), int(self.j[k])]])  # (2, 3, H, W)
        return x[0], x[1], self.same[k].float()


class TripletDataset(torch.utils.data.Dataset):
    """Fixed random triplets over a labelled image set: item ``k`` is ``(x_a, x_p, x_n)``."""

    def __init__(self, images, labels, n_triplets: int, seed: int = 0):
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images))
        self.a, self.p, self.n = random_triplets_by_class(self.labels, n_triplets, seed)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, k):
        x = to_model_input(self.images[[int(self.a[k]), int(self.p[k]), int(self.n[k])]])  # (3, 3, H, W)
        return x[0], x[1], x[2]


class PKSampler:
    """Batches of P classes × K examples each (Hermans et al., 2017, "In Defense of the Triplet Loss").

    Every batch holds ``p`` distinct classes drawn at random and ``k`` examples of each (without
    replacement when the class has at least ``k``, else with), so each anchor has K − 1 positives
    and (P − 1)·K negatives: what batch-hard and batch-all mining need. Yields ``(p·k,)`` int64
    index tensors, grouped class by class; ``len()`` is ``N // (p·k)`` batches an epoch. Draws from
    torch's global generator, or from ``generator`` when given. Use it as
    ``DeviceLoader(images, labels, batch_sampler=PKSampler(labels, p=16, k=4))``.
    """

    def __init__(self, labels, p: int, k: int, generator: Optional[torch.Generator] = None):
        self.index = _ClassIndex(labels)
        n_classes = len(self.index.classes)
        if not 1 <= p <= n_classes or k < 1:
            raise ValueError(f"need 1 <= p <= number of classes ({n_classes}) and k >= 1, got p={p}, k={k}")
        self.p, self.k, self.generator = p, k, generator

    def __len__(self) -> int:
        return max(1, len(self.index.labels) // (self.p * self.k))

    def __iter__(self) -> Iterator[torch.Tensor]:
        idx, g = self.index, self.generator
        for _ in range(len(self)):
            classes = idx.classes[torch.randperm(len(idx.classes), generator=g)[: self.p]]  # (P,)
            count = idx.count[classes]  # (P,)
            width = int(count.max())
            keys = torch.rand(self.p, width, generator=g)  # (P, width) random keys
            keys[torch.arange(width) >= count[:, None]] = 2.0  # keys past a class's end sort last
            picks = keys.argsort(dim=1)[:, : self.k]  # (P, min(K, width))
            if picks.shape[1] < self.k:  # fewer examples than K in every class: repeat
                picks = picks.repeat(1, -(-self.k // picks.shape[1]))[:, : self.k]
            picks = picks % count[:, None]  # with replacement for classes smaller than K
            yield idx.order[idx.start[classes][:, None] + picks].reshape(-1)  # (P*K,)


def class_examples(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of each class (after a seeded shuffle),
    grouped class by class: handy for an image grid per class."""
    labels = check.labels(labels)  # (N,)
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(out)


__all__ = ["random_pairs", "random_triplets_by_class", "PairDataset", "TripletDataset", "PKSampler",
           "class_examples"]

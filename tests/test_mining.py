"""course_lib.mining: masks, strategies and batch-hard selection against brute force.

Every strategy's triplets must (1) satisfy its definition (COURSE.md: strict inequalities,
``all`` = every valid triplet) and (2) be exactly the set a brute-force loop over all (a, p, n)
finds, on several seeds, on integer grids with many exact ties, squared or not.
"""
import itertools
import math

import pytest
import torch

from course_lib import mining
from course_lib.mining import (
    batch_hard_pairs, mine_triplets, negative_mask, positive_mask, random_triplets, valid_triplet_mask,
)

SEEDS = (0, 1, 2, 3)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def exact_distances(x, squared):
    """Distances by a loop in Python floats (exact on integer grids for the squared ones; the roots
    of equal integers are equal)."""
    rows = x.tolist()
    out = []
    for u in rows:
        out.append([])
        for v in rows:
            s = sum((a - b) ** 2 for a, b in zip(u, v))
            out[-1].append(float(s) if squared else math.sqrt(s))
    return out


def brute_force(x, labels, strategy, margin, squared):
    D = exact_distances(x, squared)
    y = labels.tolist()
    found = []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a == p or y[a] != y[p] or y[n] == y[a]:
            continue
        ap, an = D[a][p], D[a][n]
        keep = {
            "all": True,
            "hard": an < ap,
            "semihard": ap < an < ap + margin,
            "easy": an > ap + margin,
        }[strategy]
        if keep:
            found.append((a, p, n))
    return found


def as_list(triplets):
    a, p, n = triplets
    assert a.dtype == p.dtype == n.dtype == torch.int64
    return list(zip(a.tolist(), p.tolist(), n.tolist()))


def random_case(seed):
    x = torch.randn(14, 3, generator=gen(seed), dtype=torch.float64)
    labels = torch.randint(4, (14,), generator=gen(seed + 100))
    return x, labels


def grid_case(seed):
    """Points on a small integer grid: many exactly equal distances, and D_an = D_ap + 1 exactly."""
    x = torch.randint(0, 3, (12, 2), generator=gen(seed)).double()
    labels = torch.randint(3, (12,), generator=gen(seed + 100))
    return x, labels


# ------------------------------------------------------------------------------------ masks
def test_masks_match_loops():
    labels = torch.tensor([3, 1, 3, 3, 7, 1])
    N = len(labels)
    pos, neg, trip = positive_mask(labels), negative_mask(labels), valid_triplet_mask(labels)
    assert pos.dtype == neg.dtype == trip.dtype == torch.bool
    for i, j in itertools.product(range(N), repeat=2):
        assert pos[i, j] == (i != j and labels[i] == labels[j])
        assert neg[i, j] == (labels[i] != labels[j])
    for a, p, n in itertools.product(range(N), repeat=3):
        assert trip[a, p, n] == (a != p and labels[a] == labels[p] and labels[n] != labels[a])


# ------------------------------------------------------------------------------- strategies
@pytest.mark.parametrize("strategy", mining.STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared", [False, True])
def test_strategy_equals_brute_force_random(strategy, seed, squared):
    x, labels = random_case(seed)
    got = as_list(mine_triplets(x, labels, strategy, margin=0.4, squared=squared))
    assert got == brute_force(x, labels, strategy, 0.4, squared)  # same set, same (a, p, n) order


@pytest.mark.parametrize("strategy", mining.STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_strategy_equals_brute_force_with_ties(strategy, seed):
    # Euclidean distances on an integer grid: exactly equal distances and D_an = D_ap + 1 exactly
    x, labels = grid_case(seed)
    got = as_list(mine_triplets(x.float(), labels, strategy, margin=1.0))
    assert got == brute_force(x, labels, strategy, 1.0, squared=False)
    D = exact_distances(x, squared=False)
    every = brute_force(x, labels, "all", 1.0, squared=False)
    assert any(D[a][n] == D[a][p] for a, p, n in every)  # the grid really has both kinds of tie
    assert any(D[a][n] == D[a][p] + 1.0 for a, p, n in every)
    # squared: equal distances stay exactly equal (margin 0.5 cannot sit on a boundary of integers)
    got = as_list(mine_triplets(x.float(), labels, strategy, margin=0.5, squared=True))
    assert got == brute_force(x, labels, strategy, 0.5, squared=True)


@pytest.mark.parametrize("strategy", mining.STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_masks_to_indices_exact_on_a_given_matrix(strategy, seed):
    # the masks -> indices step alone, on exact squared integer distances, ties at both boundaries
    x, labels = grid_case(seed)
    D = torch.tensor(exact_distances(x, squared=True))
    got = as_list(mining.mine_triplets_from_distances(D, labels, strategy, margin=1.0))
    assert got == brute_force(x, labels, strategy, 1.0, squared=True)


@pytest.mark.parametrize("strategy", mining.STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_duplicates_are_exact_ties(strategy, seed):
    # copies of the same embedding are at exactly the same distance from every anchor (and at 0
    # from each other): a negative that duplicates the positive is neither hard nor semi-hard
    base = torch.randn(6, 8, generator=gen(seed))
    x = torch.cat([base, base[[0, 2, 3]], base[[1, 1]]])  # (11, 8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 1, 2, 0, 0, 1])
    for squared in (False, True):
        got = as_list(mine_triplets(x, labels, strategy, margin=0.5, squared=squared))
        assert got == brute_force(x.double(), labels, strategy, 0.5, squared)
    collapsed = torch.ones(6, 4)  # every distance 0
    n_found = len(mine_triplets(collapsed, labels[:6], strategy)[0])
    assert n_found == (int(valid_triplet_mask(labels[:6]).sum()) if strategy == "all" else 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_triplets_satisfy_their_definition_and_partition(seed):
    x, labels = random_case(seed)
    D = torch.cdist(x, x)
    m = 0.4
    sets = {}
    for strategy in mining.STRATEGIES:
        a, p, n = mine_triplets(x, labels, strategy, margin=m)
        assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[n] != labels[a]).all()
        ap, an = D[a, p], D[a, n]
        if strategy == "hard":
            assert (an < ap).all()
        elif strategy == "semihard":
            assert ((ap < an) & (an < ap + m)).all()
        elif strategy == "easy":
            assert (an > ap + m).all()
        sets[strategy] = set(zip(a.tolist(), p.tolist(), n.tolist()))
    # without ties, hard / semihard / easy partition "all"
    assert sets["hard"] | sets["semihard"] | sets["easy"] == sets["all"]
    assert not (sets["hard"] & sets["semihard"]) and not (sets["semihard"] & sets["easy"])
    assert len(sets["all"]) == int(valid_triplet_mask(labels).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_strategies_match_pml_triplet_margin_miner(seed):
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    from pytorch_metric_learning.distances import LpDistance

    # pml TripletMarginMiner with LpDistance(normalize_embeddings=False): its "hard" is
    # D_an - D_ap <= 0, "semihard" 0 < D_an - D_ap <= m, "easy" D_an - D_ap > m; with random
    # float64 points (no ties) they are our strict definitions. Its "all" is every *non-easy*
    # triplet, so our "all" is compared with the union of its "all" and "easy".
    x, labels = random_case(seed)
    m = 0.4

    def pml(kind):
        miner = pml_miners.TripletMarginMiner(margin=m, type_of_triplets=kind, distance=LpDistance(normalize_embeddings=False))
        return set(as_list(miner(x, labels)))

    for strategy in ("hard", "semihard", "easy"):
        assert set(as_list(mine_triplets(x, labels, strategy, margin=m))) == pml(strategy)
    assert set(as_list(mine_triplets(x, labels, "all", margin=m))) == pml("all") | pml("easy")


def test_all_distances_equal_only_all_survives():
    x = torch.eye(6)  # regular simplex: every distance sqrt(2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert len(mine_triplets(x, labels, "all")[0]) == int(valid_triplet_mask(labels).sum()) == 6 * 1 * 4
    for strategy in ("hard", "semihard", "easy"):
        assert len(mine_triplets(x, labels, strategy, margin=0.2)[0]) == 0


def test_no_valid_triplet_and_no_grad():
    x = torch.randn(5, 3, requires_grad=True)
    for labels in (torch.zeros(5, dtype=torch.long), torch.arange(5)):  # one class / all distinct
        for strategy in mining.STRATEGIES:
            a, p, n = mine_triplets(x, labels, strategy)
            assert a.shape == p.shape == n.shape == (0,) and a.dtype == torch.int64
    a, p, n = mine_triplets(x, torch.tensor([0, 0, 1, 1, 2]))
    assert not a.requires_grad and len(a) > 0
    assert mine_triplets(x.half(), torch.tensor([0, 0, 1, 1, 2]))[0].tolist() == a.tolist()


def test_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="strategy"):
        mine_triplets(x, torch.arange(4), "semi-hard")
    with pytest.raises(ValueError, match=r"expected embeddings of shape \(N, D\)"):
        mine_triplets(x[0], torch.arange(4))
    with pytest.raises(ValueError, match=r"expected labels of shape \(N,\)"):
        mine_triplets(x, torch.arange(5))
    with pytest.raises(ValueError, match=r"integer dtype"):
        positive_mask(torch.rand(4))
    with pytest.raises(ValueError, match=r"expected dist of shape \(N, N\)"):
        batch_hard_pairs(torch.rand(4, 3), torch.arange(4))


# ------------------------------------------------------------------------------ batch-hard
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard_pairs_brute_force_with_ties(seed):
    x, labels = grid_case(seed)
    labels[0] = 50  # an anchor without a positive
    D = torch.tensor(exact_distances(x, squared=False))
    hp, hn, valid = batch_hard_pairs(D, labels)
    y = labels.tolist()
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(y)) if y[n] != y[a]]
        assert bool(valid[a]) == bool(pos and neg)
        if pos and neg:
            assert int(hp[a]) == max(pos, key=lambda p: (D[a, p].item(), -p))  # farthest, lowest index on ties
            assert int(hn[a]) == min(neg, key=lambda n: (D[a, n].item(), n))  # nearest, lowest index on ties


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard_pairs_match_pml(seed):
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    from pytorch_metric_learning.distances import LpDistance

    # pml BatchHardMiner returns (anchor, hardest positive, hardest negative) for the anchors that
    # have both; aligned with LpDistance(normalize_embeddings=False). No ties with random floats.
    x, labels = random_case(seed)
    a, p, n = pml_miners.BatchHardMiner(distance=LpDistance(normalize_embeddings=False))(x, labels)
    hp, hn, valid = batch_hard_pairs(torch.cdist(x, x), labels)
    assert valid.nonzero().squeeze(1).tolist() == sorted(a.tolist())
    order = a.argsort()
    assert hp[valid].tolist() == p[order].tolist() and hn[valid].tolist() == n[order].tolist()


# --------------------------------------------------------------------------------- random
def test_random_triplets_valid_and_reproducible():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # 2 and 3 have no positive: never anchors
    a, p, n = random_triplets(labels, 500, generator=gen(0))
    assert a.shape == p.shape == n.shape == (500,) and a.dtype == torch.int64
    assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[n] != labels[a]).all()
    assert set(a.tolist()) == {0, 1, 2, 3, 4}  # every possible anchor drawn
    again = random_triplets(labels, 500, generator=gen(0))
    assert all(torch.equal(u, v) for u, v in zip((a, p, n), again))
    for none in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        assert all(len(t) == 0 for t in random_triplets(none, 10, generator=gen(0)))

"""One validation layer (course_lib._checks): one vocabulary of metric names, one wording of errors."""
import pytest
import torch

from course_lib import _checks as check
from course_lib import data, distances, evaluate, losses, mining, models

X, Y = torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 3


# ------------------------------------------------------------------------------ metric names
@pytest.mark.parametrize("name, canonical", [("l2", "l2"), ("euclidean", "l2"), ("EUCLIDEAN", "l2"),
                                             ("sqeuclidean", "squared_l2"), ("cityblock", "l1"),
                                             ("cosine", "cosine")])
def test_metric_names_and_aliases(name, canonical):
    assert check.metric(name) == canonical


def test_unknown_metric_lists_the_choices_everywhere():
    with pytest.raises(ValueError, match="expected one of l2, squared_l2, l1, cosine"):
        distances.pairwise_distances(X, metric="hamming")
    for fn in (lambda: evaluate.recall_at_k(X, Y, metric="hamming"), lambda: evaluate.map_at_r(X, Y, metric="l1"),
               lambda: evaluate.verification_roc(X, X, Y % 2, metric="hamming")):
        with pytest.raises(ValueError, match="expected one of l2, cosine"):
            fn()


def test_l2_is_the_default_and_euclidean_an_alias_in_evaluate():
    assert evaluate.recall_at_k(X, Y) == evaluate.recall_at_k(X, Y, metric="euclidean") \
        == evaluate.recall_at_k(X, Y, metric="l2")
    assert evaluate.map_at_r(X, Y) == evaluate.map_at_r(X, Y, metric="euclidean")
    same = Y % 2 == 0
    assert evaluate.verification_roc(X, X.flip(0), same)["auc"] == \
        evaluate.verification_roc(X, X.flip(0), same, metric="euclidean")["auc"]
    assert evaluate.RetrievalMonitor(torch.zeros(4, 8, 8, 3, dtype=torch.uint8), [0, 0, 1, 1]).metric == "l2"
    torch.testing.assert_close(distances.nearest_neighbours(X, X, k=3, metric="euclidean"),
                               distances.nearest_neighbours(X, X, k=3, metric="l2"))


# ----------------------------------------------------------------------------- one wording
def test_label_errors_read_the_same_in_every_module():
    short = Y[:-1]
    calls = [lambda: losses.batch_hard_triplet_loss(X, short), lambda: mining.mine_triplets(X, short),
             lambda: evaluate.knn_accuracy(X, short, X, Y), lambda: data.check_labels(short, 12)]
    for call in calls:
        with pytest.raises(ValueError, match=r"expected \w+ of shape \(N,\) with N = 12 .*shape \(12,\)"):
            call()
    for call in [lambda: losses.batch_all_triplet_loss(X, Y.float()), lambda: mining.positive_mask(Y.float()),
                 lambda: evaluate.few_shot_episodes(Y.float(), 2, 1, 1, 1).__next__(),
                 lambda: data.check_labels(Y.float(), 12)]:
        with pytest.raises(ValueError, match="integer dtype"):
            call()


def test_feature_and_image_errors_name_the_expected_shape():
    for call in [lambda: losses.triplet_loss(X[0], X[0], X[0]), lambda: mining.mine_triplets(X[0], Y),
                 lambda: evaluate.cluster_scores(X[0], Y), lambda: distances.l2_distance(X, X[:2])]:
        with pytest.raises(ValueError, match=r"\(N, D\)"):
            call()
    with pytest.raises(ValueError, match=r"expected images uint8 of shape \(N, H, W, 3\)"):
        data.to_model_input(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, H, W\)"):
        models.SmallConvNet((4,))(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"expected features of shape \(B, 8\)"):
        models.ProjectionHead(8, 4, 2)(torch.zeros(2, 7))


def test_work_dtype_is_float32_for_half_and_kept_otherwise():
    assert check.work_dtype(torch.zeros(1, dtype=torch.float16)) == torch.float32
    assert check.work_dtype(torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1)) == torch.float32
    assert check.work_dtype(torch.zeros(1, dtype=torch.float64), torch.zeros(1)) == torch.float64
    (h,) = check.floats("x", X.half())
    assert h.dtype == torch.float32


# ------------------------------------------------------------------- nn.Linear argument order
def test_heads_and_centres_take_dim_then_classes():
    head, centres = losses.AngularMarginHead(5, 3), losses.CenterLoss(5, 3)
    assert head.weight.shape == centres.centers.shape == (3, 5)  # (C, D) rows, like nn.Linear(5, 3).weight
    assert losses.CenterLoss(num_classes=3, embedding_dim=5).centers.shape == (3, 5)
    assert torch.nn.Linear(5, 3).weight.shape == (3, 5)

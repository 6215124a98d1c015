"""The chapter-05 glue: any pretext task trains through fit and is scored on its backbone."""
import torch

from course_lib.config import set_seed
from course_lib.data import normalize_batch
from course_lib.evaluate import extract_features, frozen_scores, knn_accuracy, linear_probe
from course_lib.models import SmallConvNet
from course_lib.pretext import PretextTask, encoder, score_task, train_pretext


class Shrink(PretextTask):
    """A toy task: make the features small (only the plumbing is under test)."""

    def forward(self, x):
        return self.encode(x).pow(2).mean()


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8)


class Split:
    def __init__(self, n, seed):
        self.images = _images(n, seed)
        self.labels = torch.arange(n) % 4


def test_frozen_scores_are_knn_and_probe_of_the_extracted_features():
    set_seed(0)
    f = SmallConvNet((4, 8))
    tr, te = Split(64, 1), Split(32, 2)
    h_tr, h_te = extract_features(f, tr.images), extract_features(f, te.images)
    assert frozen_scores(f, tr.images, tr.labels, te.images, te.labels) == {
        "kNN": knn_accuracy(h_tr, tr.labels, h_te, te.labels, k=200, temperature=0.1),
        "linear probe": linear_probe(h_tr, tr.labels, h_te, te.labels)}


def test_a_task_is_evaluated_on_normalised_rgb_in_eval_mode():
    set_seed(0)
    task = Shrink(SmallConvNet((4, 8))).train()
    images = _images(8, 3)
    h = extract_features(encoder(task), images, normalize_input=False)   # [0, 1] in, the task prepares
    assert task.training, "extract_features hands the mode back"
    x = images.permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = task.eval().backbone(normalize_batch(x))
    assert torch.allclose(h, want, atol=1e-6)


def test_train_pretext_lowers_the_loss_and_loads_the_finished_run(tmp_path, monkeypatch):
    import course_lib.pretext.runs as runs
    monkeypatch.setattr(runs, "checkpoint_path", lambda name, per_run=False: tmp_path / f"{name}-{{run}}.pt")
    images = _images(64, 4)
    set_seed(0)
    task = Shrink(SmallConvNet((4, 8)))
    history = train_pretext(task, images, epochs=3, batch_size=16, lr=1e-2, name="toy")
    assert history["loss"][-1] < history["loss"][0]
    assert len(list(tmp_path.glob("05_toy-*.pt"))) == 1
    again = train_pretext(Shrink(SmallConvNet((4, 8))), images, epochs=3, batch_size=16, lr=1e-2, name="toy")
    assert again["loss"] == history["loss"]  # loaded, not retrained
    tr, te = Split(64, 5), Split(32, 6)
    assert score_task(task, tr, te) == frozen_scores(encoder(task), tr.images, tr.labels, te.images, te.labels,
                                                     normalize_input=False)

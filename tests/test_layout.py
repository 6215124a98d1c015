"""The package's shape: topic modules of a readable size, old import paths kept, a light import."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ["course_lib/viz", "course_lib/evaluate", "course_lib/data", "course_lib/augment", "course_lib/losses"]


@pytest.mark.parametrize("package", SPLIT)
def test_topic_modules_fit_a_few_screens(package):
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / package).glob("*.py")}
    assert sizes and max(sizes.values()) <= 350, sizes


def test_import_is_light():
    heavy = ["matplotlib.pyplot", "sklearn", "umap", "ipywidgets", "IPython", "pygments"]
    code = f"import sys, course_lib; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", f"imported with course_lib: {out.strip()}"


OLD_PATHS = {  # module: names that were importable from it before the split
    "course_lib.viz": ["margin_explorer", "plot_history", "show_images", "show_class_grid", "show_retrievals",
                       "plot_embedding_2d", "embed_2d", "plot_bars", "plot_circle_regions", "show_live",
                       "plot_embedding_snapshots", "plot_roc", "margin_summary", "plot_margin", "to_display",
                       "use_course_style", "COURSE_STYLE", "METHODS", "SAME_COLOR", "OTHER_COLOR",
                       "PULL_COLOR", "PUSH_COLOR", "IDLE_COLOR", "nearest_neighbours", "_style"],
    "course_lib.evaluate": ["knn_accuracy", "extract_features", "pixel_features", "linear_probe", "recall_at_k",
                            "map_at_r", "verification_roc", "invariance_ratio", "cluster_scores", "KNNMonitor",
                            "knn_monitor", "RetrievalMonitor", "few_shot_episodes", "few_shot_accuracy"],
    "course_lib.data": ["DeviceLoader", "PKSampler", "load_data", "check_images", "check_labels", "load_cifar10",
                        "find_cifar10", "load_digits", "ImageData", "balanced_subset", "class_examples",
                        "to_model_input", "normalize_batch", "random_pairs", "random_triplets_by_class",
                        "PairDataset", "TripletDataset", "CIFAR10_CLASSES", "DIGITS_CLASSES", "CIFAR10_MEAN",
                        "CIFAR10_STD", "CIFAR10_URL", "PROFILE_SIZES", "_ClassIndex"],
    "course_lib.augment": ["SimCLRAugment", "SimCLRAugmentConfig", "AugmentParams", "simclr_reference_transform",
                           "TwoViews", "random_resized_crop_params", "crop_grid", "crop_and_flip",
                           "rgb_to_grayscale", "blend", "adjust_brightness", "adjust_contrast",
                           "adjust_saturation", "adjust_hue", "color_jitter", "gaussian_blur", "select",
                           "check_batch", "GRAY_WEIGHTS", "JITTER_OPS"],
    "course_lib.losses.metric": ["arcface_logits", "cosface_logits", "contrastive_loss", "triplet_loss",
                                 "CenterLoss", "AngularMarginHead", "prototypical_accuracy", "_floats", "_labels",
                                 "_class_ids", "_mm", "_cosines"],
}


@pytest.mark.parametrize("module", OLD_PATHS)
def test_old_import_paths_still_work(module):
    mod = importlib.import_module(module)
    missing = [name for name in OLD_PATHS[module] if not hasattr(mod, name)]
    assert not missing
    assert set(getattr(mod, "__all__", [])) <= set(dir(mod))


def test_everything_in_all_is_one_object_wherever_it_is_imported_from():
    from course_lib import losses
    from course_lib.losses import classification, metric, pairs, softmax, triplets

    for sub in (pairs, triplets, softmax, classification):
        for name in sub.__all__:
            assert getattr(losses, name) is getattr(sub, name) is getattr(metric, name)


def test_show_source_returns_and_prints_the_library_code(capsys):
    from course_lib.losses import contrastive_loss
    from course_lib.viz import show_source

    src = show_source(contrastive_loss)
    assert src.startswith("def contrastive_loss(") and "contrastive_loss_from_distances" in src
    printed = capsys.readouterr().out
    assert "course_lib.losses.pairs.contrastive_loss" in printed and "course_lib/losses/pairs.py" in printed
    assert src in printed
    assert show_source(contrastive_loss, show=False) == src and capsys.readouterr().out == ""
    with pytest.raises(TypeError, match="show_source"):
        show_source(len)


def test_show_source_in_a_notebook_is_highlighted_html(monkeypatch):
    pytest.importorskip("pygments")
    import IPython
    import IPython.display

    from course_lib.viz import show_source

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    from course_lib.mining import positive_mask

    src = show_source(positive_mask)
    ((bundle, raw),) = shown
    assert raw and set(bundle) == {"text/html", "text/plain"}
    assert "<span" in bundle["text/html"] and "positive_mask" in bundle["text/html"]
    assert src in bundle["text/plain"]

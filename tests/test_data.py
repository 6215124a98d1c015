import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import data
from course_lib.data import CIFAR10_CLASSES, DeviceLoader, load_cifar10

from conftest import cifar_source


def _write_fake_tree(root, per_class=(3, 2), size=32, as_tar=False):
    """An ImageFolder tree of PNGs whose pixel value encodes (split, class, index)."""
    rng = np.random.default_rng(0)
    expected = {}
    files = []
    for split, n in zip(("train", "test"), per_class):
        xs, ys = [], []
        for c, name in enumerate(CIFAR10_CLASSES):
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                files.append((f"cifar10/{split}/{name}/{i:04d}.png", img))
                xs.append(img)
                ys.append(c)
        expected[split] = (np.stack(xs), np.array(ys))
    if as_tar:
        path = root / "tree.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, img in files:
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="PNG")
                info = tarfile.TarInfo(name)
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
        return path, expected
    for name, img in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / name)
    return root / "cifar10", expected


@pytest.mark.parametrize("as_tar", [False, True])
def test_image_folder_is_decoded_exactly_and_cached(tmp_path, monkeypatch, as_tar):
    src_root = tmp_path / "src"
    src_root.mkdir()
    source, expected = _write_fake_tree(src_root, as_tar=as_tar)
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CIFAR10", str(source))
    for train, split in ((True, "train"), (False, "test")):
        x, y = load_cifar10(train=train, root=cache, download=False)
        assert x.dtype == torch.uint8 and x.shape == (len(expected[split][1]), 32, 32, 3)
        assert y.dtype == torch.int64
        np.testing.assert_array_equal(x.numpy(), expected[split][0])  # PNG is lossless
        np.testing.assert_array_equal(y.numpy(), expected[split][1])
    assert len(list(cache.glob("cifar10-*.npz"))) == 1
    # a second call reads the cache and decodes nothing
    monkeypatch.setattr(data.sources, "_read_image_folder", lambda source: pytest.fail("decoded twice"))
    x2, _ = load_cifar10(train=False, root=cache, download=False)
    np.testing.assert_array_equal(x2.numpy(), expected["test"][0])


def test_tree_with_wrong_classes_is_refused(tmp_path, monkeypatch):
    (tmp_path / "t" / "train" / "cats").mkdir(parents=True)
    (tmp_path / "t" / "test" / "cats").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "t" / "train" / "cats" / "a.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "t" / "test" / "cats" / "a.png")
    monkeypatch.setenv("COURSE_CIFAR10", str(tmp_path / "t"))
    with pytest.raises(FileNotFoundError, match="airplane"):
        load_cifar10(root=tmp_path / "cache", download=False)


def test_missing_data_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_CIFAR10", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(root=tmp_path, download=False)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and "COURSE_DATA" in msg and "COURSE_CIFAR10" in msg
    assert str(tmp_path) in msg


def test_failed_download_becomes_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_CIFAR10", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.sources, "_torchvision_cifar10", lambda root, train, download: offline())
    with pytest.raises(FileNotFoundError, match="download failed: network is unreachable"):
        load_cifar10(root=tmp_path, download=True)


def test_digits_fallback_is_cifar_shaped():
    x_tr, y_tr = data.load_digits(train=True)
    x_te, y_te = data.load_digits(train=False)
    assert x_tr.shape[1:] == (32, 32, 3) and x_tr.dtype == torch.uint8
    assert len(y_tr) + len(y_te) == 1797
    assert set(y_te.tolist()) == set(range(10))
    assert torch.equal(x_tr[..., 0], x_tr[..., 2])  # grey digits in three equal channels


def test_smoke_profile_without_cifar_uses_digits(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_CIFAR10", raising=False)
    d = data.load_data(train=True, profile="smoke", root=tmp_path)
    assert d.source == "digits" and len(d) == data.PROFILE_SIZES["smoke"][0]
    assert d.labels.bincount().tolist() == [50] * 10  # class-balanced subset
    x, y = d
    assert x is d.images


def test_load_data_rejects_unknown_names():
    with pytest.raises(ValueError, match="gpu, cpu, smoke"):
        data.load_data(profile="tpu")
    with pytest.raises(ValueError, match="'cifar10'"):
        data.load_data(dataset="mnist")


def test_balanced_subset_is_balanced_and_seeded():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = data.balanced_subset(labels, 30, seed=1)
    assert len(set(idx.tolist())) == 30
    assert torch.bincount(labels[idx]).tolist() == [13, 12, 5]
    assert torch.equal(idx, data.balanced_subset(labels, 30, seed=1))
    assert not torch.equal(idx, data.balanced_subset(labels, 30, seed=2))


def test_device_loader_batches_cover_the_data_once():
    x = torch.arange(10 * 4 * 4 * 3).reshape(10, 4, 4, 3).to(torch.uint8)
    y = torch.arange(10)
    loader = DeviceLoader(x, y, batch_size=4, shuffle=True, drop_last=False, normalize=False)
    assert len(loader) == 3
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in loader:
        assert xb.shape[1:] == (3, 4, 4) and xb.dtype == torch.float32
        expected = x[yb].permute(0, 3, 1, 2).float() / 255
        assert torch.allclose(xb, expected)  # labels stay with their images
    assert len(DeviceLoader(x, y, batch_size=4)) == 2  # drop_last by default


def test_device_loader_two_views_and_normalisation():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 8, 8, 3), dtype=torch.uint8)
    noisy = lambda b: (b + 0.1 * torch.randn_like(b)).clamp(0, 1)  # noqa: E731
    loader = DeviceLoader(x, None, batch_size=8, transform=noisy, n_views=2, shuffle=False)
    (v1, v2), y = next(iter(loader))
    assert v1.shape == v2.shape == (8, 3, 8, 8) and not torch.equal(v1, v2)
    assert torch.equal(y, torch.zeros(8, dtype=torch.int64))
    plain = next(iter(DeviceLoader(x, batch_size=8, shuffle=False)))[0]
    mean = torch.tensor(data.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data.CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(plain, (x.permute(0, 3, 1, 2).float() / 255 - mean) / std, atol=1e-6)


def test_device_loader_is_repeatable_under_a_seed():
    x = torch.randint(0, 256, (20, 4, 4, 3), dtype=torch.uint8)
    torch.manual_seed(3)
    a = [yb for _, yb in DeviceLoader(x, torch.arange(20), batch_size=5)]
    torch.manual_seed(3)
    b = [yb for _, yb in DeviceLoader(x, torch.arange(20), batch_size=5)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(4, 32, 32, 3), "uint8"),
        (torch.zeros(4, 3, 32, 32, dtype=torch.uint8), r"\(N, H, W, 3\)"),
        (torch.zeros(32, 32, 3, dtype=torch.uint8), r"\(N, H, W, 3\)"),
    ],
)
def test_bad_images_are_refused_with_the_expected_shape(bad, match):
    with pytest.raises(ValueError, match=match):
        DeviceLoader(bad)
    with pytest.raises(ValueError, match=match):
        data.to_model_input(bad)


def test_labels_must_match_images():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        DeviceLoader(torch.zeros(4, 8, 8, 3, dtype=torch.uint8), torch.zeros(5, dtype=torch.int64))


@pytest.mark.cifar
def test_real_cifar10_archive(cifar10_test_split):
    x, y = cifar10_test_split
    assert x.shape == (10000, 32, 32, 3) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [1000] * 10
    assert 100 < x.float().mean() < 140  # natural images, not blank decodes


# ------------------------------------------------------------------ pairs, triplets, PK batches
LABELS = torch.tensor([0] * 5 + [1] * 3 + [2] * 1 + [3] * 10 + [7] * 2)  # ids need not be 0..C-1


def test_random_pairs_follow_their_definition():
    i, j, same = data.random_pairs(LABELS, 4000, positive_fraction=0.3, seed=1)
    assert torch.equal(LABELS[i] == LABELS[j], same) and bool((i != j).all())
    assert abs(same.float().mean().item() - 0.3) < 0.03
    assert 8 not in i.tolist()  # the lone example of class 2 has no partner: never an anchor
    assert set(j[~same].tolist()) == set(range(len(LABELS)))  # any example can be a negative
    i2, j2, same2 = data.random_pairs(LABELS, 4000, positive_fraction=0.3, seed=1)
    assert torch.equal(i, i2) and torch.equal(j, j2)


def test_random_negatives_are_uniform_over_other_classes():
    # anchor 0 (class 0, 5 members): 16 other-class examples, each about 1/16 of the draws
    index = data._ClassIndex(LABELS)
    neg = index.negatives(torch.zeros(32000, dtype=torch.int64), torch.Generator().manual_seed(0))
    counts = torch.bincount(neg, minlength=len(LABELS)).float()
    assert counts[:5].sum() == 0 and torch.allclose(counts[5:] / 32000, torch.full((16,), 1 / 16), atol=0.01)


def test_random_triplets_by_class():
    a, p, n = data.random_triplets_by_class(LABELS, 2000, seed=0)
    assert bool((LABELS[a] == LABELS[p]).all() and (a != p).all() and (LABELS[a] != LABELS[n]).all())


def test_pair_and_triplet_datasets_return_model_inputs():
    x = torch.randint(0, 256, (len(LABELS), 8, 8, 3), dtype=torch.uint8)
    pairs = data.PairDataset(x, LABELS, n_pairs=10, seed=0)
    x1, x2, same = pairs[3]
    assert x1.shape == (3, 8, 8) and same.item() == float(LABELS[pairs.i[3]] == LABELS[pairs.j[3]])
    assert torch.allclose(x1, data.to_model_input(x[pairs.i[3]][None])[0])
    xa, xp, xn = data.TripletDataset(x, LABELS, n_triplets=5)[0]
    assert xa.shape == xp.shape == xn.shape == (3, 8, 8)


def test_pk_sampler_batches():
    labels = torch.arange(10).repeat_interleave(20)  # 10 classes x 20
    sampler = data.PKSampler(labels, p=4, k=5, generator=torch.Generator().manual_seed(0))
    assert len(sampler) == 200 // 20
    seen = torch.zeros(10)
    for _ in range(30):
        for batch in sampler:
            y = labels[batch]
            assert len(batch) == 20 and len(set(batch.tolist())) == 20  # without replacement
            classes, counts = torch.unique(y, return_counts=True)
            assert len(classes) == 4 and counts.tolist() == [5] * 4
            assert torch.equal(y.view(4, 5), y.view(4, 5)[:, :1].expand(4, 5))  # grouped by class
            seen[classes] += 1
    assert torch.allclose(seen / seen.sum(), torch.full((10,), 0.1), atol=0.03)  # classes uniform


def test_pk_sampler_small_classes_repeat_and_bad_arguments():
    sampler = data.PKSampler(LABELS, p=5, k=4, generator=torch.Generator().manual_seed(0))
    batch = next(iter(sampler))
    assert torch.unique(LABELS[batch], return_counts=True)[1].tolist() == [4] * 5
    with pytest.raises(ValueError, match="number of classes"):
        data.PKSampler(LABELS, p=6, k=2)


def test_device_loader_with_a_pk_sampler():
    labels = torch.arange(4).repeat_interleave(6)
    x = labels.view(-1, 1, 1, 1).expand(-1, 2, 2, 3).to(torch.uint8).contiguous()  # pixel = label
    loader = DeviceLoader(x, labels, batch_sampler=data.PKSampler(labels, p=2, k=3), normalize=False)
    assert len(loader) == 4
    for xb, yb in loader:
        assert torch.allclose(xb[:, 0, 0, 0] * 255, yb.float())
        assert torch.unique(yb).numel() == 2

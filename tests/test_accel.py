"""The speed options of fit change how, not what: channels_last and a failed torch.compile train to the same
weights as the plain loop; fused kernels are asked for only where they exist; a sharded DeviceLoader gives the
processes exactly the batches of one loader, split."""
import warnings

import pytest
import torch
from torch import nn

from course_lib.data import DeviceLoader
from course_lib.models import SmallConvNet
from course_lib.train import fit
from course_lib.train.accel import CompileFallback, fused_options, to_channels_last


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=g), torch.arange(n) % 4


def _model():
    torch.manual_seed(0)
    return nn.Sequential(SmallConvNet((4, 8, 8, 8)), nn.Linear(8, 4))


def _train(**options):
    images, labels = _data()
    model = _model()
    fit(model, DeviceLoader(images, labels, batch_size=16), epochs=2, progress=False, **options)
    return model


def test_channels_last_trains_to_the_same_weights():
    plain, nhwc = _train(), _train(channels_last=True)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in nhwc.parameters())
    for (k, a), b in zip(plain.state_dict().items(), nhwc.state_dict().values()):
        torch.testing.assert_close(a, b.contiguous(), rtol=1e-4, atol=1e-5, msg=k)


def test_a_compile_that_fails_falls_back_to_eager_with_one_warning(monkeypatch):
    from torch._dynamo.exc import InternalTorchDynamoError

    class Broken:
        def __call__(self, *args, **kwargs):
            raise InternalTorchDynamoError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Broken())
    plain = _train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallen = _train(compile=True)
    assert sum("torch.compile failed" in str(w.message) for w in caught) == 1
    for a, b in zip(plain.state_dict().values(), fallen.state_dict().values()):
        assert torch.equal(a, b)


def test_the_models_own_errors_are_not_swallowed_by_the_fallback():
    wrapped = CompileFallback(nn.Linear(3, 2), compiled=nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        wrapped(torch.randn(4, 5))
    assert not wrapped.failed and wrapped.out_features == 2  # attributes come from the module


def test_fused_kernels_only_on_cuda():
    assert fused_options(torch.optim.Adam, torch.device("cpu")) == {}
    assert fused_options(torch.optim.Adam, torch.device("cuda")) == {"fused": True}
    assert fused_options(torch.optim.SGD, torch.device("cuda")) == {"fused": True}
    assert fused_options(torch.optim.RMSprop, torch.device("cuda")) in ({}, {"fused": True})


def test_to_channels_last_keeps_values_and_structure():
    x = torch.randn(2, 3, 4, 5)
    (a, b), y = to_channels_last(((x, x), torch.arange(2)))
    assert a.is_contiguous(memory_format=torch.channels_last) and torch.equal(a, x) and torch.equal(y, torch.arange(2))


# ------------------------------------------------------------------------------ sharding
def _indices(loader):
    """Which images each batch holds: the loader serves labels = image ids."""
    torch.manual_seed(5)
    return [y.tolist() for _, y in loader]


def test_shards_together_serve_exactly_the_batches_of_one_loader():
    images = torch.zeros(40, 8, 8, 3, dtype=torch.uint8)
    ids = torch.arange(40)
    one = _indices(DeviceLoader(images, ids, batch_size=8))
    shards = [_indices(DeviceLoader(images, ids, batch_size=8, shard=(r, 2))) for r in range(2)]
    assert len(one) == len(shards[0]) == len(shards[1]) == 5
    for b, batch in enumerate(one):
        assert shards[0][b] + shards[1][b] == batch and len(shards[0][b]) == 4


def test_each_shard_draws_its_own_augmentations():
    images, _ = _data(n=16)
    noise = lambda x: x + torch.rand(len(x), 1, 1, 1)  # noqa: E731  (a random shift per image)
    drawn = []
    for r in range(2):
        torch.manual_seed(5)  # fit seeds every process alike
        (x, _), = list(DeviceLoader(images, batch_size=16, transform=noise, shard=(r, 2), shuffle=False, normalize=False))
        raw = images[r * 8 : (r + 1) * 8].permute(0, 3, 1, 2).float() / 255
        drawn.append((x - raw)[:, 0, 0, 0])
    assert not torch.allclose(drawn[0], drawn[1]), "both processes drew the same augmentations"


def test_a_shard_needs_a_divisible_global_batch():
    images = torch.zeros(10, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="divisible by world_size = 3"):
        DeviceLoader(images, batch_size=8, shard=(0, 3))
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        DeviceLoader(images, batch_size=8, shard=(2, 2))

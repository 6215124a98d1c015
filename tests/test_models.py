import pytest
import torch
from torch import nn

from course_lib import models
from course_lib.models import (
    Classifier, EmbeddingNet, PredictionHead, ProjectionHead, SmallConvNet, backbone_for_profile,
    count_parameters, resnet18_cifar,
)


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32)


def test_small_conv_net_shape_and_size(images):
    net = SmallConvNet()
    assert net(images).shape == (2, 256) and net.out_dim == 256
    # 4 conv3x3 without bias + BN: 9·(3·32 + 32·64 + 64·128 + 128·256) + 2·(32 + 64 + 128 + 256)
    expected = 9 * (3 * 32 + 32 * 64 + 64 * 128 + 128 * 256) + 2 * (32 + 64 + 128 + 256)
    assert count_parameters(net) == expected
    assert abs(count_parameters(net) - 0.39e6) / 0.39e6 < 0.02
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 3


def test_small_conv_net_widths_and_bad_input():
    net = SmallConvNet((8, 16, 32, 64), in_channels=1)
    assert net(torch.randn(3, 1, 32, 32)).shape == (3, 64) and net.out_dim == 64
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.randn(3, 3, 32, 32))


def test_resnet18_cifar_stem_and_size(images):
    net = resnet18_cifar()
    assert net(images).shape == (2, 512) and net.out_dim == 512
    assert abs(count_parameters(net) - 11.17e6) / 11.17e6 < 0.01
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.padding == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    logits = resnet18_cifar(num_classes=10)
    assert isinstance(logits.fc, nn.Linear) and logits.fc.out_features == 10 and logits.out_dim == 10
    assert count_parameters(logits) - count_parameters(net) == 512 * 10 + 10


def test_classifier_and_embedding_net(images):
    backbone = SmallConvNet((8, 16, 32, 64))
    clf = Classifier(backbone, 10)
    assert clf(images).shape == (2, 10) and clf.features(images).shape == (2, 64)
    assert [name for name, _ in clf.named_children()] == ["backbone", "head"]

    emb = EmbeddingNet(SmallConvNet((8, 16, 32, 64)), dim=2, hidden=32)
    assert [name for name, _ in emb.named_children()] == ["backbone", "neck", "head"]
    assert [type(m) for m in emb.neck] == [nn.Linear, nn.BatchNorm1d, nn.PReLU]
    z = emb(images)
    assert z.shape == (2, 2) and not torch.allclose(z.norm(dim=1), torch.ones(2))
    emb.normalize = True
    torch.testing.assert_close(emb(images).norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="out_dim"):
        EmbeddingNet(nn.Flatten())
    assert EmbeddingNet(nn.Flatten(), dim=4, feature_dim=3 * 32 * 32)(images).shape == (2, 4)


def test_heads():
    h = torch.randn(4, 64)
    proj = ProjectionHead(64, hidden_dim=32, out_dim=16)
    assert proj(h).shape == (4, 16)
    assert [type(m) for m in proj.layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    deep = ProjectionHead(64, 32, 16, num_layers=3, last_bn=True)
    assert deep(h).shape == (4, 16) and isinstance(deep.layers[-1], nn.BatchNorm1d)
    assert isinstance(ProjectionHead(64, num_layers=1, out_dim=8).layers[0], nn.Linear)
    pred = PredictionHead(16, 32, 16)
    assert pred(torch.randn(4, 16)).shape == (4, 16)
    assert PredictionHead().layers[0].in_features == 256 and PredictionHead().layers[0].out_features == 4096
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        proj(torch.randn(4, 65))


def test_count_parameters_trainable_only():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    assert count_parameters(net) == 16 + 10 and count_parameters(net, trainable_only=True) == 10


@pytest.mark.parametrize("profile, kind, dim", [("gpu", "ResNet", 512), ("cpu", "SmallConvNet", 256), ("smoke", "SmallConvNet", 64)])
def test_backbone_for_profile(profile, kind, dim, images):
    net = backbone_for_profile(profile)
    assert type(net).__name__ == kind and net.out_dim == dim
    if kind == "SmallConvNet":  # the ResNet's forward is tested above
        assert net(images).shape == (2, dim)


def test_backbone_for_profile_default_follows_course_profile(monkeypatch):
    monkeypatch.setattr(models.config, "PROFILE", "cpu")
    assert backbone_for_profile().out_dim == 256
    with pytest.raises(ValueError, match="profile"):
        backbone_for_profile("tpu")

"""course_lib.methods: SimCLR, MoCo v2, BYOL, Barlow Twins and what they share.

Each method is checked against the paper's formula computed here independently (a loop or a
closed form), its target network against the momentum formula by hand, MoCo's queue against a
first-in-first-out model of it, and SplitBatchNorm2d against BatchNorm2d run on each sub-batch.
"""
import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.losses import nt_xent_loss
from course_lib.methods import (BYOL, METHODS, BarlowTwins, MoCo, SimCLR, SplitBatchNorm2d, build_method,
                                cosine_momentum, momentum_update, split_batchnorm, target_copy, target_update,
                                update_target)
from course_lib.models import ProjectionHead, SmallConvNet

B = 8
SMALL = {  # tiny heads so that every test runs in well under a second
    "simclr": dict(projector_hidden=32, projector_dim=16),
    "moco": dict(queue_size=64, projector_dim=16, bn_splits=2),
    "byol": dict(projector_hidden=32, projector_dim=16, predictor_hidden=32),
    "barlow": dict(projector_hidden=32, projector_dim=32),
}
PARTS = {
    "simclr": ["backbone", "projector"],
    "moco": ["backbone", "projector", "target_backbone", "target_projector"],
    "byol": ["backbone", "projector", "predictor", "target_backbone", "target_projector"],
    "barlow": ["backbone", "projector"],
}


def make(name, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_method(name, SmallConvNet((8, 16)), **{**SMALL[name], **overrides})


def views(seed=1, b=B):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 16, 16, generator=g), torch.randn(b, 3, 16, 16, generator=g)


def targets(model):
    return [p for name, p in model.named_parameters() if name.startswith("target_")]


# ---------------------------------------------------------------------------- every method
@pytest.mark.parametrize("name", list(METHODS))
def test_parts_loss_and_no_gradient_into_the_target(name):
    model = make(name)
    assert [n for n, _ in model.named_children()] == PARTS[name]
    loss = model(*views())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert all(not p.requires_grad and p.grad is None for p in targets(model))
    assert (len(targets(model)) > 0) == (name in ("moco", "byol"))


def _loss_on_fixed_batch(model, x1, x2):
    state = {k: v.clone() for k, v in model.named_buffers() if "queue" in k}
    torch.manual_seed(123)  # the same MoCo key shuffle both times
    loss = model(x1, x2)
    for k, v in state.items():  # MoCo enqueued this batch's keys: put the queue back
        model.get_buffer(k).copy_(v)
    return loss


@pytest.mark.parametrize("name", list(METHODS))
def test_one_optimizer_step_lowers_the_loss_on_a_fixed_batch(name):
    model = make(name)
    x1, x2 = views()
    before = _loss_on_fixed_batch(model, x1, x2)
    before.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    with torch.no_grad():
        for p in params:  # a small step along −∇L / ‖∇L‖
            p -= 1e-2 * p.grad / norm
    after = _loss_on_fixed_batch(model, x1, x2)
    assert after < before


def test_build_method_names_fields_aliases_and_errors():
    assert isinstance(make("barlow"), BarlowTwins)
    model = build_method("Barlow_Twins", SmallConvNet((8, 16)), projector_hidden=8, projector_dim=8, lambd=0.1)
    assert isinstance(model, BarlowTwins) and model.config.lambd == 0.1
    with pytest.raises(ValueError, match="simclr, moco, byol, barlow"):
        build_method("swav", SmallConvNet((8, 16)))
    with pytest.raises(ValueError, match="temperature.*projector_dim"):
        build_method("simclr", SmallConvNet((8, 16)), tau=0.1)


def test_a_changed_setting_is_a_changed_model_description():
    # fit names a run after repr(model): another temperature must not resume the old checkpoint
    assert repr(make("simclr", temperature=0.1)) != repr(make("simclr", temperature=0.5))


@pytest.mark.parametrize("name", list(METHODS))
def test_views_of_different_shapes_raise(name):
    x1, x2 = views()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        make(name)(x1, x2[:4])


# ------------------------------------------------------------------- momentum and targets
def _pair(w_target, w_online):
    target, online = nn.Linear(2, 1).double(), nn.Linear(2, 1).double()
    with torch.no_grad():
        target.weight.copy_(torch.tensor([w_target])), target.bias.fill_(-1.0)
        online.weight.copy_(torch.tensor([w_online])), online.bias.fill_(3.0)
    return online, target


def test_momentum_update_by_hand():
    online, target = _pair([1.0, 2.0], [3.0, 5.0])
    momentum_update(online, target, 0.9)
    assert torch.allclose(target.weight, torch.tensor([[1.2, 2.3]], dtype=torch.float64))  # 0.9·1 + 0.1·3, …
    assert torch.allclose(target.bias, torch.tensor([-0.6], dtype=torch.float64))  # 0.9·(−1) + 0.1·3
    online, target = _pair([1.0, 2.0], [3.0, 5.0])
    momentum_update(online, target, 1.0)
    assert target.weight.tolist() == [[1.0, 2.0]] and target.bias.tolist() == [-1.0]
    momentum_update(online, target, 0.0)
    assert target.weight.tolist() == [[3.0, 5.0]] and target.bias.tolist() == [3.0]
    for m in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            momentum_update(online, target, m)
    with pytest.raises(ValueError, match="same parameters"):
        momentum_update(online, nn.Linear(3, 1), 0.5)


def test_momentum_zero_copies_parameters_and_batchnorm_statistics():
    online = SmallConvNet((8, 16))
    target = target_copy(online)
    online(torch.randn(4, 3, 16, 16))  # moves the online running statistics
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    momentum_update(online, target, 0.0)
    for (k, a), b in zip(online.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k


def test_target_copy_is_equal_independent_and_frozen():
    online = SmallConvNet((8, 16))
    target = target_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    for a, b in zip(online.parameters(), target.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_cosine_momentum_closed_form():
    assert cosine_momentum(0, 100, base=0.99) == pytest.approx(0.99)
    assert cosine_momentum(100, 100, base=0.99) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, base=0.99) == pytest.approx(0.995)  # cos(π/2) = 0: τ = 1 − 0.01/2
    assert cosine_momentum(25, 75, base=0.9) == pytest.approx(1 - 0.1 * 0.75)  # cos(π/3) = 1/2
    assert cosine_momentum(150, 100, base=0.99) == 1.0
    with pytest.raises(ValueError):
        cosine_momentum(1, 0)


def test_byol_update_follows_the_cosine_schedule_and_ema_false_copies():
    model = make("byol")
    online = [p.detach().clone() + 1.0 for p in model.backbone.parameters()]
    old = [p.detach().clone() for p in model.target_backbone.parameters()]
    with torch.no_grad():
        for p, new in zip(model.backbone.parameters(), online):
            p.copy_(new)
    target_update(total_steps=10)(model, 5)  # τ = 1 − 0.01 · (cos(π/2) + 1)/2 = 0.995
    for t, xi, theta in zip(model.target_backbone.parameters(), old, online):
        assert torch.allclose(t, 0.995 * xi + 0.005 * theta, atol=1e-6)
    model = make("byol", ema=False)
    with torch.no_grad():
        for p in model.projector.parameters():
            p.mul_(2.0)
    update_target(model, step=3, total_steps=10)
    assert all(torch.equal(a, b) for a, b in zip(model.projector.parameters(), model.target_projector.parameters()))


def test_update_target_is_a_no_op_without_a_target():
    model = make("simclr")
    before = copy.deepcopy(model.state_dict())
    target_update(100)(model, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -------------------------------------------------------------------------- method losses
def nt_xent_loop(z1, z2, tau):
    """SimCLR's ℓ(i, j) = −log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ), averaged over the 2N views (Alg. 1)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n, total = len(z1), 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        s = [sum(a * b for a, b in zip(z[i], z[k])) / tau for k in range(2 * n)]
        total += -s[j] + math.log(sum(math.exp(s[k]) for k in range(2 * n) if k != i))
    return total / (2 * n)


def test_simclr_loss_is_nt_xent_of_one_pass_over_both_views():
    model = make("simclr", temperature=0.5)
    x1, x2 = views()
    z = model.projector(model.backbone(torch.cat([x1, x2])))  # one pass: BN statistics over 2B views
    assert torch.allclose(model(x1, x2), nt_xent_loss(z[:B], z[B:], 0.5), atol=1e-6)
    assert model(x1, x2).item() == pytest.approx(nt_xent_loop(z[:B], z[B:], 0.5), abs=1e-4)
    assert torch.equal(model.embed(x1), model.backbone(x1))


@pytest.mark.parametrize("layers, kind, dim", [(0, nn.Identity, 16), (1, ProjectionHead, 12), (2, ProjectionHead, 12)])
def test_simclr_head_none_linear_nonlinear(layers, kind, dim):
    model = make("simclr", projector_layers=layers, projector_dim=12, projector_hidden=None)
    assert isinstance(model.projector, kind)
    linears = [m for m in model.projector.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == layers
    assert [m.out_features for m in linears[:-1]] == [16] * (layers - 1)  # hidden = backbone width
    assert model.projector(torch.randn(B, 16)).shape == (B, dim)


def test_moco_loss_by_hand_and_keys_enqueued():
    model = make("moco", bn_splits=1, temperature=0.2)
    x1, x2 = views()
    queue = model.queue.clone()
    q = F.normalize(model.projector(model.backbone(x1)), dim=1)
    k = F.normalize(model.target_projector(model.target_backbone(x2)), dim=1).detach()
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / 0.2  # (B, 1 + K)
    expected = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
    assert torch.allclose(model(x1, x2), expected, atol=1e-5)
    assert torch.allclose(model.queue[:B], k, atol=1e-6) and torch.equal(model.queue[B:], queue[B:])
    assert int(model.queue_ptr) == B
    model.eval()
    model(x1, x2)
    assert int(model.queue_ptr) == B  # evaluating the loss does not enqueue


def test_moco_symmetric_adds_both_directions_and_enqueues_both_keys():
    model = make("moco", bn_splits=1, symmetric=True)
    asym = copy.deepcopy(model)
    asym.config = dataclasses.replace(asym.config, symmetric=False)
    x1, x2 = views()
    queue = model.queue.clone()
    expected = asym(x1, x2)
    asym.queue.copy_(queue)
    expected = expected + asym(x2, x1)
    assert torch.allclose(model(x1, x2), expected, atol=1e-5)
    assert int(model.queue_ptr) == 2 * B


def test_moco_queue_is_first_in_first_out_with_wrap_around():
    model = make("moco", queue_size=10, projector_dim=4)
    initial = model.queue.clone()
    assert model.queue.shape == (10, 4) and torch.allclose(initial.norm(dim=1), torch.ones(10))
    seen = [initial]
    for i in range(5):  # 5 batches of 4 keys through a queue of 10: it wraps round twice
        keys = torch.randn(4, 4) * (i + 1)
        model.enqueue(keys)
        seen.append(F.normalize(keys, dim=1))
        ptr = int(model.queue_ptr)
        assert ptr == 4 * (i + 1) % 10 and model.queue.shape == (10, 4)
        oldest_first = torch.roll(model.queue, -ptr, dims=0)  # slots from the pointer on: oldest … newest
        assert torch.allclose(oldest_first, torch.cat(seen)[-10:], atol=1e-6)
        assert torch.allclose(model.queue.norm(dim=1), torch.ones(10), atol=1e-6)
    with pytest.raises(ValueError, match="queue_size"):
        model.enqueue(torch.randn(11, 4))


def test_moco_keys_are_shuffled_through_split_batchnorm_and_unshuffled():
    model = make("moco", bn_splits=2)
    x = views()[0]
    torch.manual_seed(7)
    k = model.keys(x)
    torch.manual_seed(7)
    perm = torch.randperm(B)  # the permutation keys() drew
    plain = copy.deepcopy(model.target_backbone)
    for m in plain.modules():
        if isinstance(m, SplitBatchNorm2d):
            m.num_splits = 1  # ordinary BatchNorm over whatever batch it is given
    expected = torch.empty_like(k)
    for half in (perm[: B // 2], perm[B // 2:]):  # each sub-batch normalised alone
        expected[half] = model.target_projector(plain(x[half]))
    assert torch.allclose(k, expected, atol=1e-5)


def test_moco_update_target_uses_the_constant_momentum():
    model = make("moco", momentum=0.9)
    with torch.no_grad():
        for p in model.projector.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target_projector.parameters()]
    target_update(total_steps=1000)(model, 999)
    for t, old, q in zip(model.target_projector.parameters(), before, model.projector.parameters()):
        assert torch.allclose(t, 0.9 * old + 0.1 * q, atol=1e-6)


def test_byol_loss_is_the_symmetric_normalised_regression():
    model = make("byol")
    x1, x2 = views()
    p1, p2 = (F.normalize(model.predictor(model.projector(model.backbone(x))), dim=1) for x in (x1, x2))
    t1, t2 = (F.normalize(model.target_projector(model.target_backbone(x)), dim=1) for x in (x1, x2))
    expected = ((p1 - t2) ** 2).sum(1).mean() + ((p2 - t1) ** 2).sum(1).mean()  # ‖q̄ − z̄′‖², both ways
    assert torch.allclose(model(x1, x2), expected, atol=1e-5)
    assert isinstance(make("byol", predictor=False).predictor, nn.Identity)


def test_barlow_twins_loss_by_hand_and_scale():
    model = make("barlow", lambd=0.01, scale_loss=0.5)
    x1, x2 = views()
    za, zb = model.projector(model.backbone(x1)), model.projector(model.backbone(x2))
    na = (za - za.mean(0)) / za.std(0, unbiased=False)
    nb = (zb - zb.mean(0)) / zb.std(0, unbiased=False)
    c = na.T @ nb / B  # (D, D) cross-correlation
    off = ~torch.eye(len(c), dtype=torch.bool)
    expected = ((1 - c.diagonal()) ** 2).sum() + 0.01 * (c[off] ** 2).sum()
    assert torch.allclose(model(x1, x2), 0.5 * expected, rtol=1e-3)


# ------------------------------------------------------------------------- split BatchNorm
def test_split_batchnorm_equals_batchnorm_per_sub_batch_in_train_and_eval():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1, 1)
    split = split_batchnorm(copy.deepcopy(bn), 4)
    assert isinstance(split, SplitBatchNorm2d) and torch.equal(split.weight, bn.weight)
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    per_split = [copy.deepcopy(bn) for _ in range(4)]
    expected = torch.cat([b(chunk) for b, chunk in zip(per_split, x.chunk(4))])
    assert torch.allclose(split(x), expected, atol=1e-5)
    for name in ("running_mean", "running_var"):
        average = torch.stack([getattr(b, name) for b in per_split]).mean(0)
        assert torch.allclose(getattr(split, name), average, atol=1e-6)
    bn.load_state_dict(split.state_dict())
    split.eval(), bn.eval()
    assert torch.allclose(split(x), bn(x), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of num_splits"):
        split.train()(x[:6])


def test_split_batchnorm_gradient():
    split = SplitBatchNorm2d(2, num_splits=2).double()
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(split, (x,))


def test_split_batchnorm_converts_every_batchnorm_of_a_backbone_keeping_its_state():
    net = SmallConvNet((8, 16))
    net(torch.randn(4, 3, 16, 16))
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    before = net(x)
    state = copy.deepcopy(net.state_dict())
    split_batchnorm(net, 2)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 and all(isinstance(m, SplitBatchNorm2d) and m.num_splits == 2 for m in bns)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert torch.allclose(net(x), before) and not net.training
    moco = make("moco", bn_splits=4)
    assert all(m.num_splits == 4 for m in moco.target_backbone.modules() if isinstance(m, nn.BatchNorm2d))

"""course_lib.train.lars.LARS against independent computations: a loop written from Algorithm 1 of
You, Gitman & Ginsburg (2017), torch.optim.SGD for the excluded tensors, and lightly's LARS."""
import copy
import json

import pytest
import torch
from torch import nn

from course_lib.train.lars import LARS, trust_ratio
from course_lib.train.loop import fit

SHAPES = [(6, 3, 3, 3), (5, 7), (7,), (1,)]  # a conv weight, a linear weight, a bias, a BatchNorm-sized scalar


def random_params(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in SHAPES]


def random_grads(params, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


def paper_lars(weights, grads_per_step, lr, m, beta, eta, exclude=True):
    """Algorithm 1 of the paper, one tensor ("layer") at a time, γ inside v; ndim <= 1 tensors: plain SGD."""
    w = [x.detach().clone() for x in weights]
    v = [torch.zeros_like(x) for x in w]
    for grads in grads_per_step:
        for l, g in enumerate(grads):
            if exclude and w[l].ndim <= 1:
                v[l] = m * v[l] + lr * g
            else:
                local_lr = eta * w[l].norm() / (g.norm() + beta * w[l].norm())  # λ^l, eq. 6
                v[l] = m * v[l] + lr * local_lr * (g + beta * w[l])
            w[l] = w[l] - v[l]
    return w


def run_lars(params, grads_per_step, **options):
    opt = LARS(params, **options)
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    return opt


@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("n_steps", [1, 4])
def test_steps_equal_the_papers_algorithm(exclude, n_steps):
    params = random_params()
    start = [p.detach().clone() for p in params]
    grads = [random_grads(params, seed=10 + t) for t in range(n_steps)]
    hp = dict(lr=0.7, momentum=0.9, weight_decay=1e-2, trust_coefficient=0.02)  # β large enough to matter
    run_lars(params, grads, exclude_bias_and_norm=exclude, eps=0.0, **hp)
    expected = paper_lars(start, grads, hp["lr"], hp["momentum"], hp["weight_decay"], hp["trust_coefficient"],
                          exclude=exclude)
    for p, e, s in zip(params, expected, start):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)
        assert not torch.equal(p.detach(), s)


def test_biases_and_norms_get_exactly_sgd_with_momentum_even_as_the_lr_changes():
    params = random_params()
    vectors = [p for p in params if p.ndim <= 1]
    twins = [p.detach().clone().requires_grad_() for p in vectors]
    lars = LARS(vectors, lr=0.5, momentum=0.9, weight_decay=0.1)
    sgd = torch.optim.SGD(twins, lr=0.5, momentum=0.9)
    for t in range(5):
        for p, q, g in zip(vectors, twins, random_grads(vectors, seed=t)):
            p.grad, q.grad = g.clone(), g.clone()
        for opt in (lars, sgd):
            opt.param_groups[0]["lr"] = 0.5 / (t + 1)
            opt.step()
    for p, q in zip(vectors, twins):
        assert torch.equal(p.detach(), q.detach())


def test_weight_matrices_match_lightlys_lars():
    lightly_lars = pytest.importorskip("lightly.utils.lars").LARS
    params = [p for p in random_params() if p.ndim > 1]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours = LARS(params, lr=0.3, momentum=0.9, weight_decay=1e-3, trust_coefficient=1e-2)
    theirs = lightly_lars(twins, lr=0.3, momentum=0.9, weight_decay=1e-3, trust_coefficient=1e-2)
    for t in range(4):
        for p, q, g in zip(params, twins, random_grads(params, seed=t)):
            p.grad, q.grad = g.clone(), g.clone()
        for opt in (ours, theirs):
            opt.param_groups[0]["lr"] = 0.3 * (1 - t / 4)  # a decaying schedule: both keep γ outside v
            opt.step()
    for p, q in zip(params, twins):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)


def test_zero_weights_or_zero_gradients_give_finite_steps():
    zero_w = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    zero_g = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    both = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    grad = torch.full((4, 3), 0.5, dtype=torch.float64)
    zero_w.grad, zero_g.grad, both.grad = grad.clone(), torch.zeros_like(zero_g), torch.zeros_like(both)
    LARS([zero_w, zero_g, both], lr=0.1, weight_decay=0.01).step()
    # λ = 1 where ‖w‖ = 0 or ‖g‖ = 0: a plain SGD step, with weight decay where w ≠ 0
    torch.testing.assert_close(zero_w.detach(), -0.1 * grad)
    torch.testing.assert_close(zero_g.detach(), torch.full((4, 3), 1 - 0.1 * 0.01, dtype=torch.float64))
    assert torch.equal(both.detach(), torch.zeros(2, 2, dtype=torch.float64))
    for w in (torch.zeros(3), torch.ones(3)):
        assert trust_ratio(w, torch.zeros(3), 1e-3, 0.0).item() == 1.0


def test_trust_ratio_is_eq_6():
    w, g = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64)
    assert trust_ratio(w, g, 1e-3, 0.1, eps=0.0).item() == pytest.approx(1e-3 * 5 / (2 + 0.1 * 5), rel=1e-15)


def test_a_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = LARS(model.parameters(), lr=0.2, trust_coefficient=0.01)
    x, y = torch.randn(16, 5), torch.randn(16, 1)

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    train(model, opt, 3)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert len(saved_opt["state"]) == len(list(model.parameters()))  # a momentum buffer each
    train(model, opt, 3)
    resumed = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    resumed.load_state_dict(saved_model)
    resumed_opt = LARS(resumed.parameters(), lr=0.2, trust_coefficient=0.01)
    resumed_opt.load_state_dict(saved_opt)
    train(resumed, resumed_opt, 3)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def least_squares_problem():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, 10, generator=g)
    y = x @ torch.randn(10, 1, generator=g) + 0.5  # a bias to learn too
    return x, y


def mse_step(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_lars_trains_a_least_squares_problem_down():
    x, y = least_squares_problem()
    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    start = mse_step(model, (x, y)).item()
    opt = LARS(model.parameters(), lr=1.0, trust_coefficient=0.02, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for _ in range(100):
        opt.zero_grad()
        mse_step(model, (x, y)).backward()
        opt.step()
        sched.step()
    assert mse_step(model, (x, y)).item() < 1e-3 * start


def test_fit_resumes_a_lars_run_exactly(tmp_path):
    x, y = least_squares_problem()
    loader = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 128, 32)]

    def run(epochs, path):
        torch.manual_seed(0)
        model = nn.Linear(10, 1)
        fit(model, loader, epochs, step=mse_step, optimizer=lambda p: LARS(p, lr=0.5, trust_coefficient=0.02),
            checkpoint=path, progress=False)
        return model

    straight = run(2, tmp_path / "straight.pt")
    run(1, tmp_path / "resumed.pt")
    resumed = run(2, tmp_path / "resumed.pt")  # loads epoch 1's weights and momentum buffers, trains epoch 2
    assert torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)


def test_the_command_line_trains_with_lars(tmp_path):
    from course_lib.train.cli import main

    out = tmp_path / "run"
    assert main(["simclr", "--profile", "smoke", "--data", "digits", "--epochs", "1", "--batch-size", "64",
                 "--optimizer", "lars", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["optimizer"] == "lars" and summary["options"]["lr"] == 0.3 * 64 / 256
    run = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["run"]
    assert run["optimizer"]["class"] == "LARS" and summary["history"]["loss"][0] > 0

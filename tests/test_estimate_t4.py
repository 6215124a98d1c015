"""scripts/estimate_t4.py counts FLOPs right: checked against the closed form of a convolution."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import estimate_t4  # noqa: E402

from course_lib.models import SmallConvNet  # noqa: E402


def conv_flops(h, w, c_in, c_out, k, batch):
    """2 FLOPs (multiply + add) per weight per output pixel: 2·H·W·Cin·Cout·k² per image."""
    return 2 * h * w * c_in * c_out * k * k * batch


def test_flop_counter_matches_the_hand_count_of_a_conv_layer():
    batch = 4
    counts = estimate_t4.flops_by_module(SmallConvNet(), batch_size=batch, backward=False)
    assert counts["SmallConvNet.blocks.0"] == conv_flops(32, 32, 3, 32, 3, batch)      # first conv, 32x32
    widths, sizes = (3, 32, 64, 128, 256), (32, 16, 8, 4)                            # a 2x2 pool after blocks 1-3
    by_hand = sum(conv_flops(s, s, widths[i], widths[i + 1], 3, batch) for i, s in enumerate(sizes))
    assert counts["Global"] == by_hand


def test_backward_costs_twice_the_forward_but_the_first_input_gradient():
    net = SmallConvNet()
    forward = estimate_t4.step_flops(net, batch_size=2, backward=False)
    both = estimate_t4.step_flops(net, batch_size=2, backward=True)
    # grad of the weights everywhere, grad of the input everywhere but the image itself
    assert both == 3 * forward - conv_flops(32, 32, 3, 32, 3, 2)


def test_meta_device_counts_what_the_cpu_counts():
    net = SmallConvNet()
    assert estimate_t4.step_flops(net, 2, device="meta") == estimate_t4.step_flops(net, 2, device="cpu")


def test_the_budget_table_is_the_notebooks_own():
    """The script's table names the gpu budget lines it assumes; when a notebook changes them, update the table."""
    budgets = estimate_t4.current_budgets()
    names = [nb.name[:2] for nb in budgets]
    assert names[:6] == ["00", "01", "02", "03", "04", "06"] and names == sorted(names) and "08" in names
    for nb in budgets:
        path = Path(__file__).resolve().parents[1] / "notebooks" / f"{nb.name}.ipynb"
        source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        for line in nb.holds:
            assert line in source, (f"{path.name} no longer holds {line!r}: update current_budgets() in "
                                    "scripts/estimate_t4.py, then rerun it")


def test_the_estimate_runs():
    rows = estimate_t4.estimate(estimate_t4.current_budgets())
    assert all(r["minutes"]["fp16 25%"] < r["minutes"]["fp16 15%"] < r["minutes"]["fp32 40%"] for r in rows)

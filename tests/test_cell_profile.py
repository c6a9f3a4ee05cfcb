"""`bench --profile` (issue 13, item 3): per-cell time share, FLOPs, GFLOP/s and fraction of a measured FP32
GEMM peak; and bench's realistic default size (item 4). Tiny model, tiny frames; nothing here is timed."""
import json

import pytest
import torch
from click.testing import CliRunner

from vsrdeploy.cli import main
from vsrdeploy.errors import ConfigError
from vsrdeploy.evaluate.cell_flops import NOT_COUNTED, CellFlops, shape_key
from vsrdeploy.evaluate.cell_profile import OUTSIDE, format_profile
from vsrdeploy.evaluate.gemm_peak import measure_gemm_peak

pytest.importorskip("onnxruntime")

CONV_CELLS = ("flow", "backward_trunk", "forward_trunk", "upsample")  # BasicVSR's cells made of convolutions


def test_gemm_peak_is_a_positive_rate_on_the_current_threads():
    peak = measure_gemm_peak(size=256, repeat=2)
    assert peak["gflops"] > 0 and peak["best_s"] > 0
    assert peak["threads"] == torch.get_num_threads() and peak["size"] == 256 and peak["repeat"] == 2
    assert peak["gflops"] == pytest.approx(2 * 256 ** 3 / peak["best_s"] / 1e9)
    assert "torch.mm" in peak["kernels"] and peak["gflops"] == max(peak["kernels"].values())
    assert peak["kernels"][peak["kernel"]] == peak["gflops"]


def test_every_gemm_peak_kernel_computes_the_same_product():
    from vsrdeploy.evaluate.gemm_peak import _kernels
    kernels = _kernels(48)
    mm = kernels.pop("torch.mm")()
    conv = kernels.pop("conv2d 1x1 (oneDNN)", None)
    if conv is not None:
        assert torch.allclose(conv().reshape(48, 48).t(), mm, rtol=1e-4, atol=1e-4)
    assert "onnxruntime MatMul" in kernels  # onnxruntime is installed (importorskip above)
    for name, fn in kernels.items():
        assert torch.allclose(torch.as_tensor(fn()), mm, rtol=1e-4, atol=1e-4), name
    with pytest.raises(ConfigError, match="size >= 1 and repeat >= 1"):
        measure_gemm_peak(size=0)


class _OneConvNet:
    """A network-like object with one cell: a 3x3 convolution 3 -> 8 channels."""

    def __init__(self, device):
        conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False, device=device)
        conv.input_names = ["x"]
        self.cells = {"conv": conv}


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_cell_flops_match_the_hand_count_of_a_convolution(device):
    flops = CellFlops(_OneConvNet(device))
    key = shape_key({"x": torch.empty(2, 3, 16, 20)})
    assert key == (("x", (2, 3, 16, 20), "float32"),)
    # 2 FLOP per multiply-add, per output element: out channels x in channels x 3 x 3
    assert flops.flops("conv", key) == 2 * (2 * 8 * 16 * 20) * (3 * 3 * 3)
    assert flops.flops("conv", key) == flops._cache[("conv", key)]  # cached per shapes


@pytest.fixture(scope="module")
def profiled(tiny_bundle):
    from vsrdeploy.evaluate.bench import BASELINE, BenchConfig, run_configs
    backends = ["torch", "ort-cpu"]
    try:
        import openvino  # noqa: F401
        backends.append("openvino-cpu")
    except ImportError:
        pass
    rows = run_configs(str(tiny_bundle), [BenchConfig(BASELINE)] + [BenchConfig(b) for b in backends], frames=3,
                       size=(32, 48), warmup=2, repeat=1, window=2, lookahead=1, isolate=False, profile=True,
                       peak_size=256)
    return rows, backends


def test_profile_rows_cover_every_cell_and_shares_add_up(tiny_bundle, profiled):
    from vsrdeploy.bundle import Bundle
    rows, backends = profiled
    assert rows[0].name == "whole-clip torch" and rows[0].profile is None  # the baseline is not profiled
    cells = set(Bundle(tiny_bundle).cells)
    for r in rows[1:]:
        assert r.status == "ok", r.reason
        p = r.profile
        names = [c["cell"] for c in p["cells"]]
        assert set(names) == cells | {OUTSIDE} and names[-1] == OUTSIDE
        assert sum(c["share"] for c in p["cells"]) == pytest.approx(1.0, abs=1e-6)
        assert p["stream_s"] == pytest.approx(r.total_s)  # one timed run: its whole stream
        assert p["gemm_peak"]["gflops"] > 0 and p["gemm_peak"]["threads"] >= 1
        assert p["gemm_peak"]["gflops"] == max(p["gemm_peak"]["measured_gflops"])  # before and after the runs
        by_name = {c["cell"]: c for c in p["cells"]}
        for name in CONV_CELLS:
            c = by_name[name]
            assert c["calls"] >= 1 and c["gflop"] > 0 and c["gflop_per_call"] > 0, (r.name, c)
            assert c["gflops"] == pytest.approx(c["gflop"] / c["seconds"])
            assert c["peak_fraction"] == pytest.approx(c["gflops"] / p["gemm_peak"]["gflops"])
        assert by_name["warp"]["gflop"] == 0  # grid_sample: not counted, and not made up
        assert by_name[OUTSIDE]["gflop"] is None and by_name[OUTSIDE]["peak_fraction"] is None
        assert p["total"]["gflop"] == pytest.approx(sum(c["gflop"] for c in p["cells"] if c["cell"] != OUTSIDE))
        assert p["not_counted"] == NOT_COUNTED
    # the same cells on every backend do the same work
    flops = [{c["cell"]: c["gflop"] for c in r.profile["cells"]} for r in rows[1:]]
    assert all(f == flops[0] for f in flops)


def test_profile_table_names_the_peak_and_what_is_not_counted(profiled):
    rows, _ = profiled
    text = format_profile(rows[1].name, rows[1].profile)
    assert text.startswith(f"per-cell profile, {rows[1].name}: FP32 GEMM peak ")
    assert "torch.mm" in text and "256^3 GEMM" in text and "of peak" in text and OUTSIDE in text
    assert "grid_sample" in text and "not counted" in text and "before / after the runs" in text
    for name in CONV_CELLS:
        assert f"  {name} " in text


def test_bench_cli_profile_json(tiny_bundle):
    result = CliRunner().invoke(main, ["bench", str(tiny_bundle), "-b", "ort-cpu", "--size", "48x32", "--frames", "3",
                                       "--repeat", "1", "--warmup", "2", "--window", "2", "--lookahead", "1",
                                       "--profile", "--peak-size", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["profile"] is True and data["settings"]["size"] == [48, 32]
    base, ort = data["results"]
    assert base["profile"] is None and ort["status"] == "ok"
    cells = {c["cell"]: c for c in ort["profile"]["cells"]}
    assert cells["backward_trunk"]["gflop"] > 0 and ort["profile"]["gemm_peak"]["gflops"] > 0
    assert ort["profile"]["gemm_peak"]["size"] == 256


@pytest.mark.parametrize("order", [None, "hxw"])
def test_bench_defaults_to_the_papers_lr_size(tiny_bundle, monkeypatch, order):
    """No --size: 180x320 LR (HxW for the library), whatever the deprecated size-order switch says, with no
    notice about an option the user did not give. The timing itself is replaced: only the size is checked."""
    import vsrdeploy.evaluate.bench as bench
    from vsrdeploy.cli import SIZE_ORDER_ENV
    seen = {}

    def fake_run_configs(path, configs, **kw):
        seen.update(kw)
        return [bench.BenchResult(c.label, fps=1.0, ratio=1.0) for c in configs]

    monkeypatch.setattr(bench, "run_configs", fake_run_configs)
    if order:
        monkeypatch.setenv(SIZE_ORDER_ENV, order)
    result = CliRunner().invoke(main, ["bench", str(tiny_bundle), "-b", "ort-cpu"])
    assert result.exit_code == 0, result.output
    assert seen["size"] == (180, 320) and "frames 320x180" in result.stdout
    assert "read as WxH" not in result.output and "deprecated" not in result.output

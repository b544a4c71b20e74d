"""The fast path (``speed=fast``: stacked generators, channels-last, fused Adam) computes what the plain
reference path (``speed=plain``) computes: same outputs, gradients and losses within fp32 rounding."""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from ddip.errors import DdipError
from ddip.nets import SegNet, SkipUNet
from ddip.nets.graphed import GraphedNetwork
from ddip.nets.grouped import ChannelConcat, GeneratorBank, GroupedGenerators
from ddip.run import build, build_component, compose_train
from tests.conftest import ROOT, tiny_texture


def unet(out_channels: int) -> SkipUNet:
    return SkipUNet(2, out_channels, channels=(4, 8, 8), skip_channels=(2, 0, 2))


def segnet(out_channels: int) -> SegNet:
    return SegNet(2, out_channels, width=4, convs_per_stage=(2, 2, 3))


@pytest.mark.parametrize("make", [unet, segnet])
def test_stacked_generators_give_their_members_outputs_and_gradients(make):
    torch.manual_seed(0)
    members = [make(3), make(3), make(1)]
    stacked = GroupedGenerators(members)
    inputs = [torch.rand(1, 2, 32, 32) for _ in members]
    expected = [member(x) for member, x in zip(members, inputs)]
    outputs = stacked(inputs)
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    sum(((i + 1) * o).square().mean() for i, o in enumerate(expected)).backward()
    sum(((i + 1) * o).square().mean() for i, o in enumerate(outputs)).backward()
    first_conv = next(m for m in stacked.network.modules() if isinstance(m, torch.nn.Conv2d))
    member_convs = [next(m for m in member.modules() if isinstance(m, torch.nn.Conv2d)) for member in members]
    width = member_convs[0].out_channels
    for g, conv in enumerate(member_convs):
        torch.testing.assert_close(first_conv.weight.grad[g * width : (g + 1) * width], conv.weight.grad, rtol=1e-4, atol=1e-6)


def test_padded_output_filters_get_no_gradient_and_stay_zero():
    torch.manual_seed(0)
    stacked = GroupedGenerators([unet(3), unet(1)])
    head = [m for m in stacked.network.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    optimizer = torch.optim.Adam(stacked.parameters(), lr=0.1, fused=True)
    for _ in range(3):
        optimizer.zero_grad()
        sum(o.mean() for o in stacked([torch.rand(1, 2, 32, 32) for _ in range(2)])).backward()
        optimizer.step()
    padding = slice(4, 6)  # the second member's filters 1 and 2 of its 3-wide block
    assert torch.count_nonzero(head.weight[padding]) == 0 and torch.count_nonzero(head.bias[padding]) == 0
    assert torch.count_nonzero(head.weight[3]) > 0


def test_channel_concat_keeps_each_members_channels_together():
    a = torch.arange(4.0).reshape(1, 4, 1, 1)  # two members × two channels: a0 a0 | a1 a1
    b = torch.arange(10.0, 16.0).reshape(1, 6, 1, 1)  # two members × three channels
    assert ChannelConcat(2)([a, b]).flatten().tolist() == [0, 1, 10, 11, 12, 2, 3, 13, 14, 15]
    assert torch.equal(ChannelConcat()([a, b]), torch.cat([a, b], dim=1))


def test_bank_stacks_only_generators_that_share_an_architecture():
    torch.manual_seed(0)
    other = SkipUNet(2, 3, channels=(4, 8, 16), skip_channels=(2, 0, 2))
    bank = GeneratorBank({"a": unet(3), "b": other, "c": unet(1)})
    assert bank.members == [["a", "c"], ["b"]]
    outputs = bank({name: torch.rand(1, 2, 32, 32) for name in "abc"})
    assert list(outputs) == ["a", "b", "c"] and outputs["c"].shape[1] == 1
    assert GeneratorBank({"a": unet(3), "c": unet(1)}, stack=False).members == [["a"], ["c"]]


class Undeclared(torch.nn.Module):
    """A backbone that does not declare ``stackable``: it may mix channels in ways stacking cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flip(1)


def test_backbones_that_do_not_declare_stacking_or_use_unknown_layers_run_unstacked():
    assert GeneratorBank({"a": Undeclared(), "b": Undeclared()}).members == [["a"], ["b"]]
    with_unknown_layer = [unet(3), unet(3)]
    for net in with_unknown_layer:
        net.head.append(torch.nn.PixelShuffle(1))
    assert GeneratorBank(dict(zip("ab", with_unknown_layer))).members == [["a"], ["b"]]


def fit_losses(speed: str, overrides: list[str], dtype: torch.dtype, steps: int = 6, device: str = "cpu"):
    """Training losses of the first ``steps`` steps of one path, from the same seed, with networks and noise
    inputs in ``dtype`` on ``device``; and the module."""
    cfg = compose_train([f"speed={speed}", "logger=none", *overrides])
    torch.manual_seed(cfg.seed)
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task).to(device, dtype)
    values = []
    for batch in itertools.islice(data.train_dataloader(), steps):
        loss = module.step_loss(batch["step"], batch["transform"])
        module.optimizer.zero_grad()
        loss.backward()
        module.optimizer.step()
        values.append(loss.item())
    return values, module


def losses(speed: str, overrides: list[str], dtype: torch.dtype, steps: int = 6) -> list[float]:
    return fit_losses(speed, overrides, dtype, steps)[0]


SMALL_DENOISER = ["task=denoise", "backbone.channels=[8,16,16]", "backbone.skip_channels=[4,4,4]"]


@pytest.mark.parametrize(
    "task, fast_extra",
    [
        (["task=seg", "backbone=segnet"], []),
        (["task=seg"], []),
        (["task=dehaze", "task.airlight=net", "backbone.channels=[8,8,16]", "backbone.skip_channels=[0,4,4]"], []),
        (SMALL_DENOISER, []),
        (SMALL_DENOISER, ["module.stack_generators=true"]),  # the ensemble's two fits as one grouped network
        (["task=separate", "backbone.channels=[8,8,16]", "backbone.skip_channels=[0,4,4]"], []),
    ],
    ids=["seg-segnet", "seg-unet", "dehaze-airlight-net", "denoise-ensemble", "denoise-ensemble-stacked", "separate"],
)
def test_fast_path_losses_equal_the_plain_path(tmp_path, task, fast_extra):
    """In float32 the first step's loss agrees to rounding; over later steps the fit itself amplifies rounding
    differences (BatchNorm on 4×4 maps, Adam's normalised first steps) by ~10× per step, so the trajectories
    are compared in float64, where the two paths must agree to 1e-9 after six Adam steps."""
    overrides = [*task, "steps=40", f"data.image={tiny_texture(tmp_path)}", f"paths.output_dir={tmp_path}"]
    fast_overrides = [*overrides, *fast_extra]
    plain, fast = losses("plain", overrides, torch.float32, steps=1), losses("fast", fast_overrides, torch.float32, steps=1)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-7)
    plain, fast = losses("plain", overrides, torch.float64), losses("fast", fast_overrides, torch.float64)
    assert abs(plain[0] - plain[-1]) > 1e-3  # the fit moves
    torch.testing.assert_close(fast, plain, rtol=1e-9, atol=1e-12)


def test_graphed_network_records_once_per_shape_and_again_when_the_weights_move(monkeypatch):
    """The bookkeeping of :class:`GraphedNetwork` on a CPU, with the recorder stood in by the module itself (the
    replay is checked on a GPU below): one recording per input shape, a new set when the weights are moved, and
    nothing added to the network's state dict."""
    recorded = []

    def record(module, samples, **kwargs):
        recorded.append(tuple(x.shape for x in samples))
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", record)
    monkeypatch.setattr(GraphedNetwork, "graphable", lambda self, inputs: True)
    network = unet(3)
    keys = set(network.state_dict())
    graphed = GraphedNetwork(network, lambda net, x: (net(x),))
    wide, tall = torch.rand(1, 2, 32, 64), torch.rand(1, 2, 64, 32)
    for x in (wide, tall, wide, tall):
        (out,) = graphed(x)
        torch.testing.assert_close(out, network(x))
    assert recorded == [(wide.shape,), (tall.shape,)]
    network.double()
    graphed(wide.double())
    assert recorded[-1] == (wide.shape,) and len(graphed.graphs) == 1
    assert set(network.state_dict()) == keys


def test_a_network_that_cannot_be_recorded_runs_eagerly_with_a_warning(monkeypatch):
    def fail(module, samples, **kwargs):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fail)
    monkeypatch.setattr(GraphedNetwork, "graphable", lambda self, inputs: self.enabled)
    network = unet(3)
    graphed = GraphedNetwork(network, lambda net, x: (net(x),))
    x = torch.rand(1, 2, 32, 32)
    with pytest.warns(UserWarning, match=r"could not record SkipUNet \(operation not permitted when stream is capturing\)"):
        (out,) = graphed(x)
    torch.testing.assert_close(out, network(x))
    graphed(x)  # no second attempt, no second warning
    assert not graphed.enabled and not graphed.graphs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
@pytest.mark.parametrize(
    "task, shapes",
    [
        (["task=seg", "backbone=segnet"], 2),
        (["task=seg"], 2),
        (["task=dehaze"], 1),  # padded to a square
        ([*SMALL_DENOISER, "module.stack_generators=true"], 2),
        (["task=separate"], 1),  # padded to a square
    ],
    ids=["seg-segnet", "seg-unet", "dehaze", "denoise-ensemble-stacked", "separate"],
)
def test_cuda_graphs_give_the_eager_losses(tmp_path, task, shapes):
    """On a GPU the fast path replays its networks from CUDA graphs: the same kernels, so the same losses as
    running them eagerly, step by step (to the rounding of cuDNN's atomic gradient sums), on a non-square image
    under the dihedral augmentation (a graph per input shape: the image and its transpose)."""
    image = tmp_path / "wide.png"
    Image.open(tiny_texture(tmp_path, size=64)).crop((0, 0, 64, 32)).save(image)
    overrides = [*task, "steps=40", "trainer=gpu", "data.augment=true", f"data.image={image}", f"paths.output_dir={tmp_path}"]
    eager, _ = fit_losses("fast", [*overrides, "module.cuda_graphs=false"], torch.float64, steps=8, device="cuda")
    graphed, module = fit_losses("fast", overrides, torch.float64, steps=8, device="cuda")
    assert abs(eager[0] - eager[-1]) > 1e-3
    torch.testing.assert_close(graphed, eager, rtol=1e-7, atol=1e-10)
    assert [len(runner.graphs) for runner in module.generators.runners] == [shapes] * len(module.generators.runners)
    with torch.no_grad():
        torch.testing.assert_close(module(0, 0.0), module(0, 0.0))  # replay outputs are copies, not the graph's memory


@pytest.mark.parametrize("trainer, speed, groups", [("cpu", "fast", 2), ("gpu", "fast", 1), ("gpu", "plain", 2)])
def test_denoise_stacks_its_two_fits_only_on_a_gpu(tmp_path, trainer, speed, groups):
    """``module.stack_generators=gpu`` (the denoise default): one grouped network on a GPU, where it is faster,
    two separate ones on a CPU, where grouped 128-channel convolutions are slower (docs/results/speed.md); the plain
    reference path never stacks, whatever the task asks."""
    image = tiny_texture(tmp_path)
    overrides = [*SMALL_DENOISER, f"trainer={trainer}", f"speed={speed}", "logger=none", f"data.image={image}"]
    cfg = compose_train([*overrides, f"paths.output_dir={tmp_path}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    assert len(build(cfg, data, task).generators.networks) == groups


@pytest.mark.parametrize("key", ["cuda_graphs", "channels_last"])
def test_non_boolean_speed_switches_are_one_line_errors(tmp_path, key):
    cfg = compose_train(["task=seg", f"module.{key}=maybe", f"data.image={tiny_texture(tmp_path)}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    with pytest.raises(DdipError, match=f"module.{key}='maybe' must be true or false"):
        build(cfg, data, task)


def test_unknown_stacking_value_is_a_one_line_error(tmp_path):
    cfg = compose_train([*SMALL_DENOISER, "module.stack_generators=sometimes", f"data.image={tiny_texture(tmp_path)}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    with pytest.raises(DdipError, match="module.stack_generators='sometimes' is not one of true, false, gpu"):
        build(cfg, data, task)


def test_benchmark_times_every_path_on_the_same_work(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/benchmark.py", "--tasks", "seg", "--sizes", "32", "--steps", "2", "--warmup", "1", "--repeats", "2", "--profile", "32", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    records = json.loads(out.read_text())
    assert records[0]["task"] == "conv_peak" and records[0]["gflops"] > 0
    paths = {r["path"]: r for r in records[1:]}
    assert set(paths) == {"plain", "fast", "lightning", "fast profile"}
    profile = paths.pop("fast profile")["ms_per_step"]
    assert profile["convolution"] > 0 and profile["step (wall, profiled)"] > profile["convolution"]
    assert all(r["s_per_step"] > 0 for r in paths.values())
    assert len({r["gflop_per_step"] for r in paths.values()}) == 1 and paths["plain"]["gflop_per_step"] > 0
    assert "| seg | 32 |" in out.with_suffix(".md").read_text() and "Where a fast step's time goes" in out.with_suffix(".md").read_text()


@pytest.mark.slow  # the benchmark script's options, a minute each on 2 cores; its smoke test stays in the default run
def test_benchmark_override_reaches_every_path(tmp_path):
    """``--override`` reaches the configs the paths are built from: doubling the seg nets' widths roughly
    quadruples the FLOPs of a step (counted on the plain path, reported for all)."""
    flops = []
    for extra in ([], ["--override", "task.net_defaults.unet.channels=[16,32,64]"]):
        out = tmp_path / f"bench{len(extra)}.json"
        command = [sys.executable, "scripts/benchmark.py", "--tasks", "seg", "--sizes", "32", "--steps", "1", "--warmup", "1", "--repeats", "1", "--out", str(out), *extra]
        subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        flops.append({r["path"]: r["gflop_per_step"] for r in json.loads(out.read_text())[1:]})
    assert set(flops[1]) == {"plain", "fast", "lightning"}
    assert 2.5 < flops[1]["plain"] / flops[0]["plain"] < 4.5


@pytest.mark.slow  # the benchmark script's options, a minute each on 2 cores; its smoke test stays in the default run
def test_benchmark_repeats_the_run_at_each_thread_count(tmp_path):
    """``--threads 1 2``: every path is timed at both counts in one run, each count with its own convolution peak
    and table; a count below 1 is a one-line usage error before any timing."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/benchmark.py", "--tasks", "seg", "--sizes", "32", "--steps", "1", "--warmup", "1", "--repeats", "1", "--out", str(out)]
    subprocess.run([*command, "--threads", "1", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    records = json.loads(out.read_text())
    for threads in (1, 2):
        mine = [r for r in records if r["threads"] == threads]
        assert [r["path"] for r in mine] == ["conv", "plain", "fast", "lightning"] and mine[0]["gflops"] > 0
    table = out.with_suffix(".md").read_text()
    assert table.index("**1 thread**") < table.index("**2 threads**") and table.count("| seg | 32 |") == 2
    refused = subprocess.run([*command, "--threads", "0"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].endswith("thread counts must be 1 or more")


def test_benchmark_sweeps_every_split_and_rates_them_by_their_times(tmp_path, monkeypatch):
    """``--sweep K``: a joblib sweep of the K seeds at every jobs × threads split of the cores, the seeds as batched
    members in 1 … cores batches; fits per hour from each command's seconds, and the best members over the best joblib
    split (the commands' times stood in for: the whole script is the slow test below)."""
    from scripts import benchmark

    monkeypatch.setattr(benchmark, "cpu_cores", lambda: 2)
    args = argparse.Namespace(sweep=3, sweep_task="seg", sweep_steps=2, sizes=[32], accelerator="cpu", override=[])
    commands = benchmark.sweep_commands(tmp_path / "bench_32.png", args)
    assert list(commands) == ["joblib 1×2", "joblib 2×1", "members 1×2", "members 2×1"]
    assert commands["joblib 2×1"][1][2] == "-m" and commands["joblib 2×1"][1][-1] == "seed=0,1,2"
    assert "-m" not in commands["members 1×2"][1] and "members.seed=[0,1,2]" in commands["members 1×2"][1]
    assert commands["members 2×1"][1][-1] == "members.seed=[0,1],[2]" and "hydra.launcher.n_jobs=2" in commands["members 2×1"][1]
    seconds = {"joblib 1×2": 40.0, "joblib 2×1": 30.0, "members 1×2": 20.0, "members 2×1": 24.0}
    times = iter(seconds.values())  # the sweeps run in the order of their commands
    monkeypatch.setattr(benchmark, "timed", lambda command: next(times))
    *sweeps, ratio = benchmark.time_sweeps(args)
    assert {r["path"]: r["fits_per_hour"] for r in sweeps} == {name: 3600 * 3 / s for name, s in seconds.items()}
    assert ratio == {"task": "seg", "size": 32, "path": "members / joblib", "members": "members 1×2", "joblib": "joblib 2×1", "ratio": 1.5}
    assert "| members 1×2 | 20.0 | 540 |" in benchmark.sweep_table([*sweeps, ratio])


@pytest.mark.slow  # eight train.py processes (two whole runs, four sweeps) and the paths: two minutes on 2 cores
def test_benchmark_whole_runs_and_sweeps_report_consistent_records(tmp_path):
    """``--whole-run``: ``train.py`` with the defaults (W&B offline, and without a logger), its s/step the fit's own
    and its overheads over the lightning and the fast path of the same run; ``--sweep 2``: every sweep's fits per
    hour from its seconds, and the best members over the best joblib split."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/benchmark.py", "--tasks", "seg", "--sizes", "32", "--steps", "2", "--warmup", "1", "--repeats", "1", "--out", str(out)]
    command += ["--whole-run", "--whole-steps", "2", "--sweep", "2", "--sweep-steps", "2"]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    records = {r["path"]: r for r in json.loads(out.read_text())[1:]}
    for name in ("whole run", "whole run, no logger"):
        whole = records[name]
        assert whole["steps_run"] == 2 and whole["s_per_step"] == pytest.approx(whole["fit_seconds"] / 2)
        assert whole["process_seconds"] > whole["fit_seconds"] > 0 and whole["in_run_overhead_pct"] > 0
        for path in ("lightning", "fast"):
            assert whole[f"overhead_vs_{path}_pct"] == pytest.approx(100 * (whole["s_per_step"] / records[path]["s_per_step"] - 1))
    sweeps = [r for r in records.values() if "fits_per_hour" in r]
    assert {r["path"].split()[0] for r in sweeps} == {"joblib", "members"}
    assert all(r["fits_per_hour"] == pytest.approx(3600 * 2 / r["seconds"]) for r in sweeps)
    ratio = records["members / joblib"]
    assert ratio["ratio"] == pytest.approx(records[ratio["members"]]["fits_per_hour"] / records[ratio["joblib"]]["fits_per_hour"])
    assert ratio["members"] == max((r for r in sweeps if r["path"].startswith("members")), key=lambda r: r["fits_per_hour"])["path"]
    table = out.with_suffix(".md").read_text()
    assert "| seg | 32 | whole run, no logger | 2 |" in table and "Best members / best joblib" in table

"""Dehazing: the scattering model both ways, the dark channel prior, bad inputs, and a real tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from ddip.errors import DdipError
from ddip.haze import (
    close_transmission,
    dark_channel,
    dcp_transmission,
    dehaze_dcp,
    estimate_airlight,
    hazy_image,
    quadtree_airlight,
    raise_airlight_to_gamut,
    recover_clear,
)
from ddip.io import load_image
from ddip.metrics import psnr
from ddip.run import compose_train, run
from ddip.synthetic import synthetic_haze
from ddip.tasks.dehaze import Dehazing

AIRLIGHT = (0.8, 0.85, 0.9)


def hazy_case(size: int = 64, beta: float = 3.0, texture: str = "grass") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hazy, clear, transmission) of a real texture under a known haze ramp, 1×C×H×W."""
    clear = torch.from_numpy(np.array(Image.open(DATA / f"{texture}.png").convert("RGB").resize((size, size)))).permute(2, 0, 1) / 255
    hazy, transmission = synthetic_haze(clear, AIRLIGHT, beta=beta)
    return hazy[None], clear[None], transmission[None]


def test_the_model_forward_then_inverse_gives_back_the_clear_image():
    clear, airlight = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 1, 1) * 0.5 + 0.5
    transmission = torch.rand(2, 1, 16, 16) * 0.8 + 0.2
    hazy = hazy_image(clear, transmission, airlight)
    assert torch.allclose(hazy, transmission * clear + (1 - transmission) * airlight)
    assert torch.allclose(recover_clear(hazy, transmission, airlight, t_min=0.1), clear, atol=1e-5)


def test_task_composition_is_the_scattering_model():
    task = Dehazing(airlight="constant", airlight_value=[0.9, 0.8, 0.7])
    task.prepare(torch.rand(3, 8, 8))
    layers = {"clear_image": torch.rand(1, 3, 8, 8), "transmission": torch.rand(1, 1, 8, 8)}
    expected = hazy_image(layers["clear_image"], layers["transmission"], torch.tensor([0.9, 0.8, 0.7])[None, :, None, None])
    assert torch.allclose(task.compose(layers), expected)


def test_dark_channel_is_the_windowed_minimum_over_colours():
    image = torch.ones(1, 3, 20, 20)
    image[0, 1, 10, 10] = 0.2
    dark = dark_channel(image, patch=5)
    assert dark.shape == (1, 1, 20, 20)
    assert float(dark[0, 0, 10, 10]) == pytest.approx(0.2) and float(dark[0, 0, 12, 12]) == pytest.approx(0.2)
    assert float(dark[0, 0, 13, 13]) == pytest.approx(1.0)
    assert dark_channel(torch.rand(1, 3, 3, 5), patch=15).shape == (1, 1, 3, 5)


@pytest.mark.parametrize("estimator", [estimate_airlight, quadtree_airlight])
@pytest.mark.parametrize("texture", ["grass", "books", "stripes"])
def test_airlight_estimate_is_within_005_of_the_truth(texture, estimator):
    hazy, _, _ = hazy_case(texture=texture)
    estimate = estimator(hazy)[0]
    assert torch.allclose(estimate, torch.tensor(AIRLIGHT), atol=0.05), estimate


def test_quadtree_search_is_not_fooled_by_a_bright_object():
    """A white sign (clear colour (1, 1, 0.85)) in the lower half, where the haze is thin: its hazy colour is
    the brightest of the dark channel's top pixels, so He et al.'s rule reads the sign; the quad-tree search
    keeps the flat haze-opaque top and lands within 0.02 of the airlight."""
    _, clear, transmission = hazy_case(texture="grass")
    clear[:, :, 36:56, 20:44] = torch.tensor([1.0, 1.0, 0.85])[:, None, None]
    hazy = hazy_image(clear, transmission, torch.tensor(AIRLIGHT)[:, None, None]).clamp(0, 1)
    quadtree, brightest = (float((rule(hazy)[0] - torch.tensor(AIRLIGHT)).abs().mean()) for rule in (quadtree_airlight, estimate_airlight))
    assert quadtree < 0.02 and brightest > 2 * quadtree, (quadtree, brightest)


@pytest.mark.parametrize("shape", [(1, 1), (3, 500), (9, 13)])
def test_quadtree_search_handles_tiny_and_thin_images(shape):
    image = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    estimate = quadtree_airlight(image)
    assert estimate.shape == (2, 3) and bool(((estimate >= 1e-3) & (estimate <= 1)).all())
    assert bool((estimate[:, None, :] == image.flatten(2).transpose(1, 2)).all(dim=-1).any(dim=1).all())  # one of the pixels


def test_task_takes_its_airlight_from_the_chosen_estimator():
    hazy, _, _ = hazy_case(texture="books", beta=1.6)
    rules = (
        ("dark_channel", estimate_airlight),
        ("quadtree", quadtree_airlight),
    )
    for rule, estimate in rules:
        task = Dehazing(airlight="constant", airlight_estimate=rule)
        task.prepare(hazy[0])
        assert torch.allclose(task.airlight_estimate, estimate(hazy)[0])


@pytest.mark.parametrize("texture", ["stripes", "books"])
def test_gamut_raises_a_too_low_airlight_towards_the_truth(texture):
    """Light haze (t ≥ 0.2) over bright textures: He et al.'s pixel is a hazy scene point, darker than the
    airlight; raised until the recovered J stays ≤ 1, the estimate is at least twice as close, and no channel
    goes down."""
    hazy, _, _ = hazy_case(texture=texture, beta=1.6)
    task = Dehazing(
        airlight="constant", airlight_estimate="dark_channel", airlight_gamut=0.995, omega=1.0, transmission_prior_closing=31
    )
    task.prepare(hazy[0])
    truth = torch.tensor(AIRLIGHT)
    before, after = (float((colour - truth).abs().mean()) for colour in (task.airlight_before_gamut, task.airlight_estimate))
    assert after < before / 2, (before, after)
    assert bool((task.airlight_estimate >= task.airlight_before_gamut).all())


@pytest.mark.parametrize("value", [0.5, 1.0])
def test_gamut_leaves_an_airlight_alone_when_the_recovery_is_in_gamut_or_saturated(value):
    """A flat grey image recovers to black under a brighter airlight (in gamut), and a white one has no
    unsaturated pixel to judge by: both keep the estimate."""
    image, airlight = torch.full((1, 3, 16, 16), value), torch.tensor([[0.9, 0.8, 0.7]])
    task = Dehazing(airlight="constant", omega=1.0)
    raised = raise_airlight_to_gamut(image, airlight, task.refined_prior)
    assert torch.equal(raised, airlight)


def test_given_airlight_is_not_raised_to_the_gamut():
    hazy, _, _ = hazy_case(texture="stripes", beta=1.6)
    task = Dehazing(airlight="constant", airlight_value=[0.5, 0.6, 0.7], airlight_gamut=0.995)
    task.prepare(hazy[0])
    assert torch.allclose(task.airlight_estimate, torch.tensor([0.5, 0.6, 0.7])) and task.airlight_before_gamut is None


def test_dark_channel_prior_dehazing_beats_the_hazy_input():
    hazy, clear, transmission = hazy_case(beta=1.6)
    result = dehaze_dcp(hazy)
    assert psnr(result["clear"], clear) > psnr(hazy, clear) + 5
    assert float((result["transmission"] - transmission).abs().mean()) < 0.15


@pytest.mark.parametrize("image", [torch.full((1, 3, 32, 32), 0.5), torch.zeros(1, 3, 32, 32), torch.rand(1, 3, 32, 32) * 0.4])
def test_haze_free_or_uniform_images_give_finite_non_black_results(image):
    result = dehaze_dcp(image)
    assert all(torch.isfinite(value).all() for value in result.values())
    assert float(result["airlight"].min()) > 0
    assert float(result["clear"].mean()) == pytest.approx(float(image.mean()), abs=0.25)
    assert float(dcp_transmission(image, result["airlight"]).min()) >= 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"airlight": "sky"}, "task.airlight='sky'"),
        ({"output": "best"}, "task.output='best'"),
        ({"airlight_estimate": "sky"}, "task.airlight_estimate='sky'"),
        ({"omega": 0}, "task.omega=0"),
        ({"omega": 1.5}, "task.omega=1.5"),
        ({"omega": "abc"}, "task.omega='abc' must be a number in"),
        ({"transmission_prior_expectile": "abc"}, "task.transmission_prior_expectile='abc' must be a number in"),
        ({"transmission_prior_closing": True}, "task.transmission_prior_closing=True"),
        ({"transmission_prior_expectile": 1.0}, "task.transmission_prior_expectile=1.0 must be a number in"),
        ({"transmission_prior_closing": -3}, "task.transmission_prior_closing=-3"),
        ({"transmission_prior_closing": 7.5}, "task.transmission_prior_closing=7.5"),
        ({"airlight_value": [0.9, 0.9]}, "three numbers"),
        ({"airlight_gamut": 0}, "task.airlight_gamut=0 must be a number in (0, 1]"),
        ({"airlight_gamut": "high"}, "task.airlight_gamut='high' must be a number in (0, 1]"),
        ({"airlight_value": [0.9, 1.5, 0.9]}, "three numbers"),
    ],
)
def test_bad_task_values_are_one_line_errors(kwargs, message):
    with pytest.raises(DdipError, match=message.replace("(", r"\(")):
        Dehazing(**kwargs)


def test_given_airlight_overrides_the_estimate():
    task = Dehazing(airlight="constant", airlight_value=[0.5, 0.6, 0.7])
    task.prepare(torch.rand(3, 16, 16))
    assert torch.allclose(task.airlight_estimate, torch.tensor([0.5, 0.6, 0.7]))


def test_transmission_prior_is_the_coarse_dark_channel_transmission_unless_refined():
    hazy, _, _ = hazy_case(beta=1.6)
    airlight = torch.tensor([[0.8, 0.85, 0.9]])
    coarse = dcp_transmission(hazy, airlight)
    for refined in (False, True):
        task = Dehazing(airlight="constant", airlight_value=[0.8, 0.85, 0.9], transmission_prior_fraction=1.0, transmission_prior_refined=refined)
        prior = task.prepare(hazy[0])["transmission_prior"]
        assert torch.allclose(prior, coarse[0, 0]) != refined


def test_omega_sets_how_much_haze_the_transmission_prior_removes():
    hazy, _, _ = hazy_case(beta=1.6)
    priors = {}
    for omega in (0.95, 1.0):
        task = Dehazing(airlight="constant", transmission_prior_fraction=1.0, omega=omega)
        priors[omega] = task.prepare(hazy[0])["transmission_prior"]
    assert float(priors[1.0].mean()) < float(priors[0.95].mean()) - 0.01


def test_closing_fills_narrow_dips_and_keeps_a_ramp():
    ramp = torch.linspace(0.2, 0.8, 32)[:, None].expand(32, 32)[None, None].clone()
    assert torch.allclose(close_transmission(ramp, 7), ramp)
    dipped = ramp.clone()
    dipped[..., 10:13, 10:13] = 0.05  # a bright object: the dark channel's t falls short there
    assert torch.allclose(close_transmission(dipped, 7), ramp)
    assert torch.equal(close_transmission(dipped, 0), dipped)


def test_closing_lifts_the_prior_towards_the_true_transmission_on_bright_objects():
    clear = torch.full((3, 32, 32), 0.02)
    clear[:, 12:16, 12:16] = 0.9  # a bright patch violates the dark channel prior
    hazy, truth = synthetic_haze(clear, (0.9, 0.9, 0.92), beta=1.6)
    priors = {
        window: Dehazing(airlight_value=[0.9, 0.9, 0.92], transmission_prior_fraction=1.0, omega=1.0, transmission_prior_closing=window, airlight_patch=3)
        .prepare(hazy)["transmission_prior"]
        for window in (0, 9)
    }
    errors = {window: (prior - truth[0]).abs() for window, prior in priors.items()}
    assert float(errors[9][12:16, 12:16].mean()) < 0.2 * float(errors[0][12:16, 12:16].mean())
    assert torch.allclose(errors[9][:8], errors[0][:8])  # away from the object the prior is unchanged


def test_exclusion_term_penalises_transmission_edges_on_the_scene_edges():
    airlight = [0.8, 0.85, 0.9]
    clear = torch.full((1, 3, 32, 32), 0.1)
    clear[..., 16:] = 0.8  # an object edge along x
    ramp = torch.linspace(0.3, 0.7, 32)[:, None].expand(32, 32)[None, None].clone()  # haze thins along y
    edged = ramp.clone()
    edged[..., 16:] -= 0.2  # the transmission dips on the object, as the dark channel's bound does
    terms = {}
    for name, transmission in (("ramp", ramp), ("edged", edged)):
        task = Dehazing(airlight="constant", airlight_value=airlight, weights={"exclusion": 0.1})
        task.prepare(clear[0])
        layers = {"clear_image": clear, "transmission": transmission}
        terms[name] = task.loss_terms(layers, task.compose(layers), {}, 0, 10)
    assert float(terms["edged"]["exclusion"]) > 10 * float(terms["ramp"]["exclusion"])
    task = Dehazing(airlight="constant", airlight_value=airlight, weights={"exclusion": 0.0})
    task.prepare(clear[0])
    assert "exclusion" not in task.loss_terms({"clear_image": clear, "transmission": ramp}, clear, {}, 0, 10)


def test_tiny_dehaze_run_beats_the_hazy_input_and_ends_once_its_transmission_settles(tmp_path):
    """The recipe's rule (``Settled`` on ``t``, its own tolerance) ends the fit before its cap, here with a shorter
    patience so that it can within a few hundred steps."""
    hazy, clear, _ = hazy_case(beta=1.6)
    image_path, clean_path = tmp_path / "hazy.png", tmp_path / "clean.png"
    for path, tensor in ((image_path, hazy), (clean_path, clear)):
        Image.fromarray((tensor[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    overrides = ["task=dehaze", "steps=400", "stopping.patience=100", "logger=none", "trainer.enable_progress_bar=false"]
    cfg = compose_train(overrides + [f"data.image={image_path}", f"data.truth={{clean:{clean_path}}}", "callbacks.evaluation.every=25"])
    assert cfg.stopping._target_ == "ddip.stopping.Settled" and cfg.stopping.tolerance == 0.01
    metrics = run(cfg, tmp_path / "run")
    assert metrics["steps_run"] < 400 and metrics["chosen_step"] <= metrics["steps_run"], metrics
    assert metrics["psnr_chosen"] > metrics["psnr_input"] + 3, metrics
    for name in ("dehazed", "transmission", "airlight", "reconstruction"):
        assert Image.open(tmp_path / "run" / f"{name}.png").size == (64, 64)
    dehazed = load_image(tmp_path / "run" / "dehazed.png")
    assert 0.05 < float(dehazed.mean()) < 0.95


@pytest.mark.parametrize("value", [128, 0])
def test_uniform_image_run_gives_a_finite_non_black_result(tmp_path, value):
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((40, 48, 3), value, np.uint8)).save(path)
    metrics = run(compose_train(["task=dehaze", "steps=3", "logger=none", f"data.image={path}"]), tmp_path / "run")
    dehazed = load_image(tmp_path / "run" / "dehazed.png")
    assert np.isfinite(metrics["transmission_mean"])
    assert float(dehazed.mean()) == pytest.approx(value / 255, abs=0.05)


@pytest.mark.slow  # ~20 s: an evaluate.py process with a dehazing fit (test_benchmark covers the script); run with -m slow
def test_evaluate_script_reports_ddip_beside_dcp_and_the_oracles(tmp_path):
    """``make_haze_cases.py`` then ``evaluate.py`` on one tiny synthetic case: ddip, DCP and the oracle rows; with
    the true transmission the recovery is far better than the hazy input; ``haze_table.py`` tabulates it and
    ``dcp_variants.py`` finds the same two DCP scores. A broken case file ends the script with one line and exit
    code 2."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    cases = tmp_path / "cases"
    make = [sys.executable, "scripts/make_haze_cases.py", str(DATA / "grass.png"), "--out", str(cases), "--size", "64"]
    subprocess.run(make, cwd=ROOT, check=True, capture_output=True)
    evaluate = [sys.executable, "scripts/evaluate.py", "--cases", str(cases), "--steps", "2", "--out", str(tmp_path / "eval")]
    subprocess.run(evaluate, cwd=ROOT, check=True, capture_output=True, timeout=300)
    psnrs = {row["method"]: row["psnr"] for row in json.loads((tmp_path / "eval" / "evaluate.json").read_text())}
    assert {"DCP (He et al.)", "DCP, mean airlight", "DCP with ddip's airlight and prior", "DCP, true airlight (oracle)"} <= set(psnrs)
    assert any(method.startswith("ddip") for method in psnrs)
    assert psnrs["true t, ddip's airlight (oracle)"] > psnrs["hazy input"] + 3
    table = [sys.executable, "research/haze_table.py", "--set", "one case", str(tmp_path / "eval"), "--cases", str(cases)]
    text = subprocess.run(table, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ddip = next(psnr for method, psnr in psnrs.items() if method.endswith("(default)"))
    gain = f"{ddip - psnrs['DCP (He et al.)']:+.2f}".replace("-", "−")
    assert "| haze_grass (" in text and f"| {ddip:.2f} | {gain} |" in text
    assert f"one case: ddip − DCP mean {gain} dB" in text and "of 1;" in text and "against DCP with the mean airlight" in text
    variants = [sys.executable, "research/dcp_variants.py", "--set", "one", str(cases), "--radii", "0.15"]
    text = subprocess.run(variants, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    assert f"| **mean of the one** | {psnrs['DCP (He et al.)']:.2f} | {psnrs['DCP, mean airlight']:.2f} |" in text
    (cases / "haze_grass" / "gt_transmission.png").write_text("not a png")
    broken = subprocess.run(evaluate, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines()[-1].startswith("evaluate: error: haze_grass: not a readable image:")


def test_make_haze_cases_can_give_every_case_one_recipe(tmp_path):
    """``--beta B --airlight R G B`` hazes every image with that one setting (the recipe of ``haze_building``);
    one without the other is a usage error."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    make = [sys.executable, "scripts/make_haze_cases.py", str(DATA / "grass.png"), str(DATA / "stripes.png"), "--out", str(tmp_path), "--size", "32"]
    subprocess.run([*make, "--beta", "1.6", "--airlight", "0.9", "0.9", "0.92"], cwd=ROOT, check=True, capture_output=True)
    cases = json.loads((tmp_path / "cases.json").read_text())
    assert len(cases) == 2 and all(case["beta"] == 1.6 and case["airlight"] == [0.9, 0.9, 0.92] for case in cases.values())
    folder = tmp_path / next(iter(cases))
    hazy, transmission = synthetic_haze(load_image(folder / "clean.png"), (0.9, 0.9, 0.92), beta=1.6)
    assert torch.allclose(load_image(folder / "image.png"), hazy, atol=1 / 255)
    assert torch.allclose(load_image(folder / "gt_transmission.png")[:1], transmission, atol=1 / 255)
    assert float(transmission[0, 0].mean()) == pytest.approx(np.exp(-1.6))
    alone = subprocess.run([*make, "--beta", "1.6"], cwd=ROOT, check=False, capture_output=True, text=True)
    assert alone.returncode == 2 and "--beta and --airlight go together" in alone.stderr


@pytest.mark.slow  # ~60 s idle: two evaluate.py processes; run with -m slow
def test_evaluate_script_in_parallel_gives_the_serial_records(tmp_path):
    """``evaluate.py --jobs 2`` runs two cases in processes of their own and writes the records ``--jobs 1`` writes
    with the same threads, in the same order; a broken case still ends it with one line and exit code 2."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    cases = tmp_path / "cases"
    images = [str(DATA / "grass.png"), str(DATA / "books.png")]
    subprocess.run([sys.executable, "scripts/make_haze_cases.py", *images, "--out", str(cases), "--size", "32"], cwd=ROOT, check=True, capture_output=True)

    def evaluate(jobs: int) -> subprocess.CompletedProcess:
        command = [sys.executable, "scripts/evaluate.py", "--cases", str(cases), "--steps", "2", "--jobs", str(jobs)]
        command += ["--out", str(tmp_path / f"jobs{jobs}"), "--override", "threads=1", "logger=none"]
        return subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)

    def records(jobs: int) -> list[tuple]:
        rows = json.loads((tmp_path / f"jobs{jobs}" / "evaluate.json").read_text())
        return [(row["case"], row["method"], row["psnr"], row.get("ssim")) for row in rows]

    assert evaluate(1).returncode == 0 and evaluate(2).returncode == 0
    assert records(2) == records(1) and {case for case, *_ in records(2)} == {"haze_grass", "haze_books"}
    (cases / "haze_books" / "clean.png").write_text("not a png")
    broken = evaluate(2)
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines()[-1].startswith("evaluate: error: haze_books: data.truth.clean: not a readable image:")

"""The task contract, checked on every task (as DeepInverse checks every operator): the physics composes the
generators' outputs into an image of the input's shape, the loss terms (at the first step whose output may be chosen:
past a warm-up stage, such as the watermark's clean-layer stage) are finite and reach every generator's weights, a short run writes its result images at the input's (odd) size (times the task's ``scale``: super-
resolution) with values in [0, 1], and with ground
truth it reports the task's primary metric for the chosen and the final iterate, the oracle, and ``primary_metric``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import DECOMPOSITION_TASKS, two_texture_composite
from hydra.utils import get_class
from PIL import Image

import ddip.run
from ddip.data import TRUTH_KINDS
from ddip.run import build, build_component, compose_train, run

HEIGHT, WIDTH = 37, 45  # odd: padded for the backbone, cropped back
SR_FACTOR = 4  # task=sr's default factor: its ground truth is this many times the image


def case(tmp_path) -> dict[str, str]:
    """A two-texture image of HEIGHT × WIDTH and every kind of ground truth, as data overrides by name (``known``:
    the known pixels of ``task=inpaint``; ``hint``: where ``task=watermark`` is told the watermark is)."""
    image, mask = two_texture_composite(64)
    image, mask = image[:HEIGHT, :WIDTH], mask[:HEIGHT, :WIDTH]
    large = image.repeat(SR_FACTOR, axis=0).repeat(SR_FACTOR, axis=1)
    files = {"image": image, "mask": (mask * 255).astype(np.uint8), "flat": np.full_like(image, 128), "large": large}
    files["image2"] = image[::-1, ::-1]
    files["masks/0"], files["masks/1"] = files["mask"], files["mask"][::-1, ::-1]  # the two frames' masks
    (tmp_path / "masks").mkdir()
    for name, array in files.items():
        Image.fromarray(np.ascontiguousarray(array)).save(tmp_path / f"{name}.png")
    return {
        "image": f"data.image={tmp_path / 'image.png'}",
        "images": f"data.images=[{tmp_path / 'image.png'},{tmp_path / 'image2.png'}]",
        "seg": f"data.truth={{mask:{tmp_path / 'mask.png'}}}",
        "dehaze": f"data.truth={{clean:{tmp_path / 'image.png'}}}",
        "denoise": f"data.truth={{clean:{tmp_path / 'image.png'}}}",
        "separate": f"data.truth={{layer1:{tmp_path / 'image.png'},layer2:{tmp_path / 'flat.png'}}}",
        "separate_pair": f"data.truth={{layer1:{tmp_path / 'image.png'},layer2:{tmp_path / 'flat.png'}}}",
        "inpaint": f"data.truth={{clean:{tmp_path / 'image.png'}}}",
        "sr": f"data.truth={{clean:{tmp_path / 'large.png'}}}",
        "watermark": f"data.truth={{clean:{tmp_path / 'image.png'}}}",
        "watermark_many": f"data.truth={{clean:[{tmp_path / 'image.png'},{tmp_path / 'image2.png'}]}}",  # one per image
        "video": f"data.truth={{mask:{tmp_path / 'masks'}}}",
        "known": f"data.mask={tmp_path / 'mask.png'}",
        "hint": f"data.hint={tmp_path / 'mask.png'}",
    }


def small(task: str, given: dict[str, str]) -> list[str]:
    """The task's input (two images for a task that takes two), a narrow net for the 128-channel DIP tasks, and the
    data maps a task needs."""
    several = get_class(compose_train([f"task={task}"]).task._target_).image_count[0] > 1
    images = [given["images"] if several else given["image"]]
    narrow = ["backbone.channels=[8,8,8,8,8]", "backbone.skip_channels=[4,4,4,4,4]"] if task in ("denoise", "inpaint", "sr") else []
    return images + narrow + ([given["known"]] if task == "inpaint" else []) + ([given["hint"]] if task == "watermark" else [])


@pytest.mark.parametrize("task", DECOMPOSITION_TASKS)
def test_physics_and_losses(tmp_path, task):
    given = case(tmp_path)
    cfg = compose_train([f"task={task}", "steps=4", "logger=none", *small(task, given)])
    data, task_object = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task_object)
    layers = module(0, 0.0)
    image = module.image
    assert task_object.compose(layers).shape == image.shape
    loss = module.step_loss(module.selectable_from - 1)  # the first step whose output may be chosen: past warm-ups
    assert torch.isfinite(loss) and all(torch.isfinite(term) for term in module.last_terms.values())
    loss.backward()
    for name, network in module.generators.named_children():
        gradients = [p.grad for p in network.parameters() if p.grad is not None]
        assert gradients and all(torch.isfinite(g).all() for g in gradients), name
        assert any(g.abs().sum() > 0 for g in gradients), name


@pytest.mark.parametrize("task", DECOMPOSITION_TASKS)
def test_a_short_run_keeps_the_output_contract(tmp_path, monkeypatch, task):
    given = case(tmp_path)
    saved: dict[str, torch.Tensor] = {}
    original = ddip.run.save_result
    monkeypatch.setattr(ddip.run, "save_result", lambda folder, stem, tensor: (saved.__setitem__(stem, tensor), original(folder, stem, tensor)))
    overrides = [f"task={task}", "steps=3", "logger=none", "callbacks.evaluation.every=1", given[task], *small(task, given)]
    metrics = run(compose_train(overrides), tmp_path / "run")
    task_object = build_component(compose_train([f"task={task}"]), "task")
    height, width = HEIGHT * task_object.scale, WIDTH * task_object.scale  # super-resolution: factor × the input
    assert saved
    for name, tensor in saved.items():
        assert tuple(tensor.shape[-2:]) == (height, width), name
        assert bool(torch.isfinite(tensor).all()) and 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0, name
        written = tmp_path / "run" / f"{name}.{'gif' if tensor.dim() == 4 else 'png'}"  # a clip's preview: a GIF
        assert Image.open(written).size == (width, height), name
    primary = task_object.primary_metric
    assert metrics["primary_metric"] == f"{primary}_chosen"
    for key in (f"{primary}_chosen", f"{primary}_final"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert any(key.startswith("oracle_") for key in metrics)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["steps_run"] == 3 and metrics["chosen_step"] <= 3


@pytest.mark.parametrize("task", DECOMPOSITION_TASKS)
def test_a_task_declares_the_ground_truth_it_accepts_and_the_case_gives_all_of_it(tmp_path, task):
    """Every name of ``truth_kinds`` is read as one of the kinds the data module knows, and the case above gives
    each of them (so the short run scores the task against all the ground truth it accepts)."""
    kinds = get_class(compose_train([f"task={task}"]).task._target_).truth_kinds
    assert kinds and set(kinds.values()) <= set(TRUTH_KINDS), kinds
    given = compose_train([case(tmp_path)[task]]).data.truth
    assert set(given) == set(kinds)

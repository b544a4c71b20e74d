"""Batched members (``members.seed``, ``members.lr``): each member of one fit ends as the run alone with its settings."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_texture
from omegaconf import OmegaConf

from ddip.errors import DdipError
from ddip.members import run_members
from ddip.run import compose_train, run

COMPARED = ("final_loss", "final_reconstruction", "chosen_step", "chosen_score", "steps_run")


def check_members_match_alone(tmp_path, overrides: list[str], settings: list[dict[str, object]]) -> list[dict]:
    """Run the members of ``settings`` (config key → value each) as one batch and each alone; compare their metrics.

    A member's own learning rate scales its slice of the optimiser's update, which rounds differently from an
    optimiser built with that rate (an ulp per step), hence fp32 tolerance rather than equality."""
    given = {key: [member[key] for member in settings] for key in settings[0]}
    members = {"seed": "members.seed", "optimizer.lr": "members.lr"}
    batch = [f"{members[key]}=[{','.join(map(str, values))}]" for key, values in given.items()]
    batched = run_members(compose_train(overrides + batch), tmp_path / "batch")
    for k, member in enumerate(settings):
        alone = run(compose_train(overrides + [f"{key}={value}" for key, value in member.items()]), tmp_path / f"alone_{k}")
        for key in COMPARED:
            assert batched[k][key] == pytest.approx(alone[key], rel=1e-4, abs=1e-7), (k, key)
    return batched


def test_members_are_the_runs_alone_with_their_seeds_and_learning_rates(tmp_path):
    overrides = ["task=seg", "steps=8", "threads=1", "logger=csv", "callbacks.evaluation.every=2", f"data.image={tiny_texture(tmp_path)}"]
    settings = [{"seed": 0, "optimizer.lr": 1e-3}, {"seed": 1, "optimizer.lr": 2e-3}]
    batched = check_members_match_alone(tmp_path, overrides, settings)
    for k, member in enumerate(settings):
        folder = tmp_path / "batch" / f"member_{k}"
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        assert (config.seed, config.optimizer.lr, config.members.seed) == (member["seed"], member["optimizer.lr"], None)
        assert OmegaConf.load(folder / ".hydra" / "overrides.yaml")[-2:] == [f"seed={member['seed']}", f"optimizer.lr={member['optimizer.lr']}"]
        assert json.loads((folder / "metrics.json").read_text())["member"] == k == batched[k]["member"]
        assert (folder / "mask.png").exists() and list(folder.glob("csv/**/metrics.csv"))
    assert json.loads((tmp_path / "batch" / "members.json").read_text())["members"] == ["member_0", "member_1"]


def test_a_member_whose_stopping_rule_stops_is_frozen_as_its_run_alone(tmp_path):
    overrides = ["task=denoise", "steps=12", "threads=1", "logger=none", "callbacks.evaluation.every=2", "backbone.channels=[8,8,8,8,8]"]
    overrides += ["stopping.window=2", "stopping.patience=2", f"data.image={tiny_texture(tmp_path)}"]
    batched = check_members_match_alone(tmp_path, overrides, [{"seed": 0}, {"seed": 4}])
    assert batched[0]["chosen_by"] == "stopping rule"
    assert [member["steps_run"] for member in batched] == [8, 12]  # member 0 stopped first, frozen while member 1 went on


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["members.seed=[0,1]", "data.augment=true"], "data.augment=true is not supported with batched members"),
        (["members.seed=[0,1]", "scheduler=linear"], "a curriculum"),
        (["members.seed=[0,1]", "resume=true"], "resume=true"),
        (["members.seed=[0,1]", "members.lr=[1e-3]"], "lists of the same length"),
        (["members.seed=[]"], "non-empty lists"),
        (["members.lr=[1e-3,0]"], "members.lr"),
        (["members.seed=[0,1]", "task=invdn"], "not a decomposition"),
    ],
)
def test_unsupported_members_are_a_one_line_error(tmp_path, extra, message):
    with pytest.raises(DdipError, match=message) as error:
        run_members(compose_train(["steps=2", "logger=none", *extra]), tmp_path / "run")
    assert "\n" not in str(error.value)

"""InvDN (Liu et al., CVPR 2021): the official network's size, exact invertibility, the paper's losses on hand-made
tensors, the synthetic training data, a tiny training run that lowers the loss and writes a checkpoint, denoising
an odd-sized image with it, and one-line errors for a checkpoint that is not one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import two_texture_composite
from PIL import Image

from ddip.errors import DdipError
from ddip.nets.invdn import HaarDownsampling, InvDN
from ddip.patches import NoiseModel, NoisyPatches
from ddip.run import build_component, compose_train, run
from ddip.tasks.invdn import InvDNTraining, charbonnier_sum, load_invdn, sobel_l1, ssim_loss

TINY_NET = ["task.net.blocks=[1,1]", "task.net.features=8"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is several times faster than two contending ones on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net() -> InvDN:
    torch.manual_seed(0)
    return InvDN(blocks=[2, 2], features=8)


def test_the_official_configuration_has_2_64_million_parameters():
    assert sum(p.numel() for p in InvDN(blocks=[8, 8], features=64).parameters()) == 2_640_960


def test_haar_and_the_whole_network_invert_exactly():
    x = torch.rand(2, 3, 16, 24)
    haar = HaarDownsampling(3)
    bands = haar(x)
    assert bands.shape == (2, 12, 8, 12)
    assert torch.allclose(bands[:, :3], torch.nn.functional.avg_pool2d(x, 2), atol=1e-6)  # LL first: the half-size image
    assert torch.allclose(haar(bands, reverse=True), x, atol=1e-6)
    net = tiny_net()
    with torch.no_grad():
        encoded = net(x)
        assert encoded.shape == (2, 48, 4, 6)
        assert (net(encoded, reverse=True) - x).abs().max() < 1e-5


def test_denoise_keeps_an_odd_size_and_its_ensembles_average():
    net = tiny_net()
    noisy = torch.rand(1, 3, 37, 45)
    for options in ({}, {"samples": 3}, {"self_ensemble": True}):
        out = net.denoise(noisy, **options)
        assert out.shape == noisy.shape and torch.isfinite(out).all(), options
    # without latent noise, one draw is the average of any number of draws
    assert torch.allclose(net.denoise(noisy, samples=1, gaussian_scale=0.0), net.denoise(noisy, samples=3, gaussian_scale=0.0), atol=1e-5)


def test_the_losses_vanish_at_the_target_and_grow_with_the_error():
    clean = torch.rand(2, 3, 16, 16)
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    assert float(charbonnier_sum(clean, clean)) == pytest.approx(3 * 16 * 16 * 1e-3**0.5, rel=1e-5)
    assert float(sobel_l1(clean, clean)) == 0.0 and float(ssim_loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)
    for loss in (charbonnier_sum, sobel_l1, ssim_loss):
        assert float(loss(noisy, clean)) > float(loss(clean, clean)), loss.__name__


def test_patches_are_reproducible_and_noised_at_sigma(tmp_path):
    image, _ = two_texture_composite(64)
    Image.fromarray(image).save(tmp_path / "a.png")
    data = NoisyPatches(train=str(tmp_path), val=False, patch=32, batch=2, sigma=25, steps=3, seed=1)
    loader = data.train_dataloader()
    first, again = next(iter(loader)), next(iter(data.train_dataloader()))
    assert first["clean"].shape == (2, 3, 32, 32) and first["low"].shape == (2, 3, 8, 8)
    assert torch.equal(first["noisy"], again["noisy"])
    flat = torch.full((3, 64, 64), 0.5)
    noise = NoiseModel((10.0, 30.0))(flat, torch.Generator().manual_seed(0), sigma=25.0) - flat
    assert float(noise.std()) * 255 == pytest.approx(25, rel=0.05)
    with pytest.raises(DdipError, match="data.sigma"):
        NoiseModel((30.0, 10.0))


def test_a_tiny_training_step_loop_lowers_the_loss(tmp_path):
    overrides = ["task=invdn_train", "steps=40", "data.patch=16", "data.batch=4", "data.val=false", "optimizer.lr=2e-3", f"paths.output_dir={tmp_path}"]
    cfg = compose_train(overrides + TINY_NET)
    torch.manual_seed(0)
    data, module = build_component(cfg, "data"), build_component(cfg, "task")
    batch = next(iter(data.train_dataloader()))
    optimizer = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(40):
        loss = torch.stack(list(module.loss_terms(batch).values())).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


@pytest.fixture
def odd_case(tmp_path):
    """A 45 × 37 (W × H) clean image and its noisy copy."""
    image, _ = two_texture_composite(64)
    clean = image[:37, :45]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    return tmp_path / "noisy.png", tmp_path / "clean.png"


def test_training_resumes_and_its_checkpoint_denoises_an_odd_sized_image_at_its_size(tmp_path, odd_case, monkeypatch):
    training = ["task=invdn_train", "steps=3", "logger=none", "data.patch=16", "data.batch=2", "trainer.val_check_interval=1",
                "checkpoint.every_n_train_steps=2", *TINY_NET]  # fmt: skip
    run(compose_train([*training, "checkpoint.keep=true"]), tmp_path / "first")  # its last.ckpt: as if killed after step 2
    resume = f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"
    steps_taken = []
    step = InvDNTraining.training_step
    monkeypatch.setattr(InvDNTraining, "training_step", lambda self, *args: steps_taken.append(self.global_step) or step(self, *args))
    trained = run(compose_train([*training, resume]), tmp_path / "train")
    assert steps_taken == [2]  # only the step the kill left undone
    checkpoint = tmp_path / "train" / "invdn.ckpt"
    assert checkpoint.is_file() and trained["steps_run"] == 3 and np.isfinite(trained["psnr_val"])
    assert not (tmp_path / "train" / "checkpoints").exists()  # the resume checkpoint goes once invdn.ckpt is written
    noisy, clean = odd_case
    overrides = ["task=invdn", f"data.image={noisy}", f"data.truth={{clean:{clean}}}", f"task.weights={checkpoint}", "task.samples=2", "logger=none"]
    metrics = run(compose_train(overrides), tmp_path / "denoise")
    assert Image.open(tmp_path / "denoise" / "denoised.png").size == (45, 37)
    assert metrics["primary_metric"] == "psnr" and np.isfinite(metrics["psnr"]) and metrics["steps"] == 0


def test_a_foreign_or_corrupt_checkpoint_is_a_one_line_error(tmp_path, odd_case):
    corrupt, foreign, missing = tmp_path / "corrupt.ckpt", tmp_path / "dip.ckpt", tmp_path / "none.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {}, "ddip": {}}, foreign)  # a DIP run's checkpoint has no InvDN in it
    for path, message in ((corrupt, "not a readable checkpoint"), (foreign, "not an InvDN checkpoint"), (missing, "no such file")):
        with pytest.raises(DdipError, match=message) as error:
            run(compose_train(["task=invdn", f"data.image={odd_case[0]}", f"task.weights={path}", "logger=none"]), tmp_path / "run")
        assert "\n" not in str(error.value)
    with pytest.raises(DdipError, match="task.weights: give a trained InvDN checkpoint"):
        load_invdn(None)


def test_without_weights_the_bundled_sigma_25_checkpoint_denoises_the_bundled_sample(tmp_path):
    metrics = run(compose_train(["task=invdn", "logger=none"]), tmp_path / "run")
    assert metrics["weights"].endswith("invdn_sigma25.ckpt")
    assert metrics["psnr"] > metrics["psnr_input"] + 4.0, metrics  # 26.06 against 21.06 when it was trained

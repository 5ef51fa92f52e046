"""Issue #18, defect 6: 2CET's landmark-feature discriminator reads faces at the landmark net's
native size, and the 2cet trainer's R1 weight follows StyleGAN2's heuristic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fxaug.faces.landmarks import INPUT_SIZE
from fxaug.models import TwoCETDiscriminator
from fxaug.trainers import TrainConfig


def _trunk_inputs(D: TwoCETDiscriminator) -> list[torch.Tensor]:
    """Record what D hands the frozen landmark trunk."""
    seen, features = [], D.landmark_net.features

    def recording(rgb):
        seen.append(rgb)
        return features(rgb)

    D.landmark_net.features = recording
    return seen


@pytest.mark.parametrize("size", [48, 128])
def test_landmark_trunk_gets_faces_at_its_native_size(size):
    torch.manual_seed(0)
    D = TwoCETDiscriminator(image_size=size, width=4, features="landmarks")
    seen = _trunk_inputs(D)
    x = torch.rand(2, 1, size, size) * 2 - 1
    D(x, 1)
    (rgb,) = seen
    assert rgb.shape == (2, 3, INPUT_SIZE, INPUT_SIZE)  # 112 px, not the D's 48 or 128
    if size < INPUT_SIZE:  # upsampled: bilinear, no antialiasing filter (nothing to filter)
        expected = F.interpolate((x.expand(-1, 3, -1, -1) + 1) * 127.5, size=INPUT_SIZE, mode="bilinear",
                                 align_corners=False, antialias=False)
        torch.testing.assert_close(rgb, expected)


def test_twocet_r1_weight_follows_the_stylegan2_heuristic():
    # Karras et al. 2020 (StyleGAN2-ADA's "auto" config): gamma = 0.0002 * resolution^2 / minibatch.
    cfg = TrainConfig(model="2cet", domains="neutral,happy")
    assert (cfg.size, cfg.batch) == (64, 64)
    assert cfg.lambda_r1 == pytest.approx(0.0002 * 64**2 / 64)  # 0.0128
    # It follows the run's size and batch: at 48 px and batch 16, 1/35 of the old weight 1.
    assert TrainConfig(model="2cet", domains="neutral,happy", size=48, batch=16).lambda_r1 == pytest.approx(0.0288)
    assert TrainConfig(model="2cet", domains="neutral,happy", lambda_r1=1.0).lambda_r1 == 1.0  # still settable
    # Families that do not read it keep the value their old snapshots saved (a resume compares every option).
    assert TrainConfig(model="stargan").lambda_r1 == 1.0

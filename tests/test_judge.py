"""The emotion judge: input handling, probabilities, persistence, and the shipped weights'
accuracy on real FERPlus test faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fxaug import emotions as E
from fxaug.metrics import EmotionJudge, load_judge
from fxaug.metrics.judge import JUDGE_DIR, DEFAULT_JUDGE


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return EmotionJudge(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1)).eval()


def test_prepare_accepts_any_size_gray_or_rgb(tiny):
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (48, 48), np.uint8), rng.integers(0, 256, (120, 120, 3), np.uint8),
             rng.integers(0, 256, (30, 30, 1), np.uint8)]
    x = tiny.prepare(faces)
    assert x.shape == (3, 1, 48, 48) and x.min() >= -1 and x.max() <= 1
    batch = rng.integers(0, 256, (5, 48, 48), np.uint8)
    np.testing.assert_allclose(tiny.prepare(batch)[:, 0].numpy(), batch / 127.5 - 1, atol=1e-6)
    rgb = np.repeat(batch[..., None], 3, axis=3)
    torch.testing.assert_close(tiny.prepare(rgb), tiny.prepare(batch), atol=1e-5, rtol=0)


def test_probabilities_and_flip_averaging(tiny):
    x = torch.rand(6, 1, 48, 48) * 2 - 1
    p = tiny.predict_proba(x)
    assert p.shape == (6, 8)
    torch.testing.assert_close(p.sum(1), torch.ones(6))
    # Flip-averaged probabilities are the same for a face and its mirror image.
    torch.testing.assert_close(p, tiny.predict_proba(x.flip(-1)), atol=1e-6, rtol=0)
    assert set(tiny.predict(x)) <= set(E.EMOTIONS)


def test_save_load(tmp_path, tiny):
    tiny.save_pretrained(tmp_path / "j")
    loaded = load_judge(tmp_path / "j")
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    assert torch.equal(loaded(x), tiny(x))
    with pytest.raises(FileNotFoundError, match="no judge"):
        load_judge("nope")


@pytest.mark.skipif(not (JUDGE_DIR / DEFAULT_JUDGE / "config.json").is_file(), reason="no shipped judge yet")
def test_shipped_judge_on_real_private_test_faces(fer):
    """The shipped judge on 1,000 FERPlus PrivateTest faces: accuracy equals a direct count of
    argmax == label, and is near the figure recorded at training."""
    judge = load_judge()
    rows = np.flatnonzero((fer.usage == 2) & (fer.majority >= 0))[:1000]
    probs = judge.predict_proba(fer.images[rows])
    labels = torch.from_numpy(fer.majority[rows].astype(np.int64))
    accuracy = float((probs.argmax(1) == labels).float().mean())
    direct = sum(judge.predict([fer.images[r]])[0] == E.EMOTIONS[fer.majority[r]] for r in rows[:200])
    assert direct == int((probs[:200].argmax(1) == labels[:200]).sum())
    assert accuracy >= 0.80, accuracy
    assert abs(accuracy - judge.metadata["test_accuracy"]) < 0.03

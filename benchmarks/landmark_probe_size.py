"""Does the 2CET landmark-feature D see expressions better at the landmark net's 112 px? (issue #18)

The face-api landmark net was trained on 112 px crops; the 2CET D fed it the 48 px FER faces as
they are until issue #18. This reads the frozen features exactly as the D does
(`TwoCETDiscriminator.landmark_features`) with features_size 48 (the old input) and 112 (the
native size, now the default), mean-pools each of the two blocks the D's heads read (a linear
head on a mean-pooled map is what a 1x1 patch head averaged over the map is), and fits a
logistic regression telling neutral from emotional faces: --n FERPlus Training faces (half
neutral, half happy, surprise, sad and anger in equal parts) per draw, --draws draws, scored on
the held-out PublicTest set of benchmarks/d_expression_probe.py (400 neutral, 100 each of the
four). Then the cost: seconds of a D loss with R1 (forward and backward, 8 + 8 real and 8 + 8
fake faces, as a 2cet D step at batch 16) at each size, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/landmark_probe_size.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from d_expression_probe import EMOTIONAL, held_out, to_model
from fer import fer_faces

from fxaug.models import TwoCETDiscriminator
from fxaug.trainers.twocet import neutral_vs_emotional_loss, r1_penalty

SIZES = (48, 112)


def pooled_features(D: TwoCETDiscriminator, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([h.mean((2, 3)) for h in D.landmark_features(x)], 1).numpy()


def training_pool(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """n neutral and n emotional Training faces (n/4 of each of the four), to draw from."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for name, k in [("neutral", n)] + [(e, n // 4) for e in EMOTIONAL[:4]]:
        faces = fer_faces("Training", emotion=name)[0]
        xs.append(to_model(faces[rng.permutation(len(faces))[:k]]))
        ys += [int(name != "neutral")] * k
    return torch.cat(xs), np.array(ys)


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    return float(model.fit(*train).score(*test))


def d_step_seconds(D: TwoCETDiscriminator, repeats: int = 3) -> float:
    torch.manual_seed(0)
    times = []
    for _ in range(repeats):
        real_n, real_e = (torch.rand(8, 1, 48, 48).mul(2).sub(1).requires_grad_() for _ in range(2))
        fake_n, fake_e = (torch.rand(8, 1, 48, 48).mul(2).sub(1) for _ in range(2))
        started = time.perf_counter()
        n, e = D(real_n, 0), D(real_e, 1)
        loss = neutral_vs_emotional_loss(D, fake_e, fake_n) + r1_penalty(n, real_n) + r1_penalty(e, real_e)
        loss.backward()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=300, help="neutral (and emotional) Training faces per draw")
    p.add_argument("--draws", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    pool_x, pool_y = training_pool(args.n * args.draws, seed=0)
    test_n, test_e = held_out()
    test_y = np.r_[np.zeros(len(test_n)), np.ones(len(test_e))]
    rng = np.random.default_rng(1)
    draws = [np.r_[rng.choice(np.flatnonzero(pool_y == 0), args.n, replace=False),
                   rng.choice(np.flatnonzero(pool_y == 1), args.n, replace=False)] for _ in range(args.draws)]
    for size in SIZES:
        started = time.time()
        D = TwoCETDiscriminator(image_size=48, width=32, features="landmarks", features_size=size)
        pool, test = pooled_features(D, pool_x), pooled_features(D, torch.cat([test_n, test_e]))
        scores = [probe((pool[i], pool_y[i]), (test, test_y)) for i in draws]
        print(f"landmark features of 48 px faces at {size} px: linear probe accuracy "
              f"{np.mean(scores):.3f} (draws: {', '.join(f'{s:.3f}' for s in scores)}; {2 * args.n} Training faces "
              f"a draw, {len(test_y)} PublicTest faces); D loss + R1 step {d_step_seconds(D):.2f} s "
              f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()

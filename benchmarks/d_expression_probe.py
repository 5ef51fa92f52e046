"""How fast can a 2CET discriminator tell neutral faces from emotional ones? (docs/models.md)

While G is still the identity, a 2CET D's whole task is "neutral or not" on real faces. This
trains it on exactly that for --steps steps (batch 8 neutral + 8 emotional, the seven emotional
classes sampled equally) for several D settings, and reports the held-out accuracy on FERPlus
PublicTest (400 neutral against 100 each of happy, surprise, sad, anger). For scale, a logistic
regression on the frozen landmark-net features (what `--d-features landmarks` builds on) on
2,000 + 2,000 Training faces.

    .venv/bin/python benchmarks/d_expression_probe.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fer import fer_faces
from fxaug.models import TwoCETDiscriminator
from fxaug.trainers.twocet import neutral_vs_emotional_loss

EMOTIONAL = ["happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"]
SETTINGS = [("", 2e-4, 16), ("landmarks", 2e-4, 16), ("landmarks", 1e-3, 16), ("", 1e-3, 32)]


def to_model(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float().div(127.5).sub(1)[:, None]


def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    neutral = to_model(fer_faces("PublicTest", emotion="neutral")[0][:400])
    emotional = torch.cat([to_model(fer_faces("PublicTest", emotion=k)[0][:100]) for k in EMOTIONAL[:4]])
    return neutral, emotional


def train_d(features: str, lr: float, width: int, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    neutral = to_model(fer_faces("Training", emotion="neutral")[0])
    emotional = [to_model(fer_faces("Training", emotion=k)[0]) for k in EMOTIONAL]
    D = TwoCETDiscriminator(image_size=48, width=width, features=features)
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=lr, betas=(0.0, 0.99))
    for _ in range(steps):
        x_n = neutral[torch.randint(len(neutral), (8,))]
        x_e = torch.stack([emotional[k][torch.randint(len(emotional[k]), (1,))][0] for k in torch.randint(7, (8,)).tolist()])
        loss = neutral_vs_emotional_loss(D, x_n, x_e)  # the trainer's --cls-warmup step
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_n, test_e = held_out()
    with torch.no_grad():
        D.eval()
        emotional_score = lambda x: D(x, 1) - D(x, 0)  # noqa: E731
        return float(((emotional_score(test_n) < 0).float().mean() + (emotional_score(test_e) > 0).float().mean()) / 2)


def landmark_probe(seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    D = TwoCETDiscriminator(image_size=48, width=8, features="landmarks")
    rng = np.random.default_rng(seed)

    def features(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            h2, h3 = D.landmark_features(x)  # the faces at the landmark net's 112 px, as D reads them
            return torch.cat([h2.mean((2, 3)), h3.flatten(1)], 1).numpy()

    def pick(split: str, n: int):
        xs, ys = [], []
        for name, label, k in [("neutral", 0, n)] + [(e, 1, n // 4) for e in EMOTIONAL[:4]]:
            faces = fer_faces(split, emotion=name)[0]
            xs.append(to_model(faces[rng.permutation(len(faces))[:k]]))
            ys += [label] * min(k, len(faces))
        return features(torch.cat(xs)), np.array(ys)

    x_train, y_train = pick("Training", 2000)
    x_test, y_test = pick("PublicTest", 400)
    return float(LogisticRegression(max_iter=2000, C=0.1).fit(x_train, y_train).score(x_test, y_test))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"linear probe on frozen landmark features: accuracy {landmark_probe(args.seed):.3f}")
    for features, lr, width in SETTINGS:
        started = time.time()
        acc = train_d(features, lr, width, args.steps, args.seed)
        print(f"D {features or 'pixel'} width {width} lr {lr:g}, {args.steps} steps: held-out accuracy {acc:.3f} "
              f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()

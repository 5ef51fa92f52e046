"""Train a small FERPlus expression classifier for one short epoch with fxaug in both forms:
ExpressionTransfer per sample inside a DataLoader with 2 workers, and ExpressionBatchTransfer on
the collated batch; asserts every synthesized sample's label equals its target.

    python examples/train_classifier.py                       # ../shared FER data, else examples/sample
    python examples/train_classifier.py --data examples/sample --max-steps 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch import nn

import fxaug
from fxaug import emotions as E

REPO = Path(__file__).resolve().parents[1]
FER_NPZ = REPO.parent / "shared" / "data" / "fer2013_ferplus.npz"
CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]  # fxaug.emotions order
TARGETS = ["happy", "sad", "surprise", "anger", "neutral", "fear"]


def load(data: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """48 x 48 grey faces and canonical-order int labels: FERPlus Training rows, or class folders."""
    import cv2

    if data.suffix == ".npz":
        d = np.load(data)
        names = [E.canonical(str(n)) for n in d["ferplus_majority_names"]]
        rows = np.flatnonzero((d["usage"] == 0) & (d["ferplus_majority"] >= 0))[:limit]
        return d["images"][rows], np.array([CLASSES.index(names[m]) for m in d["ferplus_majority"][rows]])
    images, labels = [], []
    for rec in fxaug.open_dataset(str(data)):
        grey = rec.image if rec.image.ndim == 2 else cv2.cvtColor(rec.image, cv2.COLOR_RGB2GRAY)
        images.append(cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA))
        labels.append(CLASSES.index(rec.emotion))
        if len(images) >= limit:
            break
    return np.stack(images), np.array(labels)


class Faces(torch.utils.data.Dataset):
    """Labels follow the face: the transform reads and rewrites the emotion."""

    def __init__(self, images, labels, p: float):
        self.images, self.labels = images, labels
        self.aug = A.Compose([A.HorizontalFlip(), fxaug.ExpressionTransfer(TARGETS, classes=CLASSES, p=p)],
                             seed=0, save_applied_params=True)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        out = self.aug(image=self.images[i], emotion=int(self.labels[i]))
        # target, face_found, ... under any albumentations ({} when not applied); out["applied_transforms"]
        # differs: AlbumentationsX records constructor arguments there, without face_found
        applied = self.aug.transforms[1].get_applied_params()
        synthesized = bool(applied.get("face_found")) and applied.get("target") is not None
        target = CLASSES.index(applied["target"]) if synthesized else -1
        # contiguous: AlbumentationsX returns HorizontalFlip's negative-stride view, which torch refuses
        return torch.from_numpy(np.ascontiguousarray(out["image"]))[None], int(out["emotion"]), target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=FER_NPZ if FER_NPZ.is_file() else REPO / "examples" / "sample")
    ap.add_argument("--limit", type=int, default=512, help="faces to train on")
    ap.add_argument("--max-steps", type=int, default=0, help="stop the epoch after N steps (0: whole epoch)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--p", type=float, default=0.3)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    images, labels = load(args.data, args.limit)
    loader = torch.utils.data.DataLoader(Faces(images, labels, args.p), batch_size=args.batch, shuffle=True, num_workers=2)
    counts = {CLASSES[c]: int((labels == c).sum()) for c in np.unique(labels)}
    synth = fxaug.ExpressionBatchTransfer(CLASSES, p=args.p, class_counts=counts, seed=0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, len(CLASSES)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    made_in_workers = made_in_batch = 0
    for step, (x, y, target) in enumerate(loader, 1):
        done = target >= 0
        assert torch.equal(y[done], target[done]), "a face synthesized in a worker kept a wrong label"
        made_in_workers += int(done.sum())
        x, y = synth(x, y)
        for i, (t, found) in enumerate(zip(synth.last_params["target"], synth.last_params["face_found"])):
            if t is not None and found:
                assert CLASSES[int(y[i])] == t, "a face synthesized after collate kept a wrong label"
                made_in_batch += 1
        loss = nn.functional.cross_entropy(net(x.float() / 255.0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.3f}")
        if args.max_steps and step >= args.max_steps:
            break
    print(f"synthesized {made_in_workers} faces in DataLoader workers and {made_in_batch} after collate; "
          "every one labelled as its target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

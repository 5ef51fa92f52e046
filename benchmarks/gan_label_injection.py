"""Issue #18 defect 4: how much of a StarGAN generator's label reaches the face centre against the border, at
initialisation, for the paper's concatenated label planes and for FiLM (--label-injection film); 8 (4 at 96 px) real
FER faces, seeds 0-2; the tests in tests/test_gan_generator_defects.py assert the bands.
Run from the repository root: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gan_label_injection.py"""
import sys
import numpy as np, torch
sys.path.insert(0, "tests")
from conftest import FerData, FER_NPZ
import test_gan_generator_defects as T
from fxaug.models import StarGANGenerator
torch.set_num_threads(1)
fer = FerData(FER_NPZ)
for width, n_res in ((16, 3), (64, 6)):
    for size in (48, 96):
        x = T._fer_faces(fer, n=8 if size == 48 else 4, size=size)
        for inj in ("concat", "film"):
            first, out = [], []
            for seed in range(3):
                torch.manual_seed(seed)
                g = StarGANGenerator(image_size=size, width=width, n_down=2, n_res=n_res, domains=T.DOMAINS, label_injection=inj)
                first.append(T._label_effect(g, x, T._first_conditioned_norm(g)))
                out.append(T._label_effect(g, x))
            f = lambda v: " ".join(f"{c:.3f}/{b:.3f}={c/b:.2f}" for c, b in v)
            print(f"w{width} r{n_res} {size}px {inj:6s} first conditioned norm (centre/border): {f(first)} | output: {f(out)}")

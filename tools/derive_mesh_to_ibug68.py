"""Derive `fxaug.faces.mesh.MESH_TO_IBUG68`, the face mesh vertices that stand for the 68 iBUG points.

    .venv/bin/python tools/derive_mesh_to_ibug68.py      # ~5 min on one core

On the 400 held-out "tune" news photos of benchmarks/faces_crop_protocols.py (apart from the
benchmark's samples and the tests' photos):

1. the mesh's own left/right vertex map: the mesh of each mirrored photo, mirrored back, and for
   each of its vertices the nearest vertex of the photo's mesh (median distance over photos);
2. for each left/right pair of iBUG points (FLIP_PERMUTATION), the mirror pair of vertices
   nearest (median over photos, in IOD units) to face-api.js's two points together; for each point
   on the midline, the mean of a vertex and its mirror vertex, nearest to face-api.js's point.

So the 68 mesh points follow the convention the rest of fxaug.faces was built on, and the points of
a mirrored face are the mirrored points exactly when the mesh itself is mirror-consistent.
Prints the table and each point's median distance to face-api.js's point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from faces_accuracy import mirror_box  # noqa: E402
from faces_crop_protocols import sample_rows  # noqa: E402


def main() -> int:
    import torch
    from datasets import load_dataset

    from fxaug.faces import FLIP_PERMUTATION, FaceDetector, FaceLandmarker

    torch.set_num_threads(1)
    ds = load_dataset("parquet", data_files=str(REPO.parent / "shared" / "data" / "lfw_expressions.parquet"), split="train")
    images = [np.array(ds[r]["image"]) for r in sample_rows(len(ds), "tune")]
    detector = FaceDetector()
    found = [detector(image) for image in images]
    images = [im for im, f in zip(images, found) if f.found]
    boxes = [f.face.box for f in found if f.found]
    widths = np.array([im.shape[1] for im in images])

    faceapi = FaceLandmarker(nets=("faceapi",)).batch(images, boxes).astype(np.float64)
    meshes = FaceLandmarker(nets=("mesh",))
    mesh = meshes.mesh(images, boxes).astype(np.float64)
    mirrored = meshes.mesh([im[:, ::-1] for im in images], [mirror_box(b, w) for b, w in zip(boxes, widths)]).astype(np.float64)
    mirrored[..., 0] = widths[:, None] - 1 - mirrored[..., 0]
    iod = np.linalg.norm(faceapi[:, 45] - faceapi[:, 36], axis=1)

    distance = np.median(np.linalg.norm(mirrored[:, :, None] - mesh[:, None], axis=-1) / iod[:, None, None], axis=0)
    mirror = distance.argmin(axis=1)
    assert np.array_equal(mirror[mirror], np.arange(len(mirror))), "the mesh's mirror map is not an involution"

    to_faceapi = np.median(np.linalg.norm(mesh[:, None] - faceapi[:, :, None], axis=-1) / iod[:, None, None], axis=0)  # (68, 468)

    def cost(k: int, a: int, b: int) -> float:
        return float(np.median(np.linalg.norm((mesh[:, a] + mesh[:, b]) / 2 - faceapi[:, k], axis=1) / iod))

    table: dict[int, tuple[int, int]] = {}
    for k in range(68):
        if k in table:
            continue
        other = int(FLIP_PERMUTATION[k])
        if other == k:
            _, a, b = min((cost(k, v, mirror[v]), v, mirror[v]) for v in np.argsort(to_faceapi[k])[:20])
            table[k] = (int(min(a, b)), int(max(a, b)))
        else:
            v = int((to_faceapi[k] + to_faceapi[other][mirror]).argmin())
            table[k], table[other] = (v, v), (int(mirror[v]), int(mirror[v]))
    print("MESH_TO_IBUG68 =", [table[k] for k in range(68)])
    print("median distance to face-api.js's points (IOD):", [round(cost(k, *table[k]), 3) for k in range(68)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

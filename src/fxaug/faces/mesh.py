"""MediaPipe's face mesh landmark model (468 points), run as a small PyTorch graph.

The model (`face_landmark.tflite` of MediaPipe Face Mesh, Apache-2.0) reads a 192 x 192 RGB face
crop in [0, 1] and returns 468 points (x, y in crop pixels, z) and a face-presence logit. fxaug
ships its float16 weights and graph converted once to safetensors (`tools/convert_face_mesh.py`;
`fxaug/assets/face_mesh_landmark.safetensors`), and executes the graph here: 3x3 convs and depthwise convs with
TF "same" padding, PReLU, residual adds, 2x2 max pooling with zero channel padding.

`MESH_TO_IBUG68` maps the mesh onto the 68-point iBUG 300-W layout that the rest of fxaug.faces
uses (one mesh vertex per point, or the mean of two).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..assets import FACE_MESH_WEIGHTS

MESH_INPUT_SIZE = 192
MESH_POINTS = 468


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF 'same' padding: output ceil(n / stride); the odd pixel of padding goes bottom/right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class FaceMeshNet(nn.Module):
    """The face mesh graph. Input (N, 3, 192, 192) RGB in [0, 1]; output ((N, 468, 3) points in
    crop pixels (x, y; z at the same scale), (N,) face-presence logits)."""

    def __init__(self, graph: dict, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        self.graph = graph
        self.layers = nn.ModuleDict()
        for op in graph["ops"]:
            if op["op"] == "conv":
                out_c, in_c, kh, kw = shapes[op["layer"] + ".weight"]
                groups = out_c if op["depthwise"] else 1
                self.layers[op["layer"]] = nn.Conv2d(in_c * groups, out_c, (kh, kw), op["stride"], groups=groups)
            elif op["op"] == "prelu":
                self.layers[op["layer"]] = nn.PReLU(shapes[op["layer"] + ".weight"][0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = {self.graph["input"]: x}
        for op in self.graph["ops"]:
            kind = op["op"]
            if kind == "conv":
                layer = self.layers[op["layer"]]
                inp = values[op["in"]]
                if op["padding"] == "same":
                    inp = _pad_same(inp, layer.kernel_size[0], layer.stride[0])
                out = layer(inp)
            elif kind == "prelu":
                out = self.layers[op["layer"]](values[op["in"]])
            elif kind == "add":
                a, b = op["in"]
                out = values[a] + values[b]
            elif kind == "maxpool2":
                out = F.max_pool2d(values[op["in"]], 2, 2)
            elif kind == "channel_pad":
                out = F.pad(values[op["in"]], (0, 0, 0, 0, 0, op["after"]))
            else:  # pragma: no cover - the converter admits no other op
                raise ValueError(kind)
            values[op["out"]] = out
        mesh_name, score_name = self.graph["outputs"]
        mesh = values[mesh_name].reshape(x.shape[0], MESH_POINTS, 3)
        return mesh, values[score_name].reshape(x.shape[0])


def load_face_mesh_net(path: str | Path | None = None, device: str | torch.device = "cpu") -> FaceMeshNet:
    """The bundled face mesh weights in a `FaceMeshNet` (float32, eval mode) on `device`."""
    from safetensors import safe_open

    path = Path(path or FACE_MESH_WEIGHTS)
    with safe_open(str(path), framework="pt") as f:
        graph = json.loads(f.metadata()["graph"])
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    net = FaceMeshNet(graph, {k: tuple(v.shape) for k, v in tensors.items()})
    net.layers.load_state_dict(tensors, strict=True)
    return net.eval().to(device)


# --------------------------------------------------------------------------------------------
# the mesh as 68 iBUG points

# For each iBUG 300-W point, the two mesh vertices whose mean stands for it (the same vertex twice
# for most points; a mirror pair for some points on the midline). Chosen by
# tools/derive_mesh_to_ibug68.py on 400 held-out news photos (the "tune" sample of
# benchmarks/faces_crop_protocols.py): each left/right pair of iBUG points takes the mirror pair of
# vertices (the mesh's own left/right map, found by mirroring) nearest to face-api.js's two points,
# so the 68 points keep the convention the rest of fxaug.faces was built on and mirror exactly.
# Median distance to face-api.js's points: 0.02-0.04 IOD for eyes, brows, nose and lips, 0.04-0.09
# on the jaw line.
MESH_TO_IBUG68 = np.array([
    (127, 127), (234, 234), (177, 177), (215, 215), (172, 172), (136, 136), (150, 150), (176, 176),
    (152, 152), (400, 400), (379, 379), (365, 365), (397, 397), (435, 435), (401, 401), (454, 454),
    (356, 356),                                                          # jaw 0-16
    (70, 70), (63, 63), (105, 105), (66, 66), (107, 107),                # right brow 17-21
    (336, 336), (296, 296), (334, 334), (293, 293), (300, 300),          # left brow 22-26
    (243, 463), (196, 419), (5, 5), (45, 275),                           # nose bridge 27-30
    (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),                  # nostrils 31-35
    (246, 246), (160, 160), (158, 158), (155, 155), (153, 153), (144, 144),  # right eye 36-41
    (382, 382), (385, 385), (387, 387), (466, 466), (373, 373), (380, 380),  # left eye 42-47
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),  # outer lips 48-54
    (405, 405), (314, 314), (84, 314), (84, 84), (181, 181),             # outer lips 55-59
    (62, 62), (38, 38), (13, 13), (268, 268), (292, 292), (317, 317), (14, 14), (87, 87),  # inner 60-67
], dtype=np.int64)


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, D) mesh points -> (..., 68, D) iBUG 300-W points (`MESH_TO_IBUG68`)."""
    mesh = np.asarray(mesh)
    return (mesh[..., MESH_TO_IBUG68[:, 0], :] + mesh[..., MESH_TO_IBUG68[:, 1], :]) / 2


# The mesh's crop: a square centred on the face box's centre, MESH_CROP_SCALE x its longer side
# (MediaPipe pads its own detector's boxes by about 1.5x). 1.4 was the best of 1.3-1.5 on the 400
# tuning photos for agreement with YuNet's eye points and flip consistency (docs/faces.md).
MESH_CROP_SCALE = 1.4


def mesh_crop_matrix(box, scale: float = MESH_CROP_SCALE, size: int = MESH_INPUT_SIZE) -> np.ndarray:
    """The 2 x 3 affine map from crop pixels to image pixels (both with pixel centres at integer
    coordinates) of the mesh's square crop about a face box (x, y, w, h). The crop of a mirrored
    image about the mirrored box is exactly the mirrored crop."""
    x, y, w, h = (float(v) for v in box)
    side = scale * max(w, h)
    k = side / size
    cx, cy = x + w / 2 - 0.5, y + h / 2 - 0.5
    return np.array([[k, 0.0, cx + k * (0.5 - size / 2)], [0.0, k, cy + k * (0.5 - size / 2)]])


def mesh_crop(rgb: np.ndarray, matrix: np.ndarray, size: int = MESH_INPUT_SIZE) -> np.ndarray:
    """The mesh's input crop (size x size RGB uint8; bilinear, black outside the image)."""
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def mesh_to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Net output (x, y in crop pixels, 0 at the crop's left/top edge) -> image pixels."""
    xy = np.asarray(points, np.float64)[..., :2] - 0.5  # edge -> pixel-centre coordinates
    return xy @ matrix[:, :2].T + matrix[:, 2]

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

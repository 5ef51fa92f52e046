"""68-point face landmarks: the face-api.js landmark net and MediaPipe's face mesh, in PyTorch.

Two nets locate the 68 iBUG 300-W points, and by default `FaceLandmarker` averages them:

- face-api.js `FaceLandmark68Net` (MIT) reads a square face crop resized to 112 x 112 and returns
  the 68 points relative to that crop. Its TF.js weights ship with fxaug
  (`fxaug/assets/face_landmark_68_model*`, uint8-quantised) and are read with numpy alone.
  Crops are prepared as face-api.js feeds its own detections: a square about the face box (placed
  and sized as in `SINGLE_CROP`, tuned to YuNet's boxes), padded with black where it leaves the
  image, resized to 112 px.
- MediaPipe's face mesh (Apache-2.0; `fxaug.faces.mesh`) reads a 192 px crop 1.4 x the box and
  returns 468 points, mapped to the 68 (`MESH_TO_IBUG68`).

Each net alone is less mirror-symmetric than their mean: on news photos the mean's points on a
mirrored photo, mirrored back, lie within 5% of the inter-ocular distance of its points on the
photo for 97% of faces, against 84% (face-api.js) and 92.5% (mesh) (docs/faces.md).

    landmarker = FaceLandmarker(device="cpu")            # or "cuda"; nets=("faceapi",) for one net
    points = landmarker(image, box)                      # (68, 2), image pixels
    points = landmarker.batch(images, boxes)             # (N, 68, 2)

`landmarks_for` / `landmarks_for_records` prefer landmarks a dataset already supplies (AffectNet)
and run the nets only where none are given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..assets import LANDMARK68_MANIFEST, LANDMARK68_WEIGHTS
from ._images import as_uint8_rgb
from .mesh import MESH_INPUT_SIZE, FaceMeshNet, load_face_mesh_net, mesh_crop, mesh_crop_matrix, mesh_to_ibug68, mesh_to_image
from .regions import points_box

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # face-api.js normalisation: (x - mean) / 255

# iBUG 300-W index of each point's mirror image (left <-> right), for flips.
FLIP_PERMUTATION = np.array(
    list(range(16, -1, -1))                      # jaw 0..16
    + list(range(26, 16, -1))                    # brows 17..26
    + [27, 28, 29, 30]                           # nose bridge
    + [35, 34, 33, 32, 31]                       # nostrils
    + [45, 44, 43, 42, 47, 46]                   # eye 36..41 <-> 42..47
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips 48..59
    + [64, 63, 62, 61, 60, 67, 66, 65],          # inner lips 60..67
    dtype=np.int64,
)


# --------------------------------------------------------------------------------------------
# weights


def read_tfjs_weights(manifest: str | Path, weights: str | Path | None = None) -> dict[str, np.ndarray]:
    """Tensors of a TF.js layers/graph model as float32 numpy arrays, by name.

    The binary holds the tensors concatenated in manifest order; a quantised tensor is stored as
    uint8/uint16 codes q with value = q * scale + min (the manifest gives scale and min).
    `weights` replaces the path of a single-file weights group (the manifest's names its file).
    """
    manifest = Path(manifest)
    groups = json.loads(manifest.read_text())
    tensors: dict[str, np.ndarray] = {}
    for group in groups:
        paths = [manifest.parent / p for p in group["paths"]]
        if weights is not None and len(paths) == 1:
            paths = [Path(weights)]
        data = b"".join(p.read_bytes() for p in paths)
        offset = 0
        for spec in group["weights"]:
            shape = tuple(spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                dtype = np.dtype(quant["dtype"])
                if dtype not in (np.uint8, np.uint16):
                    raise ValueError(f"{spec['name']}: unsupported quantisation {quant['dtype']}")
                codes = np.frombuffer(data, dtype, count, offset)
                values = codes.astype(np.float64) * quant["scale"] + quant["min"]
            else:
                dtype = np.dtype(spec["dtype"])
                values = np.frombuffer(data, dtype, count, offset)
            offset += count * dtype.itemsize
            tensors[spec["name"]] = values.astype(np.float32).reshape(shape)
        if offset != len(data):
            raise ValueError(f"{manifest}: manifest describes {offset} bytes, weights hold {len(data)}")
    return tensors


# --------------------------------------------------------------------------------------------
# the net


def _pad_same(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF 'same' padding for a 3x3 kernel: 1 each side at stride 1; at stride 2 on an even size,
    all of the (single) padding goes bottom/right."""
    if stride == 1:
        return F.pad(x, (1, 1, 1, 1))
    pad_w = max((-(-x.shape[-1] // 2) - 1) * 2 + 3 - x.shape[-1], 0)
    pad_h = max((-(-x.shape[-2] // 2) - 1) * 2 + 3 - x.shape[-2], 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class SeparableConv(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, one bias after both (tf.separableConv2d + bias)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, stride, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(_pad_same(x, self.stride)))


class PlainConv(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels_in, channels_out, 3, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_pad_same(x, self.stride))


class DenseBlock(nn.Module):
    """face-api.js denseBlock4: a stride-2 conv, then three separable convs, each fed the ReLU
    of the sum of all earlier outputs of the block."""

    def __init__(self, channels_in: int, channels_out: int, first: bool = False):
        super().__init__()
        conv0 = PlainConv if first else SeparableConv
        self.conv0 = conv0(channels_in, channels_out, stride=2)
        self.conv1 = SeparableConv(channels_out, channels_out)
        self.conv2 = SeparableConv(channels_out, channels_out)
        self.conv3 = SeparableConv(channels_out, channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + out2 + out3))
        return F.relu(out1 + out2 + out3 + out4)


class LandmarkNet(nn.Module):
    """face-api.js FaceLandmark68Net. Input (N, 3, 112, 112) RGB in 0..255; output (N, 68, 2),
    points in crop-relative units (0..1 across the crop)."""

    def __init__(self):
        super().__init__()
        self.dense0 = DenseBlock(3, 32, first=True)
        self.dense1 = DenseBlock(32, 64)
        self.dense2 = DenseBlock(64, 128)
        self.dense3 = DenseBlock(128, 256)
        self.fc = nn.Linear(256, 136)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of the four dense blocks (32, 64, 128, 256 channels; 1/2 .. 1/16 size)."""
        out, x = [], (rgb - self.mean) / 255.0
        for block in (self.dense0, self.dense1, self.dense2, self.dense3):
            x = block(x)
            out.append(x)
        return out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(self.features(rgb)[-1], 7, 2)  # 7x7 -> 1x1
        return self.fc(x.flatten(1)).view(-1, 68, 2)

    def load_tfjs(self, tensors: dict[str, np.ndarray]) -> "LandmarkNet":
        """Copy face-api.js TF.js tensors (HWIO / HWC1 layouts) into this module."""

        def put(param: torch.Tensor, array: np.ndarray, *axes: int) -> None:
            value = torch.from_numpy(np.ascontiguousarray(array.transpose(axes) if axes else array))
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"weight shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
            with torch.no_grad():
                param.copy_(value)

        for b in range(4):
            block: DenseBlock = getattr(self, f"dense{b}")
            for c in range(4):
                prefix = f"dense{b}/conv{c}/"
                conv = getattr(block, f"conv{c}")
                if isinstance(conv, PlainConv):
                    put(conv.conv.weight, tensors[prefix + "filters"], 3, 2, 0, 1)
                    put(conv.conv.bias, tensors[prefix + "bias"])
                else:
                    put(conv.depthwise.weight, tensors[prefix + "depthwise_filter"], 2, 3, 0, 1)
                    put(conv.pointwise.weight, tensors[prefix + "pointwise_filter"], 3, 2, 0, 1)
                    put(conv.pointwise.bias, tensors[prefix + "bias"])
        put(self.fc.weight, tensors["fc/weights"], 1, 0)
        put(self.fc.bias, tensors["fc/bias"])
        return self


def load_landmark_net(device: str | torch.device = "cpu") -> LandmarkNet:
    """The bundled face-api.js weights in a `LandmarkNet`, in eval mode, on `device`."""
    net = LandmarkNet().load_tfjs(read_tfjs_weights(LANDMARK68_MANIFEST, LANDMARK68_WEIGHTS))
    return net.eval().to(device)


# --------------------------------------------------------------------------------------------
# crops

# How the net's input crop is placed on a YuNet face box: (down, scale) = the crop's centre sits
# `down` box heights below the box centre, its side is `scale` x the box's longer side. face-api.js
# crops its own detector's boxes, which sit lower on the face than YuNet's (YuNet's include the
# forehead); these values were chosen on 200 news photos (a sample apart from the benchmark's) for
# agreement with YuNet's eye points and for flip consistency (benchmarks/faces_accuracy.py), and
# are still the best on 400 other held-out photos against re-cropping on the net's own landmarks
# (2-3 passes), face-api.js's own input convention and other placements
# (benchmarks/faces_crop_protocols.py; docs/faces.md).
SINGLE_CROP: tuple[tuple[float, float], ...] = ((0.2, 1.1),)
# Nine crops around it, averaged: steadier points at nine times the cost (on 200 news photos, flip
# consistency within 5% IOD for 90% of faces instead of 84%; docs/faces.md).
ENSEMBLE_CROPS: tuple[tuple[float, float], ...] = tuple(
    (down, scale) for down in (0.175, 0.2, 0.225) for scale in (1.0, 1.1, 1.2)
)


def square_crop_box(box: Sequence[float], down: float = 0.2, scale: float = 1.1) -> tuple[int, int, int]:
    """(x0, y0, side) of the integer square crop the net reads for a face box (x, y, w, h).

    Rounding is symmetric, so the crop of a mirrored image about the mirrored box is exactly
    the mirrored crop (but for exact .5 ties, which no rounding rule can mirror)."""
    x, y, w, h = (float(v) for v in box)
    side = max(int(np.round(max(w, h) * scale)), 8)
    x0 = int(np.round(x + w / 2 - side / 2))
    y0 = int(np.round(y + h / 2 + down * h - side / 2))
    return x0, y0, side


def crop_square(rgb: np.ndarray, x0: int, y0: int, side: int, size: int = INPUT_SIZE) -> np.ndarray:
    """The square [x0, x0 + side) x [y0, y0 + side) of an RGB image, black where it leaves the
    image (as face-api.js pads to square), resized to size x size."""
    h, w = rgb.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if ix1 > ix0 and iy1 > iy0:
        crop[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = rgb[iy0:iy1, ix0:ix1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def crop_to_image(points: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Net output (0..1 spanning the crop's edges) -> image pixels (centres at integers)."""
    return (np.asarray(points, np.float64) * side + (x0, y0) - 0.5).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the stateful wrapper


NETS = ("faceapi", "mesh")  # the landmark nets FaceLandmarker can run (and average)


class FaceLandmarker:
    """The landmark nets on a device, with crop preparation and mapping back to image pixels.

        landmarker = FaceLandmarker("cuda")
        points = landmarker.batch(images, boxes)   # (N, 68, 2) image pixels

    boxes are YuNet-style face boxes (x, y, w, h) (`fxaug.faces.FaceDetector`); the crops are placed
    for them. nets: which nets run, their 68 points averaged: "faceapi" (face-api.js) and "mesh"
    (MediaPipe's face mesh mapped to 68 points); both by default (docs/faces.md compares them).
    crops: face-api.js (down, scale) placements whose results are averaged; `ENSEMBLE_CROPS` is
    steadier and nine times slower. batch_size: crops per forward pass. net / mesh_net: already
    loaded nets to share.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        crops: Sequence[tuple[float, float]] = SINGLE_CROP,
        batch_size: int = 128,
        net: LandmarkNet | None = None,
        *,
        nets: Sequence[str] = NETS,
        mesh_net: FaceMeshNet | None = None,
    ):
        self.nets = tuple(nets)
        if not self.nets or any(n not in NETS for n in self.nets) or len(set(self.nets)) != len(self.nets):
            raise ValueError(f"nets: one or more of {NETS}, got {nets!r}")
        self.device = torch.device(device)
        self.net = (net or load_landmark_net()).to(self.device).eval() if "faceapi" in self.nets else None
        self.mesh_net = (mesh_net or load_face_mesh_net()).to(self.device).eval() if "mesh" in self.nets else None
        self.crops = tuple((float(d), float(s)) for d, s in crops)
        if not self.crops:
            raise ValueError("crops: give at least one (down, scale) placement")
        self.batch_size = batch_size

    def to(self, device: str | torch.device) -> "FaceLandmarker":
        self.device = torch.device(device)
        for net in (self.net, self.mesh_net):
            if net is not None:
                net.to(self.device)
        return self

    @torch.inference_mode()
    def run_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB crops -> (N, 68, 2) float32 crop-relative points (face-api.js)."""
        if self.net is None:
            raise RuntimeError("this FaceLandmarker does not run the face-api.js net (nets=%r)" % (self.nets,))
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start : start + self.batch_size]))
            x = x.to(self.device).permute(0, 3, 1, 2).float()
            out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32)

    @torch.inference_mode()
    def run_mesh_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 192, 192, 3) uint8 RGB crops -> ((N, 468, 3) mesh points in crop pixels, (N,)
        face-presence probabilities)."""
        if self.mesh_net is None:
            raise RuntimeError("this FaceLandmarker does not run the face mesh (nets=%r)" % (self.nets,))
        meshes, scores = [], []
        for start in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start : start + self.batch_size]))
            x = x.to(self.device).permute(0, 3, 1, 2).float() / 255.0
            mesh, logit = self.mesh_net(x)
            meshes.append(mesh.float().cpu().numpy())
            scores.append(torch.sigmoid(logit).float().cpu().numpy())
        if not meshes:
            return np.zeros((0, 468, 3), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(meshes), np.concatenate(scores)

    def mesh(self, images: Sequence, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """(N, 468, 2) float32 face mesh points in image pixels, for one face box per image."""
        rgbs = [as_uint8_rgb(img) for img in images]
        matrices = [mesh_crop_matrix(box) for box in boxes]
        if not rgbs:
            return np.zeros((0, 468, 2), np.float32)
        mesh, _ = self.run_mesh_crops(np.stack([mesh_crop(rgb, m, MESH_INPUT_SIZE) for rgb, m in zip(rgbs, matrices)]))
        return np.stack([mesh_to_image(p, m) for p, m in zip(mesh, matrices)]).astype(np.float32)

    def _faceapi(self, rgbs: list[np.ndarray], boxes: Sequence[Sequence[float]]) -> np.ndarray:
        squares = [square_crop_box(box, down, scale) for down, scale in self.crops for box in boxes]
        crops = np.stack([crop_square(rgbs[i % len(rgbs)], *sq) for i, sq in enumerate(squares)])
        rel = self.run_crops(crops)
        points = np.stack([crop_to_image(p, *sq) for p, sq in zip(rel, squares)])
        return points.reshape(len(self.crops), len(rgbs), 68, 2).mean(axis=0)

    def batch(self, images: Sequence, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """(N, 68, 2) float32 landmarks in image pixels, for one face box per image."""
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        if not len(images):
            return np.zeros((0, 68, 2), np.float32)
        rgbs = [as_uint8_rgb(img) for img in images]
        results = []
        if "faceapi" in self.nets:
            results.append(self._faceapi(rgbs, boxes).astype(np.float64))
        if "mesh" in self.nets:
            results.append(mesh_to_ibug68(self.mesh(rgbs, boxes).astype(np.float64)))
        return np.mean(results, axis=0).astype(np.float32)

    def __call__(self, image, box: Sequence[float]) -> np.ndarray:
        """(68, 2) float32 landmarks in image pixels for the face in `box` (x, y, w, h)."""
        return self.batch([image], [box])[0]

    def __repr__(self) -> str:
        return f"FaceLandmarker(device={str(self.device)!r}, nets={self.nets!r}, crops={len(self.crops)})"


# --------------------------------------------------------------------------------------------
# landmarks for dataset records: given ones first


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """68 landmarks for one image, and where they came from.

    points: (68, 2) float32 image pixels, or None when no face was found (`reason` says why).
    box:    the face box used (the dataset's, YuNet's, or the points' bounding box).
    source: "dataset" (supplied with the record), "net" (computed), or None.
    """

    points: np.ndarray | None
    box: tuple[float, float, float, float] | None
    source: str | None
    reason: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaceLandmarks):
            return NotImplemented
        same_points = (self.points is None and other.points is None) or (
            self.points is not None and other.points is not None and np.array_equal(self.points, other.points)
        )
        return same_points and (self.box, self.source, self.reason) == (other.box, other.source, other.reason)

    __hash__ = object.__hash__

    @property
    def found(self) -> bool:
        return self.points is not None


def _given_landmarks(record: Any) -> np.ndarray | None:
    points = getattr(record, "landmarks", None)
    if points is None:
        return None
    points = np.asarray(points, np.float32)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        return None
    return points


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def landmarks_for_records(
    records: Sequence[Any],
    detector=None,
    landmarker: FaceLandmarker | None = None,
    *,
    assume_face: bool = False,
) -> list[FaceLandmarks]:
    """68 landmarks for FaceRecord-like objects (attributes `image`, and optionally `box` and
    `landmarks` (68, 2)), preferring what the dataset supplies.

    - `landmarks` given (AffectNet): used as they are; the net does not run.
    - otherwise YuNet looks for faces (the net's crops are tuned to YuNet's boxes); a dataset
      `box` picks the detected face overlapping it most, and serves as the face box itself when
      detection finds none there; without a box, the largest face is used.
    - nothing found and no box: `points` is None with the reason, unless `assume_face` (the
      whole image is the face).
    The net runs once, batched, for every record that needs it.
    """
    from .detection import FaceDetector

    results: list[FaceLandmarks | None] = [None] * len(records)
    todo_images, todo_boxes, todo_rows = [], [], []
    for row, record in enumerate(records):
        given = _given_landmarks(record)
        box = getattr(record, "box", None)
        if given is not None:
            results[row] = FaceLandmarks(given, tuple(box) if box is not None else points_box(given), "dataset")
            continue
        detector = detector or FaceDetector()
        found = detector(record.image, all_faces=box is not None, assume_face=assume_face and box is None)
        if box is not None:
            best = max(found.faces, key=lambda f: _overlap(f.box, box), default=None)
            face_box = best.box if best is not None and _overlap(best.box, box) > 0.3 else tuple(float(v) for v in box)
        elif found.found:
            face_box = found.face.box
        else:
            results[row] = FaceLandmarks(None, None, None, found.reason)
            continue
        todo_images.append(record.image)
        todo_boxes.append(face_box)
        todo_rows.append(row)
    if todo_rows:
        landmarker = landmarker or FaceLandmarker()
        points = landmarker.batch(todo_images, todo_boxes)
        for row, box, p in zip(todo_rows, todo_boxes, points):
            results[row] = FaceLandmarks(p, tuple(float(v) for v in box), "net")
    return results  # type: ignore[return-value]


def landmarks_for(record: Any, detector=None, landmarker: FaceLandmarker | None = None, *, assume_face: bool = False) -> FaceLandmarks:
    """`landmarks_for_records` for one record. Pass a detector and landmarker to reuse them."""
    return landmarks_for_records([record], detector, landmarker, assume_face=assume_face)[0]

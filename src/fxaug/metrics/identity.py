"""Identity preservation: does a transferred face still look like the same person?

The measure is the Euclidean distance between 128-d face descriptors of the source face and the
generated one. The descriptor net is face-api.js's `FaceRecognitionNet` (MIT), itself a conversion
of dlib's ResNet-34-style face recognition model, ported here to PyTorch. dlib and face-api.js
call two faces the same person when their descriptors are closer than 0.6 (`SAME_PERSON`).

    encoder = IdentityEncoder(device="cpu")
    d = identity_distance(sources, outputs, encoder)        # (N,) distances, pair by pair
    identity_preservation(sources, outputs, encoder)        # {"mean": ..., "share_below": ...}

Input: every image is taken to be a face crop (as fxaug's datasets and outputs are). As face-api.js
prepares its input tensors, the crop is padded with black to a square (centred) and resized to
150 x 150 with TF.js's bilinear resize (`tf1_resize_bilinear`); RGB minus the channel means,
divided by 256 (dlib's normalisation; see INPUT_DIVISOR). Gray faces are repeated to three channels.

Weights: `fxaug/assets/face_recognition_model.safetensors` holds the TF.js tensors of npm
`@vladmandic/face-api` 1.7.15 exactly as shipped there: uint8 codes with each tensor's scale and
min (value = code * scale + min, computed as TF.js does), and the few unquantised tensors as
float32. `tfjs_to_safetensors` wrote it from the TF.js manifest (docs/evaluation.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._images import as_uint8_batch, tf1_resize_bilinear

INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
# dlib's input_rgb_image (which the weights were trained behind) and face-api.js divide by 256;
# @vladmandic/face-api's 1.7 builds divide by 255. 256 is the default; 255 reproduces that build.
INPUT_DIVISOR = 256.0
SAME_PERSON = 0.6  # dlib / face-api.js threshold on the Euclidean descriptor distance
WEIGHTS_FILE = "face_recognition_model.safetensors"
SOURCE = "npm @vladmandic/face-api 1.7.15, model/face_recognition_model (TF.js, uint8-quantised)"

# (name, channels in, channels out, downsampling) of the residual layers, in order.
RESIDUAL_LAYERS = (
    ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)


# --------------------------------------------------------------------------------------------
# the net


class ConvScale(nn.Module):
    """face-api.js convLayer: conv + bias, then a per-channel affine "scale" layer (dlib's
    folded batch norm). stride 2 convs use TF 'valid' padding, stride 1 ones 'same'."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride, padding=0 if stride == 2 else kernel // 2)
        self.scale_weight = nn.Parameter(torch.ones(channels_out))
        self.scale_bias = nn.Parameter(torch.zeros(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale_weight.view(1, -1, 1, 1) + self.scale_bias.view(1, -1, 1, 1)


class Residual(nn.Module):
    """face-api.js residual / residualDown. Downsampling: the first conv has stride 2 ('valid'),
    the shortcut is a 2x2 average pool, zero-padded to the new channel count; where the pool is
    one pixel larger than the conv's output, the output gets a zero row and column (bottom, right)."""

    def __init__(self, channels_in: int, channels_out: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(channels_in, channels_out, stride=2 if down else 1)
        self.conv2 = ConvScale(channels_out, channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        shortcut = F.avg_pool2d(x, 2, 2)
        if shortcut.shape[-2:] != out.shape[-2:]:
            out = F.pad(out, (0, 1, 0, 1))
        if shortcut.shape[1] != out.shape[1]:
            shortcut = torch.cat([shortcut, torch.zeros_like(shortcut)], 1)
        return F.relu(out + shortcut)


class FaceRecognitionNet(nn.Module):
    """face-api.js FaceRecognitionNet. Input (N, 3, 150, 150) RGB in 0..255 (already square and
    resized, see `prepare_faces`); output (N, 128) descriptors. input_divisor: see INPUT_DIVISOR."""

    def __init__(self, input_divisor: float = INPUT_DIVISOR):
        super().__init__()
        self.input_divisor = float(input_divisor)
        self.conv32_down = ConvScale(3, 32, kernel=7, stride=2)
        self.layers = nn.ModuleDict({name: Residual(cin, cout, down) for name, cin, cout, down in RESIDUAL_LAYERS})
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb - self.mean) / self.input_divisor
        x = F.max_pool2d(F.relu(self.conv32_down(x)), 3, 2)
        for layer in self.layers.values():
            x = layer(x)
        return self.fc(x.mean(dim=(2, 3)))

    def load_tfjs(self, tensors: dict[str, np.ndarray]) -> "FaceRecognitionNet":
        """Copy face-api.js tensors (by their TF.js names; HWIO conv kernels) into this module."""
        used = set()

        def put(param: torch.Tensor, name: str, *axes: int) -> None:
            array = tensors[name]
            used.add(name)
            value = torch.from_numpy(np.ascontiguousarray(array.transpose(axes) if axes else array))
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
            with torch.no_grad():
                param.copy_(value)

        def put_conv(module: ConvScale, prefix: str) -> None:
            put(module.conv.weight, prefix + "/conv/filters", 3, 2, 0, 1)
            put(module.conv.bias, prefix + "/conv/bias")
            put(module.scale_weight, prefix + "/scale/weights")
            put(module.scale_bias, prefix + "/scale/biases")

        put_conv(self.conv32_down, "conv32_down")
        for name, layer in self.layers.items():
            put_conv(layer.conv1, name + "/conv1")
            put_conv(layer.conv2, name + "/conv2")
        put(self.fc.weight, "fc", 1, 0)
        unused = sorted(set(tensors) - used)
        if unused:
            raise ValueError(f"tensors not used by FaceRecognitionNet: {', '.join(unused[:5])}")
        return self


# --------------------------------------------------------------------------------------------
# weights: TF.js manifest -> safetensors of the same codes -> float32 tensors


def read_tfjs_codes(manifest: str | Path) -> dict[str, tuple[np.ndarray, dict | None]]:
    """The stored form of every tensor of a single-group TF.js weights manifest, by name:
    (uint8/uint16 codes, {"scale", "min"}) for quantised tensors, (float32 values, None) otherwise."""
    manifest = Path(manifest)
    out: dict[str, tuple[np.ndarray, dict | None]] = {}
    for group in json.loads(manifest.read_text()):
        data = b"".join((manifest.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = tuple(spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
            if dtype not in (np.uint8, np.uint16, np.float32):
                raise ValueError(f"{spec['name']}: unsupported stored dtype {dtype}")
            array = np.frombuffer(data, dtype, count, offset).reshape(shape)
            offset += count * dtype.itemsize
            out[spec["name"]] = (array, {"scale": float(quant["scale"]), "min": float(quant["min"])} if quant else None)
        if offset != len(data):
            raise ValueError(f"{manifest}: manifest describes {offset} bytes, weights hold {len(data)}")
    return out


def dequantize(codes: np.ndarray, quant: dict | None) -> np.ndarray:
    """TF.js dequantisation: code * scale + min in double precision, stored as float32."""
    if quant is None:
        return codes.astype(np.float32)
    return (codes.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)


def tfjs_to_safetensors(manifest: str | Path, path: str | Path) -> Path:
    """Write the TF.js tensors to one safetensors file, losslessly: codes stay uint8 (half the size
    of float16, and exact), with "<name>::scale" / "<name>::min" as float64 scalars beside them."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    for name, (codes, quant) in read_tfjs_codes(manifest).items():
        tensors[name] = np.ascontiguousarray(codes)
        if quant is not None:
            tensors[name + "::scale"] = np.array(quant["scale"], np.float64)
            tensors[name + "::min"] = np.array(quant["min"], np.float64)
    path = Path(path)
    save_file(tensors, str(path), metadata={"source": SOURCE, "licence": "MIT", "format": "tfjs-codes"})
    return path


def read_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """float32 tensors by TF.js name from the shipped safetensors file (or `path`)."""
    from safetensors.numpy import load_file

    if path is None:
        from ..assets import asset

        path = asset(WEIGHTS_FILE)
    stored = load_file(str(path))
    out = {}
    for name, codes in stored.items():
        if name.endswith(("::scale", "::min")):
            continue
        quant = None
        if name + "::scale" in stored:
            quant = {"scale": float(stored[name + "::scale"]), "min": float(stored[name + "::min"])}
        out[name] = dequantize(codes, quant)
    return out


def load_face_recognition_net(device: str | torch.device = "cpu", weights: str | Path | None = None,
                              input_divisor: float = INPUT_DIVISOR) -> FaceRecognitionNet:
    """The shipped face-api.js descriptor net, in eval mode, on `device`."""
    return FaceRecognitionNet(input_divisor).load_tfjs(read_weights(weights)).to(device).eval()


# --------------------------------------------------------------------------------------------
# input preparation, as face-api.js does it for tensor inputs


def pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """face-api.js padToSquare(isCenterImage=True): black padding on the short side, round(diff/2)
    after the image and the rest before it."""
    h, w = rgb.shape[:2]
    if h == w:
        return rgb
    diff = abs(h - w)
    after = int(np.floor(diff * 0.5 + 0.5))  # JavaScript Math.round: halves round up
    before = diff - after
    pad = ((0, 0), (before, after), (0, 0)) if h > w else ((before, after), (0, 0), (0, 0))
    return np.pad(rgb, pad)


def prepare_faces(images, device: str | torch.device = "cpu") -> torch.Tensor:
    """Face crops (see `as_uint8_batch` for layouts) -> (N, 3, 150, 150) float RGB in 0..255."""
    out = []
    for rgb in as_uint8_batch(images):
        x = torch.from_numpy(np.array(pad_to_square(rgb), copy=True)).to(device).permute(2, 0, 1)[None].float()
        out.append(tf1_resize_bilinear(x, INPUT_SIZE))
    if not out:
        return torch.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), device=device)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# the measures


class IdentityEncoder:
    """The descriptor net on a device, batched.

        encoder = IdentityEncoder("cuda")
        descriptors = encoder(faces)          # (N, 128) float32 numpy
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64, net: FaceRecognitionNet | None = None):
        self.device = torch.device(device)
        self.net = (net or load_face_recognition_net()).to(self.device).eval()
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images) -> np.ndarray:
        batch = as_uint8_batch(images)
        out = []
        for start in range(0, len(batch), self.batch_size):
            x = prepare_faces(batch[start : start + self.batch_size], self.device)
            out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    def __repr__(self) -> str:
        return f"IdentityEncoder(device={str(self.device)!r})"


def identity_distance(a, b, encoder: IdentityEncoder | None = None) -> np.ndarray:
    """Euclidean descriptor distance of a[i] and b[i], for every i: (N,) float32. Below
    `SAME_PERSON` (0.6) the two faces count as the same person."""
    encoder = encoder or IdentityEncoder()
    da, db = encoder(a), encoder(b)
    if len(da) != len(db):
        raise ValueError(f"{len(da)} faces against {len(db)}: identity distance compares pairs")
    return np.linalg.norm(da - db, axis=1).astype(np.float32)


def summarize_distances(distances: np.ndarray, threshold: float = SAME_PERSON) -> dict[str, Any]:
    """Mean distance and the share of pairs below `threshold` (still "the same person")."""
    d = np.asarray(distances, np.float64)
    return {
        "mean": float(d.mean()) if len(d) else float("nan"),
        "share_below": float((d < threshold).mean()) if len(d) else float("nan"),
        "threshold": threshold,
        "n": int(len(d)),
        "net": "face-api.js FaceRecognitionNet (dlib ResNet-34, 128-d), Euclidean distance",
    }


def identity_preservation(sources, outputs, encoder: IdentityEncoder | None = None,
                          threshold: float = SAME_PERSON) -> dict[str, Any]:
    """How well outputs keep their sources' identity: `summarize_distances` of the pair distances."""
    return summarize_distances(identity_distance(sources, outputs, encoder), threshold)

"""Convert MediaPipe's face mesh landmark model (face_landmark.tflite) into the safetensors file
fxaug ships (`fxaug/assets/face_mesh_landmark.safetensors`), run once by a developer.

    .venv/bin/pip install tflite                      # only for this script; not a dependency
    .venv/bin/python tools/convert_face_mesh.py ../shared/models/mediapipe/face_landmark.tflite

The TFLite flatbuffer holds one graph of 97 operators (CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD,
MAX_POOL_2D, channel PAD; no fused activations) over float16 weights. The file written keeps
the weights as they are (float16, moved to PyTorch layouts: conv OHWI -> OIHW, depthwise
1HWC -> C1HW, PReLU 11C -> C) and the graph, as JSON in the safetensors metadata, which
`fxaug.faces.mesh.FaceMeshNet` executes. If `ai-edge-litert` is installed, the script also runs
both on random and structured inputs and prints the largest difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "fxaug" / "assets" / "face_mesh_landmark.safetensors"


def read_tflite(path: Path) -> tuple[list[dict], dict[str, np.ndarray], str, list[str]]:
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    if model.SubgraphsLength() != 1:
        raise ValueError("expected one subgraph")
    g = model.Subgraphs(0)
    builtin = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    ttype = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

    def tname(i: int) -> str:
        return g.Tensors(i).Name().decode()

    def constant(i: int) -> np.ndarray:
        t = g.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        dtype = {"FLOAT16": np.float16, "FLOAT32": np.float32, "INT32": np.int32}[ttype[t.Type()]]
        return np.frombuffer(np.asarray(data).tobytes(), dtype).reshape(t.ShapeAsNumpy())

    dequantized: dict[str, np.ndarray] = {}  # DEQUANTIZE output name -> float16 constant
    ops: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = builtin[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins, out = [int(i) for i in op.InputsAsNumpy()], tname(op.Outputs(0))
        opts = op.BuiltinOptions()
        if kind == "DEQUANTIZE":
            dequantized[out] = constant(ins[0])
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.FusedActivationFunction() != 0 or o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise ValueError(f"op {k}: unsupported options")
            if kind == "DEPTHWISE_CONV_2D" and o.DepthMultiplier() != 1:
                raise ValueError(f"op {k}: depth multiplier")
            layer = out
            kernel, bias = dequantized[tname(ins[1])], dequantized[tname(ins[2])]
            kernel = kernel.transpose(0, 3, 1, 2) if kind == "CONV_2D" else kernel.transpose(3, 0, 1, 2)
            weights[f"{layer}.weight"], weights[f"{layer}.bias"] = kernel, bias
            ops.append({"op": "conv", "in": tname(ins[0]), "out": out, "layer": layer, "stride": o.StrideH(),
                        "padding": "same" if o.Padding() == 0 else "valid", "depthwise": kind == "DEPTHWISE_CONV_2D"})
        elif kind == "PRELU":
            weights[f"{out}.weight"] = dequantized[tname(ins[1])].reshape(-1)
            ops.append({"op": "prelu", "in": tname(ins[0]), "out": out, "layer": out})
        elif kind == "ADD":
            o = tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.FusedActivationFunction() != 0:
                raise ValueError(f"op {k}: fused activation")
            ops.append({"op": "add", "in": [tname(i) for i in ins], "out": out})
        elif kind == "MAX_POOL_2D":
            o = tflite.Pool2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            if (o.Padding(), o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()) != (1, 2, 2, 2, 2):
                raise ValueError(f"op {k}: only VALID 2x2/2 pooling is supported")
            ops.append({"op": "maxpool2", "in": tname(ins[0]), "out": out})
        elif kind == "PAD":
            pads = constant(ins[1]).tolist()
            if pads[:3] != [[0, 0]] * 3 or pads[3][0] != 0:
                raise ValueError(f"op {k}: only channel padding at the end is supported")
            ops.append({"op": "channel_pad", "in": tname(ins[0]), "out": out, "after": pads[3][1]})
        else:
            raise ValueError(f"op {k}: {kind} not supported")
    inputs = [tname(int(i)) for i in g.InputsAsNumpy()]
    outputs = [tname(int(i)) for i in g.OutputsAsNumpy()]
    if inputs != ["input_1"]:
        raise ValueError(f"inputs {inputs}")
    return ops, weights, inputs[0], outputs


def compare_with_litert(tflite_path: Path, out_path: Path) -> None:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        print("ai-edge-litert not installed: no comparison with the reference runtime")
        return
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from fxaug.faces.mesh import load_face_mesh_net

    net = load_face_mesh_net(out_path)
    it = Interpreter(model_path=str(tflite_path))
    it.allocate_tensors()
    (inp,), outs = it.get_input_details(), it.get_output_details()
    rng = np.random.default_rng(0)
    for trial in range(3):
        x = rng.random((1, 192, 192, 3), np.float32)
        it.set_tensor(inp["index"], x)
        it.invoke()
        ref = {d["name"]: it.get_tensor(d["index"]).reshape(-1) for d in outs}
        with torch.no_grad():
            mesh, logit = net(torch.from_numpy(x).permute(0, 3, 1, 2))
        print(f"random input {trial}: max |mesh - litert| = {np.abs(mesh.numpy().reshape(-1) - ref['conv2d_21']).max():.2e} px, "
              f"|score logit diff| = {abs(float(logit) - float(ref['conv2d_31'][0])):.2e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tflite", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from safetensors.numpy import save_file

    ops, weights, inp, outputs = read_tflite(args.tflite)
    metadata = {
        "graph": json.dumps({"input": inp, "outputs": outputs, "ops": ops}),
        "source": "MediaPipe face_landmark.tflite (npm @mediapipe/face_mesh), Apache-2.0",
        "source_sha256": hashlib.sha256(args.tflite.read_bytes()).hexdigest(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v.astype(np.float16)) for k, v in weights.items()}, str(args.out), metadata)
    print(f"{args.out}: {len(ops)} ops, {sum(v.size for v in weights.values())} weights, {args.out.stat().st_size} bytes")
    compare_with_litert(args.tflite, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

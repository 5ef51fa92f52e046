"""The 68-point landmarks: the face-api.js net and MediaPipe's face mesh in PyTorch (weight reading,
the TF padding rule, the mesh graph against LiteRT's output), accuracy of the default landmarker
(both nets averaged) on real faces (against YuNet's eye points, and under mirroring), crops,
records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fxaug.data import FaceRecord
from fxaug.faces import FLIP_PERMUTATION, FaceDetector, FaceLandmarker, eye_centres, landmarks_for, landmarks_for_records
from fxaug.faces.landmarks import (
    ENSEMBLE_CROPS,
    INPUT_SIZE,
    LandmarkNet,
    _pad_same,
    crop_square,
    crop_to_image,
    load_landmark_net,
    read_tfjs_weights,
    square_crop_box,
)
from fxaug.faces.mesh import MESH_TO_IBUG68, load_face_mesh_net, mesh_crop, mesh_crop_matrix, mesh_to_ibug68, mesh_to_image
from fxaug.assets import LANDMARK68_MANIFEST, LANDMARK68_WEIGHTS

from faces_data import detector, fer_faces, landmarker, news_photos, rgb


# -- weights ----------------------------------------------------------------------------------


def test_tfjs_reader_dequantises_and_reads_float_tensors(tmp_path):
    codes = np.array([0, 1, 255, 128], np.uint8)
    plain = np.array([1.5, -2.25], np.float32)
    manifest = [{
        "paths": ["w.bin"],
        "weights": [
            {"name": "q", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
            {"name": "f", "shape": [2], "dtype": "float32"},
        ],
    }]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    (tmp_path / "w.bin").write_bytes(codes.tobytes() + plain.tobytes())
    tensors = read_tfjs_weights(tmp_path / "m.json")
    np.testing.assert_array_equal(tensors["q"], (codes.astype(np.float32) * 0.5 - 1.0).reshape(2, 2))
    np.testing.assert_array_equal(tensors["f"], plain)
    (tmp_path / "w.bin").write_bytes(codes.tobytes())  # truncated
    with pytest.raises(ValueError):
        read_tfjs_weights(tmp_path / "m.json")


def test_bundled_weights_fill_every_parameter():
    tensors = read_tfjs_weights(LANDMARK68_MANIFEST, LANDMARK68_WEIGHTS)
    manifest = json.loads(LANDMARK68_MANIFEST.read_text())
    specs = {w["name"]: w for group in manifest for w in group["weights"]}
    assert set(tensors) == set(specs)
    for name, spec in specs.items():
        assert list(tensors[name].shape) == spec["shape"]
        q = spec["quantization"]
        assert tensors[name].min() >= q["min"] - 1e-6 and tensors[name].max() <= q["min"] + 255 * q["scale"] + 1e-5
    net = LandmarkNet().load_tfjs(tensors)
    loaded = sum(p.numel() for p in net.parameters())
    assert loaded == sum(int(np.prod(s["shape"])) for s in specs.values())
    # a transposed copy, not a reshaped one: TF's HWIO filter [kh, kw, in, out] -> torch [out, in, kh, kw]
    np.testing.assert_array_equal(net.dense0.conv0.conv.weight[5, 2].detach().numpy(), tensors["dense0/conv0/filters"][:, :, 2, 5])
    np.testing.assert_array_equal(net.fc.weight[7].detach().numpy(), tensors["fc/weights"][:, 7])


def test_tf_same_padding_puts_the_extra_row_and_column_bottom_right():
    """At stride 2 on an even size TF pads only after: output (i, j) centres on input (2i+1, 2j+1),
    so a 3x3 kernel tapping its top-left reads input (2i, 2j)."""
    x = torch.arange(8 * 8, dtype=torch.float32).view(1, 1, 8, 8)
    kernel = torch.zeros(1, 1, 3, 3)
    kernel[0, 0, 0, 0] = 1
    out = F.conv2d(_pad_same(x, 2), kernel, stride=2)
    assert out.shape[-2:] == (4, 4)
    torch.testing.assert_close(out, x[:, :, ::2, ::2])
    assert _pad_same(x, 1).shape[-2:] == (10, 10)


def test_net_is_batch_independent():
    net = load_landmark_net()
    x = torch.rand(3, 3, INPUT_SIZE, INPUT_SIZE) * 255
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert together.shape == (3, 68, 2)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


# -- the face mesh graph --------------------------------------------------------------------------


def test_face_mesh_matches_litert_on_a_fixed_input():
    """Reference values: MediaPipe's face_landmark.tflite run by LiteRT (ai-edge-litert 2.3.0) on
    this synthetic input (tools/convert_face_mesh.py compares random inputs the same way)."""
    yy, xx = np.mgrid[0:192, 0:192] / 191.0
    x = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx) * np.cos(4 * yy)], -1)[None].astype(np.float32)
    with torch.no_grad():
        mesh, logit = load_face_mesh_net()(torch.from_numpy(x).permute(0, 3, 1, 2))
    assert mesh.shape == (1, 468, 3) and logit.shape == (1,)
    litert = np.array([
        [101.1969, 124.2594, -6.8929], [57.5352, 76.6279, -5.0278], [82.0404, 77.6476, -4.7522],
        [134.456, 73.2567, 8.7454], [113.5331, 76.0732, 1.385], [101.0006, 157.1646, 13.9533],
    ])
    np.testing.assert_allclose(mesh[0, [0, 33, 133, 263, 362, 152]].numpy(), litert, atol=2e-3)
    assert abs(float(logit[0]) - (-8.3446)) < 2e-3


def test_mesh_crop_maps_points_back_and_mirrors():
    image = np.zeros((60, 80, 3), np.uint8)
    image[20, 30] = 255
    box = (10.0, 5.0, 40.0, 44.0)
    m = mesh_crop_matrix(box)
    crop = mesh_crop(image, m)
    v, u = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    # the brightest crop pixel maps back onto the bright image pixel (edge -> centre convention)
    np.testing.assert_allclose(mesh_to_image(np.array([[u + 0.5, v + 0.5]]), m)[0], [30, 20], atol=0.5)
    mirrored = mesh_crop(image[:, ::-1].copy(), mesh_crop_matrix((80 - 10.0 - 40.0, 5.0, 40.0, 44.0)))
    np.testing.assert_array_equal(mirrored, crop[:, ::-1])


def test_mesh_to_ibug68_indexes_the_mesh():
    assert MESH_TO_IBUG68.shape == (68, 2) and MESH_TO_IBUG68.min() >= 0 and MESH_TO_IBUG68.max() < 468
    mesh = np.random.default_rng(0).normal(size=(2, 468, 2))
    out = mesh_to_ibug68(mesh)
    np.testing.assert_allclose(out[:, 8], mesh[:, 152])  # chin
    np.testing.assert_allclose(out[:, 57], (mesh[:, 84] + mesh[:, 314]) / 2)


def test_landmarker_nets_are_checked():
    with pytest.raises(ValueError):
        FaceLandmarker(nets=())
    with pytest.raises(ValueError):
        FaceLandmarker(nets=("dlib",))
    lm = FaceLandmarker(nets=("mesh",), mesh_net=landmarker().mesh_net)
    assert lm.net is None and "mesh" in repr(lm)
    with pytest.raises(RuntimeError):
        lm.run_crops(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))


# -- accuracy on real faces ---------------------------------------------------------------------


# The default landmarker (face-api.js net + face mesh, averaged) on these 100 news photos (seed 10),
# as docs/faces.md gives them; the tests allow 2 points below (float differences across machines).
# This slice is harder than the benchmark's: face-api.js alone gets 71% / 78% here, the mesh alone
# 69% / 84%.
DOCUMENTED_100 = {"eye_within_10pct_iod_of_yunet": 0.69 - 0.02, "flip_within_5pct_iod": 0.93 - 0.02}


@pytest.fixture(scope="module")
def news_landmarks():
    images = [image for image in news_photos(100)]
    found = [detector()(image) for image in images]
    keep = [i for i, f in enumerate(found) if f.found]
    images = [images[i] for i in keep]
    faces = [found[i].face for i in keep]
    points = landmarker().batch(images, [f.box for f in faces])
    return images, faces, points


def _eye_error(eyes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per face, the larger of the two eye distances, in units of the reference's IOD."""
    iod = np.linalg.norm(reference[:, 1] - reference[:, 0], axis=1)
    return np.linalg.norm(eyes - reference, axis=2).max(axis=1) / iod


def _yunet_eyes(image: np.ndarray, target_size: int = 320, mirrored: bool = False) -> np.ndarray:
    found = FaceDetector(target_size=target_size)(image[:, ::-1] if mirrored else image)
    eyes = found.face.points[:2].astype(np.float64)
    if mirrored:
        eyes = eyes[::-1].copy()
        eyes[:, 0] = image.shape[1] - 1 - eyes[:, 0]
    return eyes


def test_eye_centres_agree_with_yunet(news_landmarks):
    """The net's eye centres against YuNet's eye points. YuNet's own points are not steady: on the
    mirrored photo, or at another input scale, they land within 10% IOD of the one-pass points
    for only ~70-80% of news faces, which bounds any agreement with them. So the net is held to
    agree with one-pass YuNet about as often as YuNet agrees with itself, and closely with YuNet's
    median over the mirror and two more scales (a steadier reference).
    benchmarks/faces_accuracy.py has the full figures."""
    images, faces, points = news_landmarks
    one_pass = np.stack([f.points[:2] for f in faces]).astype(np.float64)
    net = np.stack([eye_centres(p) for p in points])
    mirrored = np.stack([_yunet_eyes(image, mirrored=True) for image in images])
    steady = np.median(np.stack([one_pass, mirrored, *[np.stack([_yunet_eyes(im, size) for im in images]) for size in (384, 448)]]), axis=0)
    net_vs_one_pass = np.mean(_eye_error(net, one_pass) < 0.10)
    yunet_vs_itself = np.mean(_eye_error(mirrored, one_pass) < 0.10)
    assert net_vs_one_pass >= yunet_vs_itself - 0.08, (net_vs_one_pass, yunet_vs_itself)
    steady_error = _eye_error(net, steady)
    assert np.mean(steady_error < 0.10) >= 0.80
    assert np.median(steady_error) < 0.06
    assert np.mean(steady_error < 0.25) >= 0.93  # the rest: profiles and very dark faces


def test_default_landmarker_hits_its_documented_eye_agreement(news_landmarks):
    images, faces, points = news_landmarks
    one_pass = np.stack([f.points[:2] for f in faces]).astype(np.float64)
    error = _eye_error(np.stack([eye_centres(p) for p in points]), one_pass)
    assert np.mean(error < 0.10) >= DOCUMENTED_100["eye_within_10pct_iod_of_yunet"]
    assert np.median(error) < 0.075


def test_landmarks_are_flip_consistent(news_landmarks):
    images, faces, points = news_landmarks
    mirrored_images = [image[:, ::-1] for image in images]
    mirrored_boxes = [(im.shape[1] - f.box[0] - f.box[2], f.box[1], f.box[2], f.box[3]) for im, f in zip(images, faces)]
    mirrored = landmarker().batch(mirrored_images, mirrored_boxes)
    back = mirrored[:, FLIP_PERMUTATION].astype(np.float64)
    back[..., 0] = np.array([im.shape[1] for im in images])[:, None] - 1 - back[..., 0]
    iod = np.array([np.linalg.norm(np.diff(eye_centres(p), axis=0)) for p in points])
    error = np.linalg.norm(back - points, axis=2).mean(axis=1) / iod
    assert np.median(error) < 0.035
    assert np.mean(error < 0.05) >= DOCUMENTED_100["flip_within_5pct_iod"]


def test_flip_permutation_is_an_involution_that_swaps_sides():
    assert sorted(FLIP_PERMUTATION) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))
    assert FLIP_PERMUTATION[36] == 45 and FLIP_PERMUTATION[48] == 54 and FLIP_PERMUTATION[8] == 8


def test_fer_landmarks_have_a_face_layout():
    faces = fer_faces(100)[:30]
    found = [(f, detector()(f)) for f in faces]
    found = [(f, d.face) for f, d in found if d.found]
    points = landmarker().batch([f for f, _ in found], [d.box for _, d in found])
    for p in points:
        right_eye, left_eye = eye_centres(p)
        assert right_eye[0] < left_eye[0]
        assert max(right_eye[1], left_eye[1]) < p[33, 1] < p[51, 1] < p[57, 1] < p[8, 1]  # eyes, nose, lips, chin
        assert -8 < p[:, 0].min() and p[:, 0].max() < 56 and p[:, 1].max() < 60


def test_ensemble_crops_stay_close_to_the_single_crop(news_landmarks):
    images, faces, points = news_landmarks
    ensemble = FaceLandmarker(crops=ENSEMBLE_CROPS, net=landmarker().net).batch(images[:20], [f.box for f in faces[:20]])
    iod = np.array([np.linalg.norm(np.diff(eye_centres(p), axis=0)) for p in points[:20]])
    assert np.median(np.linalg.norm(ensemble - points[:20], axis=2).mean(axis=1) / iod) < 0.05


# -- crops and devices ---------------------------------------------------------------------------


def test_square_crop_of_a_mirrored_box_is_the_mirrored_crop():
    width = 131
    # (exact .5 ties aside, which no rounding rule can make symmetric: YuNet's boxes are floats)
    for box in [(10.3, 5.7, 60.2, 71.9), (0.7, 0.5, 40.0, 40.0), (70.25, 20.0, 55.5, 50.1)]:
        x0, y0, side = square_crop_box(box)
        mx0, my0, mside = square_crop_box((width - box[0] - box[2], box[1], box[2], box[3]))
        assert (mside, my0) == (side, y0) and mx0 == width - x0 - side


def test_crop_square_pads_black_outside_and_maps_points_back():
    image = np.full((40, 60, 3), 200, np.uint8)
    crop = crop_square(image, -10, -10, 40, size=40)
    assert (crop[:10, :10] == 0).all() and (crop[20:, 20:] == 200).all()
    # relative (0.5, 0.5) is the crop's centre: pixel centre x0 + side / 2 - 0.5
    np.testing.assert_allclose(crop_to_image(np.array([[0.5, 0.5]]), -10, -10, 40), [[9.5, 9.5]])


def test_single_and_batch_calls_agree_and_grey_equals_rgb():
    image = fer_faces(100)[5]
    box = detector()(image).face.box
    one = landmarker()(image, box)
    np.testing.assert_allclose(one, landmarker().batch([image, rgb(image)], [box, box])[1], atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    image = news_photos(100)[7]
    box = detector()(image).face.box
    cuda = FaceLandmarker("cuda")
    np.testing.assert_allclose(cuda(image, box), landmarker()(image, box), atol=0.05)


def test_landmarker_moves_between_devices():
    lm = FaceLandmarker(net=landmarker().net).to("cpu")
    assert lm.device == torch.device("cpu") and next(lm.net.parameters()).device.type == "cpu"


# -- records: dataset landmarks first ------------------------------------------------------------


def test_records_with_landmarks_use_them_as_they_are():
    given = np.random.default_rng(0).uniform(5, 40, (68, 2)).astype(np.float32)
    record = FaceRecord(image=fer_faces(100)[6], emotion="happy", source_id="0", box=(1.0, 2.0, 40.0, 44.0), landmarks=given)
    result = landmarks_for(record, detector(), landmarker())
    assert result.source == "dataset" and result.box == (1.0, 2.0, 40.0, 44.0)
    np.testing.assert_array_equal(result.points, given)


def test_records_without_landmarks_run_the_net_once_batched():
    faces = fer_faces(100)
    blank = np.full((48, 48), 127, np.uint8)
    records = [
        FaceRecord(image=faces[7], emotion="sad", source_id="a"),
        FaceRecord(image=blank, emotion="sad", source_id="b"),
        FaceRecord(image=faces[8], emotion="sad", source_id="c", box=(0.0, 0.0, 48.0, 48.0)),
        FaceRecord(image=blank, emotion="sad", source_id="d", box=(4.0, 4.0, 40.0, 40.0)),
    ]
    results = landmarks_for_records(records, detector(), landmarker())
    assert [r.source for r in results] == ["net", None, "net", "net"]
    assert results[1].points is None and "no face found" in results[1].reason
    # the dataset box picks the overlapping YuNet face, whose box the net's crops are tuned to
    assert results[2].box == detector()(faces[8]).face.box
    assert results[3].box == (4.0, 4.0, 40.0, 40.0)  # no face detected there: the given box
    expected = landmarker()(faces[7], detector()(faces[7]).face.box)
    np.testing.assert_allclose(results[0].points, expected, atol=1e-4)
    assumed = landmarks_for(records[1], detector(), landmarker(), assume_face=True)
    assert assumed.found and assumed.box == (0.0, 0.0, 48.0, 48.0)

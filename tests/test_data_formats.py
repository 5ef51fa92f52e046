"""Real FER2013 faces written into every supported layout read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_writers import (
    write_affectnet,
    write_class_folders,
    write_fer2013_csv,
    write_ferplus_csv,
)

from fxaug import emotions as E
from fxaug.data import (
    AffectNetReader,
    ClassFolderReader,
    Fer2013Reader,
    HFDatasetReader,
    detect_format,
    open_dataset,
)

N = 300


@pytest.fixture(scope="module")
def faces(fer):
    rows = fer.sample(N, seed=1)
    return [(int(r), fer.images[r], fer.emotion(r)) for r in rows]


def _by_id(reader):
    return {rec.source_id: rec for rec in reader}


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_class_folders_png_pixel_equal(tmp_path, faces, color):
    written = write_class_folders(tmp_path, faces)
    reader = open_dataset(tmp_path, color=color)
    assert reader.format == "folders"
    got = _by_id(reader)
    assert set(got) == set(written)
    for rel, (image, emotion, _) in written.items():
        rec = got[rel]
        assert rec.emotion == emotion
        if color == "gray":
            np.testing.assert_array_equal(rec.image, image)
        else:
            assert rec.image.shape == (*image.shape, 3)
            for c in range(3):
                np.testing.assert_array_equal(rec.image[..., c], image)
    assert reader.report.count("skipped") == 0 and reader.report.count("converted") == 0
    assert reader.report.read == N


@pytest.mark.parametrize("ext, lossless", [(".bmp", True), (".tif", True), (".webp", False), (".jpg", False)])
def test_class_folders_other_formats(tmp_path, faces, ext, lossless):
    subset = faces[:40]
    written = write_class_folders(tmp_path, subset, ext=ext)
    got = _by_id(open_dataset(tmp_path, color="gray"))
    assert set(got) == set(written)
    for rel, (image, emotion, _) in written.items():
        assert got[rel].emotion == emotion
        diff = np.abs(got[rel].image.astype(int) - image.astype(int))
        assert diff.max() == 0 if lossless else diff.mean() < 2


def test_class_folders_with_splits_and_aliases(tmp_path, faces):
    splits = {row: ("train", "val", "test")[i % 3] for i, (row, _, _) in enumerate(faces)}
    alias = {"happy": "Happiness", "sad": "sadness", "anger": "Angry", "surprise": "surprised",
             "fear": "fearful", "disgust": "Disgusted", "neutral": "Neutral", "contempt": "contempt"}
    written = write_class_folders(tmp_path, faces, splits=splits, name_style=alias.get)
    reader = open_dataset(tmp_path, color="gray")
    assert reader.split_dirs == ["test", "train", "val"]
    got = _by_id(reader)
    assert set(got) == set(written)
    for rel, (image, emotion, split) in written.items():
        assert (got[rel].emotion, got[rel].split) == (emotion, split)
        np.testing.assert_array_equal(got[rel].image, image)
    only_test = open_dataset(tmp_path, color="gray", splits="test")
    assert {r.split for r in only_test} == {"test"}


@pytest.mark.parametrize("scheme", ["affectnet", "rafdb", "fer2013"])
def test_numeric_class_folders(tmp_path, faces, scheme):
    table = {name: code for code, name in E.SCHEMES[scheme].items()}
    usable = [f for f in faces if f[2] in table]
    written = write_class_folders(tmp_path, usable, name_style=lambda e: str(table[e]))
    if scheme == "fer2013":
        # 0-6 fits AffectNet too (without contempt): must be told, and the error says how.
        with pytest.raises(ValueError, match="scheme="):
            open_dataset(tmp_path)
        reader = open_dataset(tmp_path, scheme="fer2013")
    else:
        reader = open_dataset(tmp_path)
        assert reader.scheme == scheme
    got = _by_id(reader)
    assert {k: v.emotion for k, v in got.items()} == {k: v[1] for k, v in written.items()}


def test_affectnet_layout(tmp_path, faces):
    extra = [
        ("training.csv", ["1/none.png", 0, 0, 48, 48, "", 8, 0, 0]),
        ("training.csv", ["1/uncertain.png", 0, 0, 48, 48, "", 9, 0, 0]),
        ("validation.csv", ["1/noface.png", 0, 0, 48, 48, "", 10, 0, 0]),
    ]
    expected = write_affectnet(tmp_path, faces, extra_rows=extra)
    assert detect_format(tmp_path) == "affectnet"
    assert detect_format(tmp_path / "training.csv") == "affectnet"
    reader = open_dataset(tmp_path, color="gray")
    assert isinstance(reader, AffectNetReader)
    assert reader.image_root.endswith("Manually_Annotated_Images")
    got = {rec.source_id.split(":", 1)[1]: rec for rec in reader}
    assert set(got) == set(expected)
    for rel, (image, emotion, split, box, landmarks) in expected.items():
        rec = got[rel]
        np.testing.assert_array_equal(rec.image, image)
        assert (rec.emotion, rec.split, rec.box) == (emotion, split, box)
        np.testing.assert_allclose(rec.landmarks, landmarks, atol=1e-4)
        assert rec.meta == {"valence": 0.25, "arousal": -0.5}
    assert reader.report.count("excluded") == 3 and reader.report.count("skipped") == 0
    train_only = open_dataset(tmp_path / "training.csv", color="gray")
    assert {r.split for r in train_only} == {"train"}


def test_fer2013_csv(tmp_path, fer, faces):
    rows = [r for r, _, _ in faces]
    write_fer2013_csv(tmp_path / "fer2013.csv", fer, rows)
    assert detect_format(tmp_path) == "fer2013"
    reader = open_dataset(tmp_path / "fer2013.csv", color="gray")
    records = list(reader)
    assert len(records) == len(rows)
    for i, (rec, row) in enumerate(zip(records, rows)):
        assert rec.source_id == f"fer2013.csv:{i}"
        assert rec.emotion == fer.fer_names[fer.fer_label[row]]  # FER2013's own label
        assert rec.split == "Training"
        np.testing.assert_array_equal(rec.image, fer.images[row])


def test_ferplus_majority_labels(tmp_path, fer):
    # Include rows FERPlus drops (no majority, unnamed) to check they are excluded, not lost.
    rng = np.random.default_rng(3)
    dropped = rng.choice(np.flatnonzero(fer.majority < 0), 30, replace=False)
    kept = fer.sample(N, seed=2, usage=None)
    rows = np.sort(np.concatenate([kept, dropped]))
    write_fer2013_csv(tmp_path / "fer2013.csv", fer, rows)
    write_ferplus_csv(tmp_path / "fer2013new.csv", fer, rows)
    assert detect_format(tmp_path) == "ferplus"
    assert detect_format(tmp_path / "fer2013new.csv") == "ferplus"
    for source in (tmp_path, tmp_path / "fer2013new.csv"):
        reader = open_dataset(source, color="gray")
        assert isinstance(reader, Fer2013Reader) and reader.format == "ferplus"
        got = {int(rec.source_id.split(":")[1]): rec for rec in reader}
        expect = {i: row for i, row in enumerate(rows) if fer.majority[row] >= 0}
        assert set(got) == set(expect)
        for i, row in expect.items():
            assert got[i].emotion == fer.emotion(row)
            assert got[i].meta["ferplus_votes"] == list(map(int, fer.votes[row]))
            np.testing.assert_array_equal(got[i].image, fer.images[row])
        assert reader.report.count("excluded") == len(rows) - len(expect)
        assert reader.report.count("skipped") == 0
    # The same folder read as plain fer2013 keeps FER2013's labels.
    plain = open_dataset(tmp_path, format="fer2013")
    assert plain.format == "fer2013" and len(list(plain.entries())) == len(rows)


def _hf_dataset(faces, label_feature):
    import datasets
    from PIL import Image

    if label_feature == "classlabel":
        names = ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
        labels = [names.index({"happy": "happiness", "sad": "sadness"}.get(e, e)) for _, _, e in faces]
        feature = datasets.ClassLabel(names=names)
    elif label_feature == "string":
        labels = [e for _, _, e in faces]
        feature = datasets.Value("string")
    else:
        labels = [E.index(e) for _, _, e in faces]
        feature = datasets.Value("int64")
    return datasets.Dataset.from_dict(
        {"img": [Image.fromarray(im) for _, im, _ in faces], "emotion_id": labels},
        features=datasets.Features({"img": datasets.Image(), "emotion_id": feature}),
    )


@pytest.mark.parametrize("label_feature", ["classlabel", "string", "int"])
def test_hf_dataset(faces, label_feature):
    ds = _hf_dataset(faces, label_feature)
    kwargs = {"image_column": "img", "label_column": "emotion_id", "color": "gray"}
    if label_feature == "int":
        with pytest.raises(ValueError, match="integer labels need scheme="):
            open_dataset(ds, **kwargs)
        kwargs["scheme"] = "affectnet"
    reader = open_dataset(ds, **kwargs)
    assert isinstance(reader, HFDatasetReader)
    records = list(reader)
    assert len(records) == len(faces)
    for rec, (_, image, emotion) in zip(records, faces):
        assert rec.emotion == emotion
        np.testing.assert_array_equal(rec.image, image)


def test_hf_parquet_and_save_to_disk(tmp_path, faces):
    ds = _hf_dataset(faces, "string").rename_columns({"img": "image", "emotion_id": "label"})
    ds.to_parquet(str(tmp_path / "faces.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for source in (tmp_path / "faces.parquet", tmp_path / "saved"):
        assert detect_format(source) == "hf"
        records = list(open_dataset(source, color="gray"))
        assert [r.emotion for r in records] == [e for _, _, e in faces]
        for rec, (_, image, _) in zip(records, faces):
            np.testing.assert_array_equal(rec.image, image)


def test_hf_missing_column_is_named(faces):
    ds = _hf_dataset(faces[:3], "string")
    with pytest.raises(ValueError, match="no image column 'image'.*img"):
        open_dataset(ds)


def test_news_photos_parquet(lfw_parquet):
    """The shared news-photo set (mixed grayscale/RGB JPEG, string labels) reads as hf."""
    reader = open_dataset(lfw_parquet)
    counts = reader.class_counts()
    assert counts["neutral"] == 5299 and counts["happy"] == 4452 and sum(counts.values()) == 10718
    first = [rec for _, rec in zip(range(50), reader)]
    assert all(r.image.ndim == 3 and r.image.shape[2] == 3 and r.image.dtype == np.uint8 for r in first)


def test_auto_detection_explains_failure(tmp_path):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="format not recognised"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown format"):
        open_dataset(tmp_path, format="imagenet")


def test_counts_do_not_decode(tmp_path, faces):
    write_class_folders(tmp_path, faces)
    reader = ClassFolderReader(tmp_path)
    counts = reader.class_counts()
    assert sum(counts.values()) == N and reader.report.read == 0
    assert list(counts) == [e for e in E.EMOTIONS if e in counts]


def test_streaming_memory_is_bounded(tmp_path, fer):
    """Reading 3,000 faces holds one at a time: peak Python allocation stays far below the
    size of the decoded set (3,000 x 48 x 48 x 3 bytes = 20.7 MB)."""
    import tracemalloc

    rows = fer.sample(3000, seed=5)
    write_class_folders(tmp_path, [(int(r), fer.images[r], fer.emotion(r)) for r in rows])
    reader = open_dataset(tmp_path)
    tracemalloc.start()
    n = sum(1 for _ in reader)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == len(rows) > 2000
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB while streaming"

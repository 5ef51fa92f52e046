"""fxaug.figures read back from their pixels: bars to scale (lengths measured in pixels against
the numbers drawn), empty and many classes, faces pasted where the contact sheet says, the
same data giving the same bytes, and labels with characters Pillow's bundled font lacks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figure_pixels import bar_lengths, bars
from fxaug import emotions as E
from fxaug.figures import (
    BAR,
    BAR_WIDTH,
    HISTOGRAM_WIDTH,
    INK,
    MADE,
    ORIGINAL,
    bar_panels,
    class_histogram,
    contact_sheet,
)
from fxaug.io import write_image

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample"


def _face(emotion: str, k: int = 0) -> np.ndarray:
    """A real 48 px FER face from the bundled sample (grey, H x W)."""
    return np.asarray(Image.open(sorted((SAMPLE / emotion).glob("*.png"))[k]))


# -- class_histogram ----------------------------------------------------------------------------

def test_histogram_bars_are_the_counts_to_scale():
    # the bundled sample's classes, filled as `fxaug rebalance --target 30` fills them
    counts = {"neutral": 30, "happy": 24, "sad": 12, "surprise": 10, "fear": 6, "disgust": 4, "anger": 10, "contempt": 4}
    final = {**{c: 30 for c in counts}, "disgust": 4, "contempt": 4}  # two classes the model cannot make
    image = class_histogram(counts, final)
    scale = HISTOGRAM_WIDTH / 30
    found = bar_lengths(image, ORIGINAL)
    made = bar_lengths(image, MADE)
    assert found[0] == made[0] == 13  # the legend's swatches, then one bar per class
    assert found[1:] == [round(n * scale) for n in counts.values()]
    assert made[1:] == [round(final[c] * scale) - round(n * scale) for c, n in counts.items() if final[c] > n]
    # a class's orange bar starts where its grey bar ends, on the same rows
    grey, orange = bars(image, ORIGINAL)[2], bars(image, MADE)[1]  # happy: 24 found, 6 made
    assert orange[0] == grey[0] and orange[1] == grey[1] + grey[2]
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_histogram_empty_class_and_a_class_filled_from_nothing():
    image = class_histogram({"neutral": 40, "fear": 0, "contempt": 0}, {"neutral": 40, "fear": 0, "contempt": 20})
    scale = HISTOGRAM_WIDTH / 40
    assert bar_lengths(image, ORIGINAL)[1:] == [round(40 * scale)]  # fear and contempt: no grey bar
    assert bar_lengths(image, MADE)[1:] == [round(20 * scale)]  # contempt: orange from the axis on
    (_, x_found, _), (_, x_made, _) = bars(image, ORIGINAL)[1], bars(image, MADE)[1]
    assert x_made == x_found
    # one image among many still shows: a bar of at least one pixel
    tiny = class_histogram({"neutral": 100_000, "contempt": 1}, {"neutral": 100_000, "contempt": 1})
    assert bar_lengths(tiny, ORIGINAL)[1:] == [HISTOGRAM_WIDTH, 1]


def test_histogram_grows_a_row_per_class_and_marks_goals():
    few = class_histogram({"neutral": 5, "happy": 2}, {"neutral": 5, "happy": 5})
    many = class_histogram({f"class{i}": i + 1 for i in range(40)}, {f"class{i}": 40 for i in range(40)})
    row = (many.shape[0] - few.shape[0]) / 38
    assert row == int(row) and row > 0 and many.shape[1] == few.shape[1]
    assert len(bar_lengths(many, ORIGINAL)) == 41 and len(bar_lengths(many, MADE)) == 40  # legend + 39 filled
    # the goal line (ink) sits where the goal is on the scale, also past a bar that fell short
    short = class_histogram({"neutral": 10, "sad": 2}, {"neutral": 10, "sad": 6}, goal={"neutral": 10, "sad": 10})
    (top, x0, length) = bars(short, MADE)[1]
    ink_columns = np.flatnonzero(np.all(short[top + 5] == INK, axis=1))
    goal_x = x0 - round(2 * HISTOGRAM_WIDTH / 10) + HISTOGRAM_WIDTH
    assert len(ink_columns) and min(abs(ink_columns - goal_x)) <= 1 and x0 + length < goal_x - 1
    with pytest.raises(ValueError, match="no classes"):
        class_histogram({}, {})


# -- contact_sheet ------------------------------------------------------------------------------

def _find(sheet: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    """Every (row, column) where `tile` appears in `sheet` pixel for pixel."""
    h, w = tile.shape[:2]
    ys, xs = np.nonzero(np.all(sheet[: sheet.shape[0] - h + 1, : sheet.shape[1] - w + 1] == tile[0, 0], axis=2))
    return [(int(y), int(x)) for y, x in zip(ys, xs) if np.array_equal(sheet[y:y + h, x:x + w], tile)]


def test_contact_sheet_pastes_each_real_face_scaled_beside_its_source():
    pairs = [(_face("neutral", k), _face("happy", k), f"from neutral, identity 0.{k}1") for k in range(5)]
    sheet = contact_sheet([("happy: 5 made", pairs), ("sad: 0 made", [])], cell=96, columns=4)
    found = []
    for source, made, _ in pairs:
        want = [np.asarray(Image.fromarray(face).convert("RGB").resize((96, 96), Image.Resampling.BICUBIC))
                for face in (source, made)]
        where = [_find(sheet, tile) for tile in want]
        assert len(where[0]) == 1 and len(where[1]) == 1, where
        (ys, xs), (ym, xm) = where[0][0], where[1][0]
        assert ym == ys and xm > xs + 96  # the synthesized face right of its source, same line
        found.append((ys, xs))
    # four pairs to a line, in order; the fifth starts the next line
    assert len({y for y, _ in found[:4]}) == 1 and found[4][0] > found[0][0]
    assert [x for _, x in found[:4]] == sorted(x for _, x in found[:4]) and found[4][1] == found[0][1]
    assert sheet.shape[1] > 4 * 2 * 96


def test_contact_sheet_fits_any_shape_and_sizes_by_groups():
    wide = np.full((30, 60, 3), (200, 10, 10), np.uint8)  # a solid colour survives resizing exactly
    made = np.full((60, 30, 3), (10, 200, 10), np.uint8)
    sheet = contact_sheet([("a", [(wide, made, "x")])], cell=64, columns=2)
    assert np.all(sheet == (200, 10, 10), axis=2).sum() == 64 * 32  # scaled to fit the cell, not stretched
    assert np.all(sheet == (10, 200, 10), axis=2).sum() == 32 * 64
    one = contact_sheet([("a", [])], cell=64, columns=2)
    three = contact_sheet([("a", []), ("b", []), ("c", [])], cell=64, columns=2)
    assert one.shape[1] == three.shape[1] and three.shape[0] > one.shape[0]
    with pytest.raises(TypeError, match="uint8"):
        contact_sheet([("a", [(wide.astype(np.float32), made, "x")])])
    with pytest.raises(ValueError, match="no groups"):
        contact_sheet([])


# -- bar_panels (fxaug eval's figure) -----------------------------------------------------------

def test_bar_panels_scale_each_panel_to_its_largest_value():
    panels = [("accuracy", [("a", 1.0, "1.000"), ("b", 0.5, "0.500"), ("c", 0.25, "0.250")]),
              ("FID", [("a", 40.0, "40.00"), ("b", None, "–"), ("c", 0.0, "0.00"), ("d", float("nan"), "–"),
                       ("e", -10.0, "-10.00")]),
              ("nothing", [("a", None, "–")])]
    image = bar_panels(panels, title="eval", note="a note")
    # missing, zero and NaN values draw no bar; a negative one its size; each panel its own scale
    assert bar_lengths(image, BAR) == [BAR_WIDTH, BAR_WIDTH // 2, BAR_WIDTH // 4, BAR_WIDTH, BAR_WIDTH // 4]
    xs = {x for _, x, _ in bars(image, BAR)}
    assert len(xs) == 1  # every bar starts at the axis
    many = bar_panels([("p", [(f"row {i}", float(i), str(i)) for i in range(1, 61)])])
    lengths = bar_lengths(many, BAR)
    assert lengths == [round(i / 60 * BAR_WIDTH) for i in range(1, 61)]
    with pytest.raises(ValueError, match="no panels"):
        bar_panels([])


def test_labels_the_font_cannot_draw_are_written_in_ascii():
    fancy = bar_panels([("judge-KID ×10³†", [("neutral → happy", 1.0, "0.5 – é")])])
    plain = bar_panels([("judge-KID x10^3*", [("neutral -> happy", 1.0, "0.5 - e")])])
    assert np.array_equal(fancy, plain)
    # and a long title wraps rather than running off the figure
    short = bar_panels([("p", [("a", 1.0, "1")])], title="word")
    long = bar_panels([("p", [("a", 1.0, "1")])], title="word " * 60)
    assert long.shape[1] == short.shape[1] and long.shape[0] > short.shape[0] + 40


# -- the same data, the same bytes ----------------------------------------------------------------

def test_same_data_same_png_bytes(tmp_path):
    counts = {name: 10 + 3 * i for i, name in enumerate(E.EMOTIONS)}
    final = {name: 40 for name in E.EMOTIONS}
    pairs = [(_face("sad", k), _face("fear", k), "from sad") for k in range(3)]
    digests = []
    for run in ("a", "b"):
        files = [write_image(tmp_path / run / "h.png", class_histogram(counts, final, goal=final)),
                 write_image(tmp_path / run / "c.png", contact_sheet([("fear", pairs)])),
                 write_image(tmp_path / run / "p.png", bar_panels([("x", [("a", 0.3, "0.3")])], title="t", note="n"))]
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]

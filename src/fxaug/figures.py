"""Figures fxaug writes beside its results: pure functions, data in, an RGB uint8 array out
(write it with fxaug.io.write_image, which writes atomically).

    class_histogram(counts, final)           # rebalance: each class before and after
    contact_sheet([("sad", [(source, made, "from neutral"), ...]), ...])
    bar_panels([("accuracy", [("neutral:happy parts", 0.71, "0.710"), ...]), ...])   # eval's table

Drawn with Pillow (already a dependency) and its bundled font: no plotting library to install,
and the same data always gives the same pixels, so a resumed rebalance rewrites byte-identical
figures.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

BACKGROUND = (255, 255, 255)
INK = (33, 33, 33)
MUTED = (120, 120, 120)
ORIGINAL = (150, 160, 175)  # faces found in the dataset
MADE = (230, 120, 40)  # faces fxaug synthesized
BAR = (70, 120, 190)
MARGIN = 16
BAR_WIDTH = 320  # bar_panels: a panel's largest value, in pixels
HISTOGRAM_WIDTH = 420  # class_histogram: the largest class (or goal), in pixels


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's bundled font (FreeType), or its bitmap one


# Pillow's bundled font lacks some characters fxaug's labels use; they are drawn as these
# rather than as empty boxes.
_FALLBACK = {"–": "-", "—": "-", "−": "-", "×": "x", "²": "^2", "³": "^3", "†": "*", "→": "->", "←": "<-",
             "≥": ">=", "≤": "<=", "±": "+/-"}


@lru_cache(maxsize=4096)
def _has_glyph(char: str, size: int) -> bool:
    font = _font(size)
    if not hasattr(font, "getmask2"):  # Pillow's bitmap font (no FreeType): Latin-1 only
        return ord(char) < 256
    missing = font.getmask("\U0010fffd")  # a private-use character: the font's "no glyph" box
    mask = font.getmask(char)
    return not (mask.size == missing.size and bytes(mask) == bytes(missing))


def _drawable(text: str, size: int) -> str:
    """`text` with each character the font cannot draw replaced: by _FALLBACK, else by its
    ASCII base letter (é -> e), else by "?"."""
    import unicodedata

    out = []
    for char in text:
        if char.isascii() or _has_glyph(char, size):
            out.append(char)
        elif char in _FALLBACK:
            out.append(_FALLBACK[char])
        else:
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or "?")
    return "".join(out)


def _text(draw, xy, text: str, size: int, fill) -> None:
    draw.text(xy, _drawable(text, size), fill=fill, font=_font(size))


def _text_width(draw, text: str, size: int) -> int:
    left, _, right, _ = draw.textbbox((0, 0), _drawable(text, size), font=_font(size))
    return int(right - left)


def _wrap(draw, text: str, size: int, width: int) -> list[str]:
    """`text` broken at spaces into lines at most `width` pixels wide (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width(draw, f"{lines[-1]} {word}", size) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _canvas(width: int, height: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (int(width), int(height)), BACKGROUND)
    return image, ImageDraw.Draw(image)


def class_histogram(counts: Mapping[str, int], final: Mapping[str, int], goal: Mapping[str, int] | None = None,
                    title: str = "Images per class: found, and after rebalancing") -> np.ndarray:
    """One horizontal bar per class: the images found (grey) and the faces synthesized on top
    (orange), with the numbers written out; `goal` (optional) marks each class's goal. Bars are
    to scale: the largest count or goal spans HISTOGRAM_WIDTH pixels, a class's grey bar
    round(found * scale) of them (at least one for a class that has any image), its orange
    bar the rest up to round(after * scale)."""
    classes = list(dict.fromkeys([*counts, *final]))
    if not classes:
        raise ValueError("class_histogram: no classes to draw")
    top = max([*counts.values(), *final.values(), *(goal or {}).values(), 1])
    label_w, bar_w, row_h, text_w = 90, HISTOGRAM_WIDTH, 26, 230
    width = MARGIN * 2 + label_w + bar_w + text_w
    height = MARGIN * 2 + 30 + 24 + row_h * len(classes) + 8
    image, draw = _canvas(width, height)
    _text(draw, (MARGIN, MARGIN), title, 15, INK)
    y = MARGIN + 30
    x0 = MARGIN + label_w
    for colour, text, x in ((ORIGINAL, "found", x0), (MADE, "synthesized", x0 + 90)):
        draw.rectangle((x, y + 3, x + 12, y + 15), fill=colour)
        _text(draw, (x + 18, y + 2), text, 12, INK)
    if goal:
        draw.line((x0 + 210, y + 2, x0 + 210, y + 16), fill=INK, width=2)
        _text(draw, (x0 + 218, y + 2), "goal", 12, INK)
    y += 24
    scale = bar_w / top
    for name in classes:
        found, after = int(counts.get(name, 0)), int(final.get(name, counts.get(name, 0)))
        made = max(0, after - found)
        _text(draw, (MARGIN, y + 5), name, 13, INK)
        # Pillow's rectangles include both corners: a bar of w pixels from x ends at x + w - 1.
        found_w = max(1, round(found * scale)) if found else 0
        after_w = max(found_w + (1 if made else 0), round(after * scale))
        if found_w:
            draw.rectangle((x0, y + 4, x0 + found_w - 1, y + row_h - 4), fill=ORIGINAL)
        if made:
            draw.rectangle((x0 + found_w, y + 4, x0 + after_w - 1, y + row_h - 4), fill=MADE)
        if goal and name in goal:
            gx = x0 + round(int(goal[name]) * scale)
            draw.line((gx, y + 1, gx, y + row_h - 1), fill=INK, width=2)
        text = f"{found} + {made} = {after}" if made else f"{found}"
        _text(draw, (x0 + bar_w + 10, y + 5), text, 13, INK)
        y += row_h
    return np.asarray(image)


def _fit(pixels: np.ndarray, cell: int):
    """A face as a cell x cell RGB tile: scaled to fit, centred on the background."""
    from PIL import Image

    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise TypeError(f"contact_sheet: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    face = Image.fromarray(array).convert("RGB")
    ratio = cell / max(face.size)
    size = (max(1, round(face.width * ratio)), max(1, round(face.height * ratio)))
    face = face.resize(size, Image.Resampling.BICUBIC)
    tile = Image.new("RGB", (cell, cell), BACKGROUND)
    tile.paste(face, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return tile


def contact_sheet(groups: Sequence[tuple[str, Sequence[tuple[np.ndarray, np.ndarray, str]]]], cell: int = 96,
                  columns: int = 4, title: str = "Synthesized faces (right) beside their sources (left)") -> np.ndarray:
    """Pairs of faces, grouped: for each (heading, [(source, synthesized, caption), ...]) a
    heading line, then the pairs `columns` to a line, the source on the left, the synthesized
    face on the right, the caption underneath. A group without pairs says so."""
    if not groups:
        raise ValueError("contact_sheet: no groups to draw")
    gap, pair_gap, caption_h, heading_h = 4, 18, 18, 26
    pair_w = 2 * cell + gap
    width = MARGIN * 2 + columns * pair_w + (columns - 1) * pair_gap
    rows_of = [max(1, -(-len(pairs) // columns)) for _, pairs in groups]
    height = MARGIN * 2 + 30 + sum(heading_h + n * (cell + caption_h + 8) for n in rows_of)
    image, draw = _canvas(width, height)
    _text(draw, (MARGIN, MARGIN), title, 15, INK)
    y = MARGIN + 30
    for (heading, pairs), n_rows in zip(groups, rows_of):
        _text(draw, (MARGIN, y + 4), heading, 14, INK)
        y += heading_h
        if not pairs:
            _text(draw, (MARGIN, y + cell // 2 - 8), "none made", 13, MUTED)
        for k, (source, made, caption) in enumerate(pairs):
            x = MARGIN + (k % columns) * (pair_w + pair_gap)
            top = y + (k // columns) * (cell + caption_h + 8)
            image.paste(_fit(source, cell), (x, top))
            image.paste(_fit(made, cell), (x + cell + gap, top))
            draw.rectangle((x + cell + gap - 1, top - 1, x + 2 * cell + gap, top + cell), outline=MADE)
            text = caption
            while text and _text_width(draw, text, 11) > pair_w:
                text = text[:-2] + "…"
            _text(draw, (x, top + cell + 3), text, 11, MUTED)
        y += n_rows * (cell + caption_h + 8)
    return np.asarray(image)


def bar_panels(panels: Sequence[tuple[str, Sequence[tuple[str, float | None, str]]]], title: str = "",
               note: str = "") -> np.ndarray:
    """One panel of horizontal bars per (panel title, [(row label, value, value text), ...]),
    stacked: each row's bar round(|value| / largest |value| * BAR_WIDTH) pixels long, right of
    the panel's axis (a missing value, None or not finite, and a zero get no bar, only their
    text, e.g. "–"). `title` heads the figure, `note` closes it; both wrap at the figure's width."""
    if not panels:
        raise ValueError("bar_panels: no panels to draw")
    _, probe = _canvas(1, 1)
    labels = [label for _, rows in panels for label, _, _ in rows]
    label_w = min(360, max([_text_width(probe, label, 12) for label in labels] + [60]) + 12)
    bar_w, row_h, text_w = BAR_WIDTH, 20, 80
    width = MARGIN * 2 + label_w + bar_w + text_w
    title_lines, note_lines = _wrap(probe, title, 15, width - 2 * MARGIN), _wrap(probe, note, 11, width - 2 * MARGIN)
    height = MARGIN * 2 + (20 * len(title_lines) + 10 if title_lines else 0) + sum(
        24 + row_h * len(rows) + 10 for _, rows in panels) + 15 * len(note_lines) + (5 if note_lines else 0)
    image, draw = _canvas(width, height)
    y = MARGIN
    for line in title_lines:
        _text(draw, (MARGIN, y), line, 15, INK)
        y += 20
    y += 10 if title_lines else 0
    for panel_title, rows in panels:
        _text(draw, (MARGIN, y + 3), panel_title, 13, INK)
        y += 24
        finite = [abs(v) for _, v, _ in rows if v is not None and np.isfinite(v)]
        top = max(finite, default=0) or 1.0
        x0 = MARGIN + label_w
        draw.line((x0, y, x0, y + row_h * len(rows)), fill=MUTED)
        for label, value, text in rows:
            shown = label
            while shown and _text_width(draw, shown, 12) > label_w - 12:
                shown = shown[:-2] + "…"
            _text(draw, (MARGIN, y + 3), shown, 12, INK)
            length = round(abs(value) / top * bar_w) if value is not None and np.isfinite(value) else 0
            if length:  # right of the axis line at x0; both corners are included
                draw.rectangle((x0 + 1, y + 3, x0 + length, y + row_h - 3), fill=BAR)
            _text(draw, (x0 + bar_w + 8, y + 3), text, 12, INK)
            y += row_h
        y += 10
    for line in note_lines:
        _text(draw, (MARGIN, y + 2), line, 11, MUTED)
        y += 15
    return np.asarray(image)

"""Reading fxaug.figures' drawings back from their pixels, for tests: where the bars of one
colour are and how long they are."""

from __future__ import annotations

import numpy as np


def bars(image: np.ndarray, colour) -> list[tuple[int, int, int]]:
    """(top row, first column, length in pixels) of each bar of exactly `colour`, top to bottom:
    a bar is a run of consecutive image rows holding that colour, measured on its middle row."""
    mask = np.all(np.asarray(image)[:, :, :3] == np.asarray(colour, dtype=np.uint8), axis=2)
    rows = np.flatnonzero(mask.any(axis=1))
    found = []
    if not len(rows):
        return found
    starts = [rows[0]] + [r for prev, r in zip(rows, rows[1:]) if r != prev + 1]
    ends = [prev for prev, r in zip(rows, rows[1:]) if r != prev + 1] + [rows[-1]]
    for top, bottom in zip(starts, ends):
        middle = mask[(top + bottom) // 2]
        columns = np.flatnonzero(middle)
        found.append((int(top), int(columns[0]), int(middle.sum())))
    return found


def bar_lengths(image: np.ndarray, colour) -> list[int]:
    """The length in pixels of each bar of `colour`, top to bottom."""
    return [length for _, _, length in bars(image, colour)]

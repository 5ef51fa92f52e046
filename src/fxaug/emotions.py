"""The emotion vocabulary: eight canonical names and every alias the supported formats use.

Canonical order follows AffectNet's codes (0 neutral ... 7 contempt), so a canonical
index is also an AffectNet expression code. Other datasets number their classes
differently; `from_code(code, scheme)` translates each scheme explicitly, because a bare
integer means different emotions in different datasets.
"""

from __future__ import annotations

from typing import Iterable

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)

# Every spelling seen in the supported formats and common redistributions (lower-case,
# separators stripped before lookup).
_ALIASES: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neutrality", "calm", "ne"),
    "happy": ("happy", "happiness", "joy", "smile", "smiling", "ha"),
    "sad": ("sad", "sadness", "sa"),
    "surprise": ("surprise", "surprised", "surprising", "su"),
    "fear": ("fear", "fearful", "afraid", "scared", "fe"),
    "disgust": ("disgust", "disgusted", "disgusting", "di"),
    "anger": ("anger", "angry", "an"),
    "contempt": ("contempt", "contemptuous", "co"),
}

# Codes of the numbered schemes. AffectNet 8-10 are annotations that are not emotions.
SCHEMES: dict[str, dict[int, str]] = {
    "affectnet": {i: name for i, name in enumerate(EMOTIONS)},
    # fer2013.csv "emotion" column: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
    "fer2013": {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"},
    # RAF-DB basic emotions: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
    "rafdb": {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"},
}
AFFECTNET_NON_EMOTIONS: dict[int, str] = {8: "None", 9: "Uncertain", 10: "No-Face"}

# FERPlus fer2013new.csv vote columns, in file order; the last two are not emotions.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FERPLUS_EMOTION_COLUMNS = FERPLUS_COLUMNS[:8]


class UnknownEmotionError(ValueError):
    """A label that names none of the eight emotions."""

    def __init__(self, label: object, context: str | None = None):
        where = f" ({context})" if context else ""
        super().__init__(
            f"unknown emotion label {label!r}{where}; known emotions: {', '.join(EMOTIONS)} "
            f"(aliases such as happiness, sadness, angry, fearful, disgusted, surprised are accepted)"
        )
        self.label = label


def _key(label: str) -> str:
    return "".join(ch for ch in label.strip().lower() if ch.isalnum())


_LOOKUP: dict[str, str] = {_key(alias): name for name, aliases in _ALIASES.items() for alias in aliases}


def canonical(label: str | int, scheme: str | None = None) -> str:
    """Return the canonical name of `label`, a name/alias or (with `scheme`) a numeric code.

    >>> canonical("Happiness"), canonical("angry"), canonical(3, scheme="fer2013")
    ('happy', 'anger', 'happy')
    """
    if isinstance(label, str) and scheme is None:
        name = _LOOKUP.get(_key(label))
        if name is None:
            raise UnknownEmotionError(label)
        return name
    if scheme is not None:
        try:
            code = int(label)
        except (TypeError, ValueError):
            return canonical(str(label))
        return from_code(code, scheme)
    raise UnknownEmotionError(label, "an integer needs a scheme: one of " + ", ".join(SCHEMES))


def from_code(code: int, scheme: str) -> str:
    """Translate a dataset's integer class code to a canonical name."""
    table = SCHEMES.get(scheme)
    if table is None:
        raise ValueError(f"unknown label scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}")
    if code not in table:
        extra = ""
        if scheme == "affectnet" and code in AFFECTNET_NON_EMOTIONS:
            extra = f", AffectNet's {AFFECTNET_NON_EMOTIONS[code]!r} annotation"
        raise UnknownEmotionError(code, f"not an emotion code of {scheme}{extra}; codes: {sorted(table)}")
    return table[code]


def index(label: str | int, scheme: str | None = None) -> int:
    """Canonical index (0..7, equal to the AffectNet code) of a label."""
    return EMOTIONS.index(canonical(label, scheme))


def is_emotion(label: str) -> bool:
    return _key(label) in _LOOKUP


def parse_list(labels: str | Iterable[str]) -> list[str]:
    """Parse 'neutral,happy' (or an iterable of names, or 'all') into canonical names, in order."""
    if isinstance(labels, str):
        if labels.strip().lower() == "all":
            return list(EMOTIONS)
        labels = [part for part in labels.split(",") if part.strip()]
    out: list[str] = []
    for label in labels:
        name = canonical(label)
        if name not in out:
            out.append(name)
    return out


def ferplus_majority(votes) -> int:
    """Microsoft's FERPlus majority rule for one row of 10 vote counts (FERPLUS_COLUMNS order).

    Votes of 1 are dropped as outliers; the label is the class holding more than half of the
    remaining votes. Returns the canonical index, or -1 where the row has no majority or the
    majority is 'unknown' / 'not a face' (FERPlus drops those rows).
    """
    import numpy as np

    return int(ferplus_majority_batch(np.asarray(votes)[None])[0])


def ferplus_majority_batch(votes) -> "np.ndarray":  # noqa: F821
    """Vectorised `ferplus_majority` over an (N, 10) array; returns (N,) int8 canonical indices."""
    import numpy as np

    v = np.asarray(votes, dtype=np.float64).copy()
    if v.ndim != 2 or v.shape[1] != len(FERPLUS_COLUMNS):
        raise ValueError(f"FERPlus votes must be (N, {len(FERPLUS_COLUMNS)}), got {v.shape}")
    v[v <= 1.0] = 0.0
    total = v.sum(axis=1)
    peak = v.argmax(axis=1)
    has_majority = v.max(axis=1) > 0.5 * total
    to_canonical = np.array([index(col) for col in FERPLUS_EMOTION_COLUMNS] + [-1, -1], dtype=np.int8)
    out = np.where(has_majority & (total > 0), to_canonical[peak], -1).astype(np.int8)
    return out

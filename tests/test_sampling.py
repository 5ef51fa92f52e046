"""fxaug.sampling.samples_to_add: imbalanced-learn's sampling_strategy for over-sampling, by
hand-computed values and, where imbalanced-learn is installed (the dev extra), against
imblearn.utils.check_sampling_strategy itself."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fxaug.sampling import samples_to_add

FER = Counter({"neutral": 120, "happy": 300, "sad": 60, "surprise": 90, "fear": 10, "anger": 45})


def test_named_strategies_by_hand():
    assert samples_to_add(FER) == {"neutral": 180, "sad": 240, "surprise": 210, "fear": 290, "anger": 255}
    assert samples_to_add(FER, "not majority") == samples_to_add(FER, "auto")
    assert samples_to_add(FER, "minority") == {"fear": 290}
    assert samples_to_add(FER, "not minority") == {"neutral": 180, "happy": 0, "sad": 240, "surprise": 210, "anger": 255}
    assert samples_to_add(FER, "all") == {"neutral": 180, "happy": 0, "sad": 240, "surprise": 210, "fear": 290, "anger": 255}
    # the order of the counts is kept (canonical emotion order in, canonical order out)
    assert list(samples_to_add(FER)) == ["neutral", "sad", "surprise", "fear", "anger"]


def test_dict_and_callable_by_hand():
    assert samples_to_add(FER, {"fear": 100, "sad": 60}) == {"sad": 0, "fear": 90}
    assert samples_to_add(FER, {"Happiness": 400, "angry": 50}) == {"happy": 100, "anger": 5}  # aliases
    assert samples_to_add(FER, lambda c: {k: 2 * v for k, v in c.items() if v < 50}) == {"fear": 10, "anger": 45}


def test_ratio_binary_and_multiclass_by_hand():
    assert samples_to_add({"happy": 900, "sad": 300}, 0.5) == {"sad": 150}
    assert samples_to_add({"happy": 900, "sad": 300}, 1.0) == {"sad": 600}
    # multi-class: every class up to ratio x majority (int(), as imblearn truncates); above it: 0
    assert samples_to_add(FER, 0.35) == {"neutral": 0, "sad": 45, "surprise": 15, "fear": 95, "anger": 60}


def test_ties_go_to_the_first_class_in_sorted_order():
    tied = {"sad": 5, "anger": 5, "happy": 10}
    assert samples_to_add(tied, "minority") == {"anger": 5}
    assert samples_to_add(tied, "not minority") == {"sad": 5, "happy": 0}
    assert samples_to_add({"sad": 10, "happy": 10, "fear": 1}, "not majority") == {"sad": 0, "fear": 9}


def test_absent_classes_are_filled():
    assert samples_to_add({"happy": 50, "sad": 20, "fear": 0}) == {"sad": 30, "fear": 50}


@pytest.mark.parametrize(
    "counts, strategy, message",
    [
        (FER, "majority", "'majority' cannot be used"),
        (FER, "rare", "unknown sampling_strategy 'rare'"),
        (FER, {"contempt": 10}, "class 'contempt', which is not in the data"),
        (FER, {"bored": 10}, "class 'bored', which is not in the data"),
        (FER, {"fear": 5}, r"sampling_strategy\['fear'\] = 5 is below the 10 samples"),
        (FER, {"fear": -1}, "cannot be negative"),
        (FER, {"fear": 12.5}, "whole number"),
        (FER, {"happy": 400, "happiness": 500}, "twice"),
        (FER, 0.0, r"range \(0, 1\], got 0.0"),
        (FER, 1.5, r"range \(0, 1\], got 1.5"),
        (FER, -0.2, r"range \(0, 1\]"),
        ({"happy": 100, "sad": 80}, 0.5, "adds nothing"),
        (FER, ["fear"], "sampling_strategy must be one of"),
        (FER, lambda c: [1], "must return a dict"),
        ({"happy": 100}, "auto", "more than 1 class"),
        ({"happy": 100, "sad": -1}, "auto", "count of class 'sad' must be a whole number >= 0"),
        ({"happy": 100, "sad": 2.5}, "auto", "count of class 'sad'"),
        ([("happy", 1)], "auto", "must be a dict"),
    ],
)
def test_bad_strategies_are_refused_with_the_reason(counts, strategy, message):
    with pytest.raises(ValueError, match=message):
        samples_to_add(counts, strategy)


def _labels(counts):
    return np.concatenate([np.full(n, c) for c, n in counts.items()])


@pytest.mark.parametrize(
    "counts, strategy",
    [
        (FER, "auto"),
        (FER, "not majority"),
        (FER, "minority"),
        (FER, "not minority"),
        (FER, "all"),
        (FER, {"fear": 100, "sad": 60, "happy": 300}),
        ({"happy": 900, "sad": 300}, 0.5),
        ({"happy": 900, "sad": 301}, 0.77),
        ({"happy": 7, "sad": 3}, 1.0),
        ({"sad": 5, "anger": 5, "happy": 10}, "minority"),
        ({"sad": 5, "anger": 5, "happy": 10}, "not minority"),
        ({"sad": 10, "happy": 10, "fear": 1}, "not majority"),
        ({"sad": 10, "happy": 10, "fear": 1}, "all"),
    ],
)
def test_agrees_with_imbalanced_learn(counts, strategy):
    imblearn = pytest.importorskip("imblearn.utils", reason="imbalanced-learn is in the dev extra")
    expected = imblearn.check_sampling_strategy(strategy, _labels(counts), "over-sampling")
    assert samples_to_add(counts, strategy) == {str(k): int(v) for k, v in expected.items()}


@pytest.mark.parametrize("counts, strategy", [(FER, "majority"), (FER, {"fear": 5}), (FER, 1.5), (FER, 0.0),
                                              ({"happy": 100, "sad": 80}, 0.5), ({"happy": 100}, "auto")])
def test_refuses_what_imbalanced_learn_refuses(counts, strategy):
    imblearn = pytest.importorskip("imblearn.utils", reason="imbalanced-learn is in the dev extra")
    with pytest.raises(ValueError):
        imblearn.check_sampling_strategy(strategy, _labels(counts), "over-sampling")
    with pytest.raises(ValueError):
        samples_to_add(counts, strategy)

import numpy as np
import pytest

from fxaug import emotions as E


def test_canonical_order_is_affectnet_codes():
    assert E.EMOTIONS == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    for code, name in enumerate(E.EMOTIONS):
        assert E.from_code(code, "affectnet") == name
        assert E.index(name) == code


@pytest.mark.parametrize(
    "alias, name",
    [
        ("happiness", "happy"), ("Happy", "happy"), ("sadness", "sad"), ("angry", "anger"),
        ("ANGER", "anger"), ("fearful", "fear"), ("disgusted", "disgust"), ("surprised", "surprise"),
        ("Surprise", "surprise"), ("neutral", "neutral"), ("contempt", "contempt"), (" Happiness ", "happy"),
    ],
)
def test_aliases(alias, name):
    assert E.canonical(alias) == name
    assert E.is_emotion(alias)


def test_fer2013_and_rafdb_codes():
    assert [E.from_code(i, "fer2013") for i in range(7)] == [
        "anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"
    ]
    assert [E.from_code(i, "rafdb") for i in range(1, 8)] == [
        "surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"
    ]
    assert E.canonical("3", scheme="fer2013") == "happy"


def test_ferplus_columns_are_emotions():
    assert [E.canonical(c) for c in E.FERPLUS_EMOTION_COLUMNS] == [
        "neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"
    ]


def test_unknown_label_names_it_and_lists_known():
    with pytest.raises(E.UnknownEmotionError) as err:
        E.canonical("bored")
    text = str(err.value)
    assert "'bored'" in text
    for name in E.EMOTIONS:
        assert name in text


def test_affectnet_non_emotions_are_named():
    for code, what in E.AFFECTNET_NON_EMOTIONS.items():
        with pytest.raises(E.UnknownEmotionError, match=what):
            E.from_code(code, "affectnet")
    with pytest.raises(E.UnknownEmotionError):
        E.from_code(7, "fer2013")
    with pytest.raises(ValueError, match="unknown label scheme"):
        E.from_code(1, "imagenet")


def test_integer_without_scheme_is_refused():
    with pytest.raises(E.UnknownEmotionError, match="scheme"):
        E.canonical(3)


def test_parse_list():
    assert E.parse_list("neutral, happiness,happy") == ["neutral", "happy"]
    assert E.parse_list("all") == list(E.EMOTIONS)
    with pytest.raises(E.UnknownEmotionError):
        E.parse_list("neutral,bored")


def test_ferplus_majority_rule_examples():
    # votes in FERPlus column order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    assert E.ferplus_majority([6, 0, 1, 1, 0, 0, 0, 0, 2, 0]) == E.index("neutral")  # 1-votes dropped: 6 of 8
    assert E.ferplus_majority([4, 0, 0, 1, 3, 2, 0, 0, 0, 0]) == -1  # 4 of 9: no majority
    assert E.ferplus_majority([0, 0, 0, 0, 0, 0, 0, 0, 6, 4]) == -1  # majority 'unknown'
    assert E.ferplus_majority([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == -1


def test_ferplus_majority_matches_microsoft_labels_on_all_rows(fer):
    """The rule reproduces FERPlus' published majority labels for all 35,887 rows."""
    ours = E.ferplus_majority_batch(fer.votes)
    np.testing.assert_array_equal(ours, fer.majority)

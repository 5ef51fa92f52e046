"""imbalanced-learn's `sampling_strategy` vocabulary, for over-sampling by synthesis.

    from fxaug.sampling import samples_to_add
    samples_to_add({"happy": 900, "sad": 300, "fear": 100})                  # 'not majority'
    {'sad': 600, 'fear': 800}
    samples_to_add({"happy": 900, "sad": 300}, 0.5)                          # binary ratio
    {'sad': 150}
    samples_to_add({"happy": 900, "sad": 300, "fear": 100}, {"fear": 250})
    {'fear': 150}

The answer is how many samples to ADD to each targeted class, as the over-samplers of
imbalanced-learn (`imblearn.utils.check_sampling_strategy(..., "over-sampling")`) compute it:

- 'auto' (the default) = 'not majority': every class but the majority, up to the majority's count;
- 'minority': the smallest class only; 'not minority': every class but it; 'all': every class
  (the majority with 0); 'majority' is refused, as by imblearn's over-samplers;
- a dict {class: count}: those classes up to that many samples each (never fewer than they have);
- a float ratio in (0, 1]: N_minority_after = ratio * N_majority. imblearn takes it for two
  classes only; here, with more, every class but the majority is brought up to ratio x majority
  (int(ratio * N_majority) - N, truncated as imblearn does), and classes already there get 0.
  It is an error, as in imblearn, when the ratio would add nothing to any class;
- a callable counts -> dict, read as a dict.

Ties for the majority or the minority go to the class first in sorted order (imblearn's
classes come from np.unique). Classes are compared as given; a dict key that is an alias of an
emotion in `counts` ("happiness" for "happy") is read as that emotion. `counts` may list classes
with 0 samples (an emotion the data lacks, which a generator can still make): they count as the
minority. One concept, one place: `fxaug rebalance` and the batch module both resolve here.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Callable, Hashable, Mapping, Union

from . import emotions as E

SamplingStrategy = Union[str, float, Mapping[Hashable, int], Callable[[dict], Mapping[Hashable, int]]]
STRATEGIES = ("auto", "not majority", "minority", "not minority", "all", "majority")


def samples_to_add(counts: Mapping[Hashable, int], sampling_strategy: SamplingStrategy = "auto") -> dict[Hashable, int]:
    """How many samples to add to each targeted class; see the module's docstring.
    counts: class -> number of samples (a dict or a collections.Counter). The result keeps the
    order of `counts` and holds every targeted class, with 0 where nothing is needed."""
    stats = _checked_counts(counts)
    if isinstance(sampling_strategy, str):
        return _by_name(stats, sampling_strategy)
    if isinstance(sampling_strategy, Mapping):
        return _by_dict(stats, sampling_strategy)
    if isinstance(sampling_strategy, Real) and not isinstance(sampling_strategy, bool):
        return _by_ratio(stats, float(sampling_strategy))
    if callable(sampling_strategy):
        wanted = sampling_strategy(dict(stats))
        if not isinstance(wanted, Mapping):
            raise ValueError(f"a callable sampling_strategy must return a dict class -> count, got {type(wanted).__name__}")
        return _by_dict(stats, wanted)
    raise ValueError(f"sampling_strategy must be one of {', '.join(repr(s) for s in STRATEGIES)}, a float ratio in (0, 1], "
                     f"a dict class -> count or a callable; got {sampling_strategy!r}")


def _checked_counts(counts: Mapping[Hashable, int]) -> dict[Hashable, int]:
    if not isinstance(counts, Mapping):
        raise ValueError(f"class counts must be a dict class -> count, got {type(counts).__name__}")
    stats = {}
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
            raise ValueError(f"the count of class {name!r} must be a whole number >= 0, got {n!r}")
        stats[name] = int(n)
    if len(stats) < 2:
        raise ValueError(f"sampling needs more than 1 class; got {len(stats)} ({', '.join(map(repr, stats)) or 'none'})")
    return stats


def _in_sorted_order(stats: dict[Hashable, int]) -> list[Hashable]:
    try:
        return sorted(stats)
    except TypeError:  # classes of mixed types: their given order
        return list(stats)


def _majority(stats: dict[Hashable, int]) -> Hashable:
    return max(_in_sorted_order(stats), key=stats.__getitem__)


def _minority(stats: dict[Hashable, int]) -> Hashable:
    return min(_in_sorted_order(stats), key=stats.__getitem__)


def _by_name(stats: dict[Hashable, int], name: str) -> dict[Hashable, int]:
    top = max(stats.values())
    if name in ("auto", "not majority"):
        major = _majority(stats)
        return {c: top - n for c, n in stats.items() if c != major}
    if name == "minority":
        minor = _minority(stats)
        return {minor: top - stats[minor]}
    if name == "not minority":
        minor = _minority(stats)
        return {c: top - n for c, n in stats.items() if c != minor}
    if name == "all":
        return {c: top - n for c, n in stats.items()}
    if name == "majority":
        raise ValueError("sampling_strategy='majority' cannot be used to add samples (imbalanced-learn's over-samplers "
                         "refuse it too): it would add none; use 'not majority', 'minority', 'not minority' or 'all'")
    raise ValueError(f"unknown sampling_strategy {name!r}; as a string it is one of {', '.join(repr(s) for s in STRATEGIES[:-1])}")


def _class_of(key: Hashable, stats: dict[Hashable, int]) -> Hashable:
    if key in stats:
        return key
    if isinstance(key, str):
        try:
            name = E.canonical(key)
        except ValueError:
            name = None
        if name in stats:
            return name
    raise ValueError(f"sampling_strategy names class {key!r}, which is not in the data "
                     f"(classes: {', '.join(map(repr, stats))})")


def _by_dict(stats: dict[Hashable, int], wanted: Mapping[Hashable, Any]) -> dict[Hashable, int]:
    goal: dict[Hashable, int] = {}
    for key, n in wanted.items():
        name = _class_of(key, stats)
        if name in goal:
            raise ValueError(f"sampling_strategy names class {name!r} twice ({key!r} is an alias of it)")
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise ValueError(f"sampling_strategy[{key!r}] must be a whole number of samples, got {n!r}")
        if n < 0:
            raise ValueError(f"sampling_strategy[{key!r}] = {n}: the number of samples in a class cannot be negative")
        if n < stats[name]:
            raise ValueError(f"sampling_strategy[{key!r}] = {n} is below the {stats[name]} samples class {name!r} "
                             "already has; samples are only added (over-sampling), never removed")
        goal[name] = int(n)
    return {c: goal[c] - stats[c] for c in stats if c in goal}


def _by_ratio(stats: dict[Hashable, int], ratio: float) -> dict[Hashable, int]:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"a float sampling_strategy is the ratio N_minority / N_majority after sampling; it must be in "
                         f"the range (0, 1], got {ratio}")
    major = _majority(stats)
    level = stats[major] * ratio
    add = {c: int(level - n) for c, n in stats.items() if c != major}
    if all(n <= 0 for n in add.values()):
        raise ValueError(f"sampling_strategy={ratio} adds nothing: every class already has at least {ratio} x the "
                         f"majority's {stats[major]} samples; increase the ratio")
    return {c: max(0, n) for c, n in add.items()}

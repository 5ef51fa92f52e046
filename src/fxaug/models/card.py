"""Model cards: the README.md of an fxaug model folder, as the Hugging Face Hub reads it (a YAML
header of metadata, then Markdown). Everything it says comes from the folder's config.json (its
architecture and the training record in "_metadata") and from the facts handed in (`CardFacts`:
data, licence, training command, CPU time, `fxaug eval` results, a samples image), so the same
folder always gives the same card.

    text = model_card("my-model/", facts=CardFacts(license="mit", datasets=["fer2013"]))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import CONFIG_NAME, WEIGHTS_NAME

SAMPLES_NAME = "samples.png"
BASE_TAGS = ("fxaug", "facial-expression", "expression-transfer", "data-augmentation", "image-to-image")


@dataclass
class CardFacts:
    """What config.json cannot know. `evaluations`: `fxaug eval` results (the JSON it writes),
    each shown as its Markdown table. `samples`: an image file name inside the model folder."""

    license: str = "mit"
    license_note: str | None = None
    datasets: list[str] = field(default_factory=list)
    data: str | None = None
    training_command: str | None = None
    cpu_time: str | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    samples: str | None = None
    summary: str | None = None
    limitations: str | None = None
    tags: list[str] = field(default_factory=list)


def _yaml_list(values) -> str:
    return "".join(f"\n- {json.dumps(str(v))}" for v in values) if values else " []"


def model_card(folder: str | os.PathLike, *, name: str | None = None, facts: CardFacts | None = None,
               repo_id: str | None = None) -> str:
    """The model card of the model folder `folder` (config.json + model.safetensors)."""
    from .base import _read_config

    folder = Path(folder)
    facts = facts or CardFacts()
    config = _read_config(folder / CONFIG_NAME)
    metadata = config.get("_metadata") or {}
    training = metadata.get("training") or {}
    name = name or folder.name
    class_name = config.get("_class_name", "?")
    domains = list(config.get("domains") or [])
    withheld = list(config.get("withheld") or [])
    offered = [d for d in domains if d not in withheld]
    tags = list(dict.fromkeys([*BASE_TAGS, class_name, *facts.tags]))
    size_mb = (folder / WEIGHTS_NAME).stat().st_size / 1e6 if (folder / WEIGHTS_NAME).is_file() else None
    samples = facts.samples or (SAMPLES_NAME if (folder / SAMPLES_NAME).is_file() else None)

    lines = [
        "---",
        f"license: {facts.license}",
        "library_name: fxaug",
        "pipeline_tag: image-to-image",
        f"tags:{_yaml_list(tags)}",
        f"datasets:{_yaml_list(facts.datasets)}",
        "---",
        "",
        f"# {name}",
        "",
    ]
    if facts.summary:
        lines += [facts.summary.strip(), ""]
    what = [f"An fxaug `{class_name}`"]
    if config.get("method"):
        what.append(f"(the `{config['method']}` method)")
    what.append(f"on {config.get('image_size', '?')} px {'grey' if config.get('channels') == 1 else 'colour'} faces.")
    if not facts.summary:
        lines += [" ".join(what), ""]
    if offered:
        lines.append(f"Targets: {', '.join(offered)}." + (f" Trained but withheld: {', '.join(withheld)}." if withheld else ""))
        lines.append("")
    if size_mb is not None:
        lines += [f"Weights: `{WEIGHTS_NAME}`, {size_mb:.2f} MB; config: `{CONFIG_NAME}` (fxaug's checkpoint format).", ""]

    reference = repo_id or "OWNER/NAME"
    lines += ["## Use", ""]
    from . import BUNDLED_DIR

    if folder.resolve().parent == BUNDLED_DIR.resolve():
        lines += [f'Ships inside fxaug (`pip install fxaug`) as `{folder.name}`: `fxaug.load_model("{folder.name}")`. '
                  f"From the Hugging Face Hub, or any copy of this folder:", ""]
    lines += [
        "```python",
        "import fxaug",
        "",
        f'model = fxaug.load_model("{reference}")   # a Hub repo id, or this folder\'s path; torch_dtype="bfloat16" on a GPU',
        f'aug = fxaug.ExpressionTransfer(["happy", "sad"], model="{reference}")   # an Albumentations transform',
        "```",
        "",
        f"    fxaug transfer faces/ --to happy --model {reference} --out happy/",
        "",
    ]

    lines += ["## Training data", ""]
    if facts.data:
        lines += [facts.data.strip(), ""]
    counts = metadata.get("training_set")
    if isinstance(counts, dict) and counts:
        total = sum(int(v) for v in counts.values())
        lines.append(f"Faces per class in the training set ({total:,} in all):")
        lines.append("")
        lines.append("| " + " | ".join(counts) + " |")
        lines.append("|" + "|".join("---:" for _ in counts) + "|")
        lines.append("| " + " | ".join(f"{int(v):,}" for v in counts.values()) + " |")
        lines.append("")
    if training.get("data") and not facts.data:
        lines += [f"Data folder at training time: `{training['data']}` (splits: {training.get('splits', 'all')}).", ""]

    lines += ["## Training", ""]
    steps = metadata.get("steps", training.get("steps"))
    facts_line = []
    if training.get("model"):
        facts_line.append(f"family `{training['model']}`")
    if steps is not None:
        facts_line.append(f"{int(steps):,} steps")
    if training.get("batch"):
        facts_line.append(f"batch {training['batch']}")
    if training.get("lr"):
        facts_line.append(f"lr {training['lr']}")
    if facts.cpu_time:
        facts_line.append(facts.cpu_time)
    if facts_line:
        lines += ["; ".join(facts_line) + ".", ""]
    if facts.training_command:
        lines += ["```bash", facts.training_command.strip(), "```", ""]
    if training:
        lines += [
            "<details><summary>every training option (config.json, <code>_metadata.training</code>)</summary>",
            "",
            "```json",
            json.dumps(training, indent=1, sort_keys=True),
            "```",
            "",
            "</details>",
            "",
        ]

    scores = metadata.get("scores")
    if facts.evaluations or scores:
        lines += ["## Scores", ""]
        if facts.evaluations:
            from ..metrics.evaluate import results_markdown

            for result in facts.evaluations:
                lines += [results_markdown(result).rstrip(), ""]
        if scores:
            lines += ["```json", json.dumps(scores, indent=1, sort_keys=True), "```", ""]

    if samples:
        lines += ["## Samples", "", f"![samples]({samples})", ""]
    if facts.limitations:
        lines += ["## Limitations", "", facts.limitations.strip(), ""]

    lines += ["## Licence", "", f"Weights: `{facts.license}`." + (f" {facts.license_note.strip()}" if facts.license_note else ""),
              "", "Written by fxaug (`fxaug.models.card`)."]
    return "\n".join(lines) + "\n"

"""`dataset-card`: a Hub-ready README.md (and its figure) in a `converters build` folder, from its manifest.json.

The card's `configs` name the folder's own files, so `datasets.load_dataset(FOLDER)` (or the Hub repo it is
uploaded to) loads the merged splits, each source on its own and the safety items, with the manifest's counts.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.cards import dataset_figure, licences
from eval.cards import manifest as mf
from eval.cards.common import CardError, is_hub_id, local_paths
from eval.common import requests
from eval.common.files import atomic_write_text
from medasst import facts

VERB = "dataset-card"
CARD = "README.md"
# every record's columns (medasst.facts.RECORD_KEYS); pinned so each config loads with the same schema
FEATURES = [
    {"name": "instruction", "dtype": "string"},
    {"name": "input", "dtype": "string"},
    {"name": "output", "dtype": "string"},
    {"name": "history", "list": {"list": "string"}},
    {"name": "source", "dtype": "string"},
    {"name": "id", "dtype": "string"},
]
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data", help="the `converters build` folder; the card is written there")
    parser.add_argument("--dataset-id", help="the hub id it will be uploaded to (shown in the loading example)")


@dataclass(frozen=True)
class DatasetCardRequest:
    data: Path = Path("data")
    dataset_id: str | None = None

    def __post_init__(self) -> None:
        if not Path(self.data).is_dir():
            raise requests.UsageError(f"--data {self.data}: folder not found (the --out-dir of `converters build`)")
        if not (Path(self.data) / facts.MANIFEST).is_file():
            raise requests.UsageError(f"--data {self.data}: no {facts.MANIFEST} there (run `python -m converters "
                                      "build` first)")  # fmt: skip
        if self.dataset_id is not None and not is_hub_id(self.dataset_id):
            raise requests.UsageError(f"--dataset-id {self.dataset_id}: not a hub id like ORG/NAME")


def size_category(n: int) -> str:
    return next((label for limit, label in SIZES if n < limit), "n>100M")


def configs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """default (the merged splits), one per source, and the safety items: only files that hold records."""
    outputs = manifest["outputs"]

    def files(names: dict[str, str]) -> list[dict[str, str]]:
        return [{"split": split, "path": name} for split, name in names.items()
                if (outputs.get(name) or {}).get("records")]  # fmt: skip

    out = [{"config_name": "default", "data_files": files({s: facts.merged_file(s) for s in facts.SPLITS}),
            "default": True}]  # fmt: skip
    for source in mf.sources(manifest):
        found = files({s: facts.source_file(source, s) for s in facts.SPLITS})
        if found:
            out.append({"config_name": source, "data_files": found})
    safety = files({"test": facts.SAFETY_FILE})
    if safety:
        out.append({"config_name": "safety", "data_files": safety})
    return [c for c in out if c["data_files"]]


def licence_ids(manifest: dict[str, Any]) -> list[str]:
    ups = [u for s in mf.sources(manifest) for u in licences.SOURCES.get(s, ())]
    return sorted({u.licence.hub_id if u.licence else "unknown" for u in ups})


def card_data(manifest: dict[str, Any], found: list[dict[str, Any]]):
    from huggingface_hub import DatasetCardData

    total = sum(manifest["merged"][s]["written"] for s in facts.SPLITS)
    return DatasetCardData(
        language=["zh"], license=licence_ids(manifest), pretty_name="MedAsst Chinese medical dialogues",
        size_categories=[size_category(total)], task_categories=["text-generation", "question-answering"],
        source_datasets=licences.hub_datasets(mf.sources(manifest)) or None,
        tags=["medical", "chinese", "dialogue", "llama-factory", "medasst"], configs=found,
        # a copy each: one shared list would be written as a YAML anchor, which some readers of cards reject
        dataset_info=[{"config_name": c["config_name"], "features": copy.deepcopy(FEATURES)} for c in found],
    )  # fmt: skip


def _records(manifest: dict[str, Any], name: str) -> int:
    return int((manifest["outputs"].get(name) or {}).get("records", 0))


def body(manifest: dict[str, Any], found: list[dict[str, Any]], lengths, manifest_sha: str, repo: str | None) -> str:
    sources = mf.sources(manifest)
    where = repo or "PATH_OR_REPO_ID"
    load = [f'ds = load_dataset("{where}")  # default: the merged train / test splits']
    if any(c["config_name"] == "safety" for c in found):
        load.append(f'safety = load_dataset("{where}", "safety")  # the safety items alone')
    lines = ["# MedAsst: merged Chinese medical dialogues", "",
             "Single- and multi-turn Chinese medical dialogues from four public sources, converted to LLaMA-Factory's "
             "alpaca format (with history) by `python -m converters build` of the MedAsst recipes. This card was "
             f"written by `python -m eval.run dataset-card` from the build's `manifest.json` (sha256 `{manifest_sha}`, "
             "shipped beside the data).", "",
             "## Loading", "", "```python", "from datasets import load_dataset", "", *load, "```", "",
             "| config | split | file | records |", "|---|---|---|---:|"]  # fmt: skip
    for config in found:
        for entry in config["data_files"]:
            lines.append(f"| {config['config_name']} | {entry['split']} | `{entry['path']}` | "
                         f"{_records(manifest, entry['path'])} |")  # fmt: skip
    lines += ["", "With LLaMA-Factory, the repository's `dataset_info.json` registers the merged files as "
              "`medasst_train` / `medasst_test` (alpaca columns, `history` included).", "",
              "Each record: `instruction` (the last user turn), `input` (empty), `output` (the answer), `history` "
              "(earlier `[user, assistant]` turns), `source` and `id`.", "",
              "## Sources and licences", "",
              "Each record stays under its source's terms; where upstream states no licence the card says "
              "\"not stated\" and links where it was looked for (its `license` metadata lists it as `unknown`).", "",
              "| source | upstream | licence | cite |", "|---|---|---|---|"]  # fmt: skip
    for source in sources:
        for up in licences.SOURCES.get(source, ()):
            lines.append(f"| {source} | [{up.title}]({up.url}) | {licences.licence_text(up)} | {up.citation} |")
    lines += ["", "## Counts", "", "Records written, with the paper's training count per source:", "",
              mf.merged_table(manifest), "Read, written and skipped by reason, per source and split:", "",
              mf.counts_table(manifest), "Filters applied:", ""]  # fmt: skip
    lines += [f"- {f}" for f in mf.filters(manifest)]
    lines += ["", "## Figure", "", f"![Records per source and split; question and answer lengths]"
              f"({dataset_figure.FIGURE})", "",
              "Lengths in characters: the question is the last user turn (instruction + input), the answer its "
              "output.", "", dataset_figure.length_table(lengths),
              "## Intended use and limitations", "",
              "Research on Chinese medical dialogue models. The texts are public web, forum and encyclopedia data, "
              "cleaned mechanically, not reviewed: they contain errors, dated or unsafe advice and template "
              "phrases. Nothing here is medical advice.", "",
              "## ModelScope", "",
              "The metadata above is Hugging Face's. ModelScope's dataset metadata was not checked against its "
              "documentation by this tool: review the front matter before uploading the folder there.", ""]  # fmt: skip
    return "\n".join(lines)


def build(request: DatasetCardRequest) -> tuple[str, Path]:
    from eval.common.fingerprint import file_sha256

    data = Path(request.data)
    manifest = mf.load(data)
    found = configs(manifest)
    lengths = dataset_figure.read_lengths(data, manifest)
    text = (f"---\n{card_data(manifest, found).to_yaml()}\n---\n\n"
            f"{body(manifest, found, lengths, file_sha256(data / facts.MANIFEST), request.dataset_id)}")  # fmt: skip
    if local_paths(text):
        raise CardError(f"the card would name a local path ({local_paths(text)[0]}); check manifest.json")
    figure = data / dataset_figure.FIGURE
    dataset_figure.plot(mf.sources(manifest), manifest, lengths, figure)
    return text, figure


def main(request: DatasetCardRequest) -> int:
    try:
        text, figure = build(request)
    except CardError as e:
        print(f"{VERB}: error: {e}", file=sys.stderr)
        return 2
    out = Path(request.data) / CARD
    atomic_write_text(out, text)
    print(f"{VERB}: {out}, {figure}")
    return 0


REQUEST = DatasetCardRequest

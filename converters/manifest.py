"""`manifest.json`: what a build read (files and their sha256), what it wrote, and what it skipped and why."""

from __future__ import annotations

from converters.atomic import AtomicWriter
from medasst.facts import PAPER_TRAIN_COUNTS, SPLITS, merged_file

MANIFEST_VERSION = 2  # 2: inputs carry the raw files' sha256


def manifest(options: dict, sources: list[str], presence: dict, stats: dict, writers: dict[str, AtomicWriter]) -> dict:
    per_source = {}
    for source in sources:
        found_any = [any(presence[source][split]["found"]) for split in SPLITS]
        all_found = all(all(presence[source][split]["found"]) for split in SPLITS)
        status = "ok" if all_found else ("missing" if not any(found_any) else "partial")
        inputs = {
            split: {k: v for k, v in presence[source][split].items() if k != "identity"} for split in SPLITS
        }
        entry: dict = {"status": status, "inputs": inputs}
        for split in SPLITS:
            if split in stats[source]:
                entry[split] = stats[source][split].as_dict()
        entry["paper_train"] = PAPER_TRAIN_COUNTS[source]
        per_source[source] = entry
    merged = {
        split: {
            "written": writers[merged_file(split)].records,
            "by_source": {s: stats[s][split].written for s in sources if split in stats[s]},
        }
        for split in SPLITS
    }
    return {
        "manifest_version": MANIFEST_VERSION,
        "options": options,
        "sources": per_source,
        "merged": merged,
        "outputs": {name: {"records": w.records, "sha256": w.sha256} for name, w in sorted(writers.items())},
    }

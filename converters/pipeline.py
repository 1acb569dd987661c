"""raw dir → `<out>/<source>_{train,test}.jsonl`, `<out>/medasst_{train,test}.jsonl`, `<out>/manifest.json`.

Test splits are converted first so that their questions are known before any train record is written; train
records whose normalised opening question is in the test set are dropped (`in_test`). Exact duplicates are
dropped within and across sources, first occurrence wins in `SOURCES` order, so the output is a pure function
of the input bytes. Nothing is visible under a final name until the whole build succeeded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import orjson

from converters import progress
from converters.atomic import AtomicWriter, commit_set, recover
from converters.clean import clean_record, content_key, question_key
from converters.fetch import LOCK_FILE
from converters.records import ConversionError, Record, Skip, SplitStats
from converters.registry import MODULES
from medasst.facts import (
    MANIFEST,
    PAPER_TRAIN_COUNTS,
    SAFETY_FILE,
    SAFETY_ID_PREFIX,
    SOURCES,
    SPLITS,
    merged_file,
    source_file,
)
from medasst.hashing import files_sha256

log = logging.getLogger("converters")

MANIFEST_VERSION = 2  # 2: inputs carry the raw files' sha256


@dataclass(frozen=True)
class Options:
    raw_dir: Path
    out_dir: Path
    sources: tuple[str, ...] = SOURCES
    strict: bool = False
    max_chars: int | None = None  # drop dialogues longer than this in total; None keeps everything
    # The paper's Table 1 equals the raw counts, i.e. it filtered neither; both are on by default because
    # duplicates and test questions in train inflate the evaluation.
    dedup: bool = True
    drop_test_overlap: bool = True
    # processes that read, clean and key JSON Lines chunks; 1 = all in this process. Outputs are identical.
    workers: int = 1
    chunk_bytes: int = 4 << 20  # whole lines per chunk handed to a worker


@dataclass
class _State:
    test_questions: set[bytes] = field(default_factory=set)
    seen: dict[str, set[bytes]] = field(default_factory=lambda: {s: set() for s in SPLITS})


def build(opts: Options) -> dict:
    unknown = [s for s in opts.sources if s not in MODULES]
    if unknown:
        raise ConversionError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    if opts.workers < 1:
        raise ConversionError(f"--workers must be at least 1, got {opts.workers}")
    if not opts.raw_dir.is_dir():
        raise ConversionError(f"raw dir {opts.raw_dir} does not exist")
    if opts.max_chars is not None and opts.max_chars < 1:
        raise ConversionError(f"--max-chars must be at least 1, got {opts.max_chars} (leave it out to keep all)")
    _check_out_dir(opts.out_dir)
    sources = [s for s in SOURCES if s in opts.sources]  # canonical order whatever the CLI order
    presence = {s: {split: _presence(s, opts.raw_dir, split) for split in SPLITS} for s in sources}
    _report_missing(presence, opts.strict)
    _check_lock(opts.raw_dir, presence)
    if opts.out_dir.is_dir() and recover(opts.out_dir):
        log.warning("%s: rolled back the half-switched outputs of a build that was killed", opts.out_dir)
    _refuse_worse(opts, presence)
    _remove_stale_temps(opts.out_dir)

    writers: dict[str, AtomicWriter] = {}
    state = _State()
    stats: dict[str, dict[str, SplitStats]] = {s: {} for s in sources}
    raw_bytes = sum((opts.raw_dir / name).stat().st_size for splits in presence.values()
                    for info in splits.values() for name in info["found"] if name)  # fmt: skip
    try:
        with progress.build(raw_bytes):
            for split in ("test", "train"):  # test first: its questions filter train
                merged = writers[merged_file(split)] = AtomicWriter(opts.out_dir / merged_file(split))
                for source in sources:
                    if not any(presence[source][split]["found"]):
                        continue
                    name = source_file(source, split)
                    out = writers[name] = AtomicWriter(opts.out_dir / name)
                    stats[source][split] = _convert(source, split, opts, state, (out, merged))
        _refuse_unusable(sources, stats, presence)
        if source_file("cmtmedqa", "test") in writers:
            writers[SAFETY_FILE] = _safety_items(writers[source_file("cmtmedqa", "test")], opts.out_dir)
        manifest = _manifest(opts, sources, presence, stats, writers)
        manifest_writer = writers[MANIFEST] = AtomicWriter(opts.out_dir / MANIFEST)
        manifest_writer.write_block(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n", 0)
        # a per-source file of an earlier build that this one does not write would look current: it goes too
        stale = [opts.out_dir / name for name in sorted(_owned_names() - set(writers))]
        commit_set(list(writers.values()), opts.out_dir, stale)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    return manifest


def _check_out_dir(out_dir: Path) -> None:
    """An --out-dir that can hold the outputs: a folder (made if missing) we may write into."""
    for parent in (out_dir, *out_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out_dir else f"is under {parent}, which is a file"
                raise ConversionError(f"--out-dir {out_dir} {what}; pass a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConversionError(f"--out-dir {out_dir}: {parent} is not writable")
            return


def _previous_manifest(out_dir: Path) -> dict | None:
    try:
        manifest = orjson.loads((out_dir / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _refuse_worse(opts: Options, presence: dict) -> None:
    """Never replace good outputs with emptier ones silently: no raw file at all, or a source of the previous
    build whose raw files are gone, stops the build before anything is written."""
    if not any(any(info["found"]) for splits in presence.values() for info in splits.values()):
        expected = [f"{s}: {name}" for s, splits in presence.items() for info in splits.values()
                    for name in info["expected"]][:4]  # fmt: skip
        raise ConversionError(
            f"none of the raw files of {', '.join(presence)} are under {opts.raw_dir} (expected e.g. "
            f"{'; '.join(expected)}); nothing was written — is --raw-dir right? (`python -m converters fetch`)"
        )
    previous = _previous_manifest(opts.out_dir) or {}
    for source, splits in presence.items():
        before = (previous.get("sources") or {}).get(source) or {}
        for split, info in splits.items():
            had = (before.get(split) or {}).get("written", 0)
            if had and not any(info["found"]):
                raise ConversionError(
                    f"{source} {split}: the previous build in {opts.out_dir} wrote {had} records, but none of its "
                    f"raw files ({', '.join(info['expected'])}) are under {opts.raw_dir} now; the previous outputs "
                    f"are kept. Restore them, or pass --sources without {source} to build without it"
                )


UNUSABLE = ("bad_encoding", "bad_json", "unreadable_file")  # a record lost to the file, not to its content
WARN_SHARE = 0.5


def _refuse_unusable(sources: list[str], stats: dict, presence: dict) -> None:
    """A present split that yields nothing usable is an error; one that loses half its records to unreadable
    bytes is a warning naming the files and the share."""
    for source in sources:
        for split, st in stats[source].items():
            lost = sum(st.skipped.get(reason, 0) for reason in UNUSABLE)
            files = ", ".join(name for name in presence[source][split]["found"] if name)
            if st.read and lost == st.read:
                raise ConversionError(
                    f"{source} {split}: every one of the {st.read} records of {files} was unreadable "
                    f"({dict(sorted(st.skipped.items()))}); nothing was written, the previous outputs are kept"
                )
            if st.read and lost / st.read >= WARN_SHARE:
                log.warning("%s %s: %.0f%% of the records of %s were unreadable %s", source, split,
                            100 * lost / st.read, files, dict(sorted(st.skipped.items())))  # fmt: skip


def _owned_names() -> set[str]:
    return (
        {MANIFEST, SAFETY_FILE}
        | {merged_file(split) for split in SPLITS}
        | {source_file(source, split) for source in SOURCES for split in SPLITS}
    )


def _safety_items(cmtmedqa_test: AtomicWriter, out_dir: Path) -> AtomicWriter:
    """CMtMedQA's safety items, as the test set holds them, in a file of their own (read back from its temp)."""
    cmtmedqa_test.finish()
    writer = AtomicWriter(out_dir / SAFETY_FILE)
    marker = b'"id":"' + SAFETY_ID_PREFIX.encode()
    with cmtmedqa_test.tmp.open("rb") as f:
        for line in f:
            if marker in line:
                writer.write(line)
    return writer


def _remove_stale_temps(out_dir: Path) -> None:
    """Temp files of our outputs left by a build that was killed (SIGKILL leaves no chance to clean up)."""
    if not out_dir.is_dir():
        return
    owned = _owned_names()
    for path in out_dir.glob(".*.tmp"):
        name = path.name[1:].rsplit(".", 2)[0]
        if name in owned and path.is_file():
            log.info("removing a stale temp file of an interrupted build: %s", path.name)
            path.unlink(missing_ok=True)


def _presence(source: str, raw_dir: Path, split: str) -> dict:
    module = MODULES[source]
    found = [p for p in module.inputs(raw_dir, split)]
    names = [p.relative_to(raw_dir).as_posix() if p is not None else None for p in found]
    return {
        "expected": list(module.RAW_FILES[split]),
        "found": names,
        # the raw bytes this build read, so a manifest names its inputs (big files hashed once, then cached)
        "sha256": files_sha256([p for p in found if p is not None], raw_dir),
    }


def _check_lock(raw_dir: Path, presence: dict) -> None:
    """Warn when a raw file is not the one its lock entry (`fetch`'s raw.lock.json) names."""
    try:
        locked = orjson.loads((raw_dir / LOCK_FILE).read_bytes()).get("files", {})
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return
    for splits in presence.values():
        for info in splits.values():
            for name, sha in info["sha256"].items():
                entry = locked.get(name) if isinstance(locked, dict) else None
                if isinstance(entry, dict) and entry.get("sha256") and entry["sha256"] != sha:
                    log.warning("%s differs from its entry in %s: this build's training set is not the locked one",
                                name, LOCK_FILE)  # fmt: skip


def _report_missing(presence: dict, strict: bool) -> None:
    missing = [
        f"{source} {split}: {name}"
        for source, splits in presence.items()
        for split, info in splits.items()
        for name, got in zip(info["expected"], info["found"], strict=True)
        if got is None
    ]
    if not missing:
        return
    if strict:
        raise ConversionError("raw files missing (--strict):\n  " + "\n  ".join(missing))
    for line in missing:
        log.warning("raw file missing, skipped: %s", line)


@dataclass(frozen=True)
class Prep:
    """What the serial pass needs of one record; computed by `prepare`, in a worker or in this process."""

    need_qkey: bool  # the test split (its questions filter train), or train with the overlap filter on
    dedup: bool
    max_chars: int | None
    source: str


def prepare(item: Record | Skip, how: Prep) -> Skip | tuple[bytes, bytes | None, bytes | None, str]:
    """Clean, length-check, serialise and key one record: (line, content key, question key, repair) or a Skip.

    Pure per record, so it can run in any process; everything that depends on earlier records (duplicates,
    test overlap, the writes) is left to `_apply`, which sees the records in file order.
    """
    if item.__class__ is not Record:
        return item
    item = clean_record(item)
    if item.__class__ is not Record:
        return item
    max_chars = how.max_chars
    if max_chars is not None and _length(item) > max_chars:
        return Skip("too_long", item.where, f"{_length(item)} chars")
    line = _dump(item, how.source)
    return (
        line,
        content_key(line) if how.dedup else None,
        question_key(item) if how.need_qkey else None,
        item.repaired,
    )


# A batch of prepared items in file order, compact so it crosses a process boundary cheaply: (items read,
# the records' lines joined, each line's end offset, content keys joined (8 bytes each, or b""), question keys,
# [(record index, repair)], [Skip, ...]). Skips are counted whole; only records have an order that matters.
Batch = tuple[int, bytes, list[int], bytes, list, list, list]
BATCH_ITEMS = 4096


def pack(items: Iterable[Record | Skip], how: Prep) -> Batch:
    lines: list[bytes] = []
    ends: list[int] = []
    ckeys: list[bytes] = []
    qkeys: list = []
    repaired: list = []
    skips: list = []
    n = end = 0
    for item in items:
        n += 1
        prepared = prepare(item, how)
        if prepared.__class__ is Skip:
            skips.append(prepared)
            continue
        line, ckey, qkey, repair = prepared
        if repair:
            repaired.append((len(lines), repair))
        lines.append(line)
        end += len(line)
        ends.append(end)
        if ckey is not None:
            ckeys.append(ckey)
        qkeys.append(qkey)
    return n, b"".join(lines), ends, b"".join(ckeys), qkeys, repaired, skips


def _batches(items: Iterator[Record | Skip], how: Prep) -> Iterator[Batch]:
    while True:
        batch = pack(islice(items, BATCH_ITEMS), how)
        if not batch[0]:
            return
        yield batch


def _convert(source: str, split: str, opts: Options, state: _State, outs: tuple[AtomicWriter, ...]) -> SplitStats:
    how = Prep(
        need_qkey=split == "test" or opts.drop_test_overlap, dedup=opts.dedup, max_chars=opts.max_chars, source=source
    )
    module = MODULES[source]
    jobs = module.line_jobs(opts.raw_dir, split) if hasattr(module, "line_jobs") else None
    if jobs is not None and opts.workers > 1:
        from converters.parallel import batches_from_workers

        batches = batches_from_workers(jobs, opts.raw_dir, how, opts.workers, opts.chunk_bytes)
    else:
        batches = _batches(iter(module.read(opts.raw_dir, split)), how)
    return _apply(batches, source, split, opts, state, outs)


def _apply(batches: Iterable[Batch], source: str, split: str, opts: Options, state: _State, outs) -> SplitStats:
    """The serial pass, in file order: counted skips, test-overlap and duplicate filters, writes."""
    # Millions of records: they are filtered and written a batch at a time.
    stats = SplitStats()
    seen = state.seen[split]
    filter_in_test = split == "train" and opts.drop_test_overlap
    is_test = split == "test"
    dedup, strict = opts.dedup, opts.strict
    # the split's first source: its file and the merged one hold the same bytes so far, so one hash serves both
    first, *rest = outs
    shared = [w for w in rest if w.hashes_like(first)]
    read = written = 0
    for n, blob, ends, ckeys, qkeys, repaired, skips in batches:
        read += n
        for skip in skips:
            if strict and skip.is_error:
                raise ConversionError(f"{skip.where}: {skip.reason}" + (f": {skip.detail}" if skip.detail else ""))
            stats.skip(skip.reason)
        check_test = filter_in_test and bool(state.test_questions)  # an empty test set can match nothing
        keys = ckeys if dedup else None
        dropped = _dropped(len(ends), keys, qkeys, check_test, is_test, seen, state.test_questions, stats)
        if dropped:
            gone = set(dropped)
            kept = [j for j in range(len(ends)) if j not in gone]
            blob = b"".join(blob[ends[j - 1] if j else 0 : ends[j]] for j in kept)
            repaired = [(j, what) for j, what in repaired if j not in gone]
        count = len(ends) - len(dropped)
        for _, what in repaired:
            stats.repair(what)
        if count:
            first.write_block(blob, count)
            for out in rest:
                out.write_block(blob, count, hashed=out in shared)
        written += count
    for out in shared:
        out.take_hash(first)
    stats.read, stats.written = read, written
    log.info("%s %s: read %d, written %d, skipped %s", source, split, stats.read, stats.written, stats.skipped)
    return stats


def _dropped(n: int, ckeys: bytes | None, qkeys: list, check_test: bool, is_test: bool, seen: set[bytes],
             test_questions: set[bytes], stats: SplitStats) -> list[int]:  # fmt: skip
    """Indices of the batch's `n` records that the test-overlap and duplicate filters drop, in file order; the
    keys of the kept ones are recorded (seen contents; test questions when this is the test split)."""
    keys = [ckeys[i : i + 8] for i in range(0, 8 * n, 8)] if ckeys is not None else None
    # Nearly every batch drops nothing: that is decided with whole-batch set operations, and the keys are
    # recorded the same way; only a batch with a drop is walked record by record.
    if (not check_test or test_questions.isdisjoint(qkeys)) and (
        keys is None or (len(set(keys)) == n and seen.isdisjoint(keys))
    ):
        if keys is not None:
            seen.update(keys)
        if is_test:
            test_questions.update(q for q in qkeys if q is not None)
        return []
    dropped: list[int] = []
    for j in range(n):
        if check_test:
            qkey = qkeys[j]
            if qkey is not None and qkey in test_questions:
                stats.skip("in_test")
                dropped.append(j)
                continue
        if keys is not None:
            ckey = keys[j]
            if ckey in seen:
                stats.skip("duplicate")
                dropped.append(j)
                continue
            seen.add(ckey)
        if is_test:
            qkey = qkeys[j]
            if qkey is not None:
                test_questions.add(qkey)
    return dropped


def _length(rec: Record) -> int:
    return len(rec.instruction) + len(rec.input) + len(rec.output) + sum(len(q) + len(a) for q, a in rec.history)


def _dump(rec: Record, source: str) -> bytes:
    # Key order is part of the format (medasst.facts.RECORD_KEYS); orjson keeps insertion order.
    return orjson.dumps(
        {
            "instruction": rec.instruction,
            "input": rec.input,
            "output": rec.output,
            "history": rec.history,
            "source": source,
            "id": rec.id,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def _manifest(opts: Options, sources: list[str], presence: dict, stats: dict, writers: dict[str, AtomicWriter]) -> dict:
    per_source = {}
    for source in sources:
        found_any = [any(presence[source][split]["found"]) for split in SPLITS]
        all_found = all(all(presence[source][split]["found"]) for split in SPLITS)
        status = "ok" if all_found else ("missing" if not any(found_any) else "partial")
        entry: dict = {"status": status, "inputs": {split: presence[source][split] for split in SPLITS}}
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
        "options": {
            "sources": sources,
            "strict": opts.strict,
            "max_chars": opts.max_chars,
            "dedup": opts.dedup,
            "drop_test_overlap": opts.drop_test_overlap,
        },
        "sources": per_source,
        "merged": merged,
        "outputs": {name: {"records": w.records, "sha256": w.sha256} for name, w in sorted(writers.items())},
    }

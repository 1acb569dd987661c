"""raw dir → `<out>/<source>_{train,test}.jsonl`, `<out>/medasst_{train,test}.jsonl`, `<out>/manifest.json`.

Test splits are converted first so that their questions are known before any train record is written; train
records whose normalised opening question is in the test set are dropped (`in_test`). Exact duplicates are
dropped within and across sources, first occurrence wins in `SOURCES` order, so the output is a pure function
of the input bytes. Nothing is visible under a final name until the whole build succeeded.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from converters import exclude, guards, inputs, progress, signals
from converters.atomic import AtomicWriter, commit_set, recover
from converters.batching import Batch, Prep, batches
from converters.filtering import FileTally, Filters, State, apply
from converters.manifest import manifest as make_manifest
from converters.records import ConversionError, SplitStats
from converters.registry import MODULES
from medasst.facts import MANIFEST, SAFETY_FILE, SAFETY_ID_PREFIX, SOURCES, SPLITS, merged_file, source_file

log = logging.getLogger("converters")


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
    # a raw file losing this share of itself to malformed input fails the build (guards.refuse_bad_files)
    max_bad_share: float = guards.MAX_BAD_SHARE
    exclude: Path | None = None  # training record ids to leave out (converters.exclude)


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
    if not 0 < opts.max_bad_share <= 1:
        raise ConversionError(f"--max-bad-share must be above 0 and at most 1, got {opts.max_bad_share}")
    exclusion = exclude.load(opts.exclude) if opts.exclude is not None else None
    guards.check_out_dir(opts.out_dir)
    with signals.unwind_on_termination(), guards.exclusive(opts.out_dir):
        return _build(opts, exclusion)


def _build(opts: Options, exclusion: exclude.Exclusion | None = None) -> dict:
    sources = [s for s in SOURCES if s in opts.sources]  # canonical order whatever the CLI order
    presence = {s: {split: inputs.presence(s, opts.raw_dir, split) for split in SPLITS} for s in sources}
    inputs.report_missing(presence, opts.strict)
    inputs.check_lock(opts.raw_dir, presence)
    if recover(opts.out_dir):
        log.warning("%s: rolled back the half-switched outputs of a build that was killed", opts.out_dir)
    guards.refuse_worse(opts.raw_dir, opts.out_dir, presence)
    guards.remove_stale_temps(opts.out_dir)
    sizes = inputs.sizes(presence, opts.raw_dir)

    writers: dict[str, AtomicWriter] = {}
    state = State()
    stats: dict[str, dict[str, SplitStats]] = {s: {} for s in sources}
    tallies: dict[str, FileTally] = {}
    try:
        with progress.build(sum(sizes.values())):
            for split in ("test", "train"):  # test first: its questions filter train
                merged = writers[merged_file(split)] = _writer(opts.out_dir / merged_file(split))
                for source in sources:
                    if not any(presence[source][split]["found"]):
                        continue
                    name = source_file(source, split)
                    out = writers[name] = _writer(opts.out_dir / name)
                    stats[source][split], by_file = _convert(source, split, opts, state, (out, merged), presence,
                                                             exclusion)  # fmt: skip
                    tallies.update(by_file)
        guards.refuse_bad_files(tallies, sizes, opts.max_bad_share)
        if source_file("cmtmedqa", "test") in writers:
            writers[SAFETY_FILE] = _safety_items(writers[source_file("cmtmedqa", "test")], opts.out_dir)
        options = _recorded_options(opts, sources)
        if exclusion is not None:
            options["exclude"] = exclusion.describe()
            _report_unmatched(exclusion, stats)
        manifest = make_manifest(options, sources, presence, stats, writers)
        manifest_writer = writers[MANIFEST] = _writer(opts.out_dir / MANIFEST)
        manifest_writer.write_block(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n", 0)
        inputs.check_unchanged(opts.raw_dir, presence)
        # a per-source file of an earlier build that this one does not write would look current: it goes too
        stale = [opts.out_dir / name for name in sorted(guards.owned_names() - set(writers))]
        commit_set(list(writers.values()), opts.out_dir, stale)
    except OSError as exc:
        for writer in writers.values():
            writer.discard()
        raise _write_error(exc, opts.out_dir) from None
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    return manifest


def _writer(final: Path) -> AtomicWriter:
    try:
        return AtomicWriter(final)
    except OSError as exc:
        raise _write_error(exc, final.parent) from None


def _write_error(exc: OSError, out_dir: Path) -> ConversionError:
    """A write that the disk refused (or a raw file that could not be read), as one line: what happened,
    where, and that nothing was replaced."""
    named = Path(exc.filename) if isinstance(exc.filename, str) else None
    if named is not None and named.parent.resolve() != out_dir.resolve():
        return ConversionError(
            f"reading {named} failed: {exc.strerror or exc}; the temp files were removed and the previous outputs "
            "are kept"
        )
    what = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EFBIG: "a file would exceed the file-size limit (ulimit -f) or the file system's largest file",
        errno.EROFS: "the file system is read-only",
        errno.EISDIR: "a folder stands where an output file goes",
    }.get(exc.errno, exc.strerror or str(exc))
    target = f" ({exc.filename})" if exc.filename else ""
    return ConversionError(
        f"writing into {out_dir} failed: {what}{target}; the temp files were removed and the previous outputs "
        "are kept"
    )


def _recorded_options(opts: Options, sources: list[str]) -> dict:
    return {
        "sources": sources,
        "strict": opts.strict,
        "max_chars": opts.max_chars,
        "dedup": opts.dedup,
        "drop_test_overlap": opts.drop_test_overlap,
    }


def _safety_items(cmtmedqa_test: AtomicWriter, out_dir: Path) -> AtomicWriter:
    """CMtMedQA's safety items, as the test set holds them, in a file of their own (read back from its temp)."""
    cmtmedqa_test.finish()
    writer = _writer(out_dir / SAFETY_FILE)
    marker = b'"id":"' + SAFETY_ID_PREFIX.encode()
    with cmtmedqa_test.tmp.open("rb") as f:
        for line in f:
            if marker in line:
                writer.write(line)
    if not writer.records:
        log.warning(
            "CMtMedQA/CMtMedQA_test.json holds no safety items (the 1,000-dialogue upload, Suprit/CMtMedQA_test_v1?):"
            " %s is empty and the safety rubric has nothing to rate. `python -m converters fetch --force` takes the "
            "1,144-record file from Zhongjing",
            SAFETY_FILE,
        )
    return writer


def _report_unmatched(exclusion: exclude.Exclusion, stats: dict) -> None:
    """Ids of the exclusion list that no training record of this build carries (another build's ids?)."""
    left_out = sum(sum(st.excluded.values()) for splits in stats.values() for split, st in splits.items()
                   if split == "train")  # fmt: skip
    missing = len(exclusion.reasons) - left_out
    if missing:
        log.warning("--exclude %s: %d of its %d ids match no training record of this build (made from other "
                    "raw files?)", exclusion.file, missing, len(exclusion.reasons))  # fmt: skip


def _convert(source: str, split: str, opts: Options, state: State, outs: tuple[AtomicWriter, ...], presence: dict,
             exclusion: exclude.Exclusion | None = None) -> tuple[SplitStats, dict[str, FileTally]]:  # fmt: skip
    # --max-chars and --exclude drop training records only: the test splits are the benchmark, never changed by
    # a training-side option
    train = split == "train"
    how = Prep(
        need_qkey=not train or opts.drop_test_overlap, dedup=opts.dedup, max_chars=opts.max_chars if train else None,
        source=source,
        exclude=exclusion.reasons if exclusion is not None and split == "train" else None,
    )
    filters = Filters(dedup=opts.dedup, drop_test_overlap=opts.drop_test_overlap, strict=opts.strict)
    files = _file_batches(source, split, opts, how, presence[source][split]["identity"])
    return apply(files, source, split, filters, state, outs)


def _file_batches(source: str, split: str, opts: Options, how: Prep,
                  identities: dict[str, inputs.Identity]) -> Iterator[tuple[str, Iterable[Batch]]]:  # fmt: skip
    """(raw file name, its batches) per raw file of the split, in order: the bad-input limits are per file."""
    module = MODULES[source]
    raw_dir = opts.raw_dir
    if hasattr(module, "line_jobs"):
        from converters.jobs import read_jobs

        for job in module.line_jobs(raw_dir, split):
            name = job.path.relative_to(raw_dir).as_posix()
            if opts.workers > 1:
                from converters.parallel import batches_from_workers

                stream = batches_from_workers([job], raw_dir, how, opts.workers, opts.chunk_bytes, identities)
            else:
                stream = batches(iter(read_jobs([job], raw_dir)), how)
            yield name, stream
        return
    (path,) = module.inputs(raw_dir, split)
    yield path.relative_to(raw_dir).as_posix(), batches(iter(module.read(raw_dir, split)), how)

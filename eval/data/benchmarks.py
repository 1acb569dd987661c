"""CMMLU and C-Eval questions read straight from their upstream CSVs, XMedBench's Chinese exams from its JSON, plus
the subject presets.

No dataset scripts: `datasets` 4 cannot run them, and LLaMA-Factory 0.9.5 deleted its loaders. The CSVs we ship
(eval/benchmarks/, CC BY-NC-SA 4.0) keep the upstream layout, so a full copy of either benchmark can be pointed at
with `--benchmarks DIR` and read by the same code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
BENCHMARKS: tuple[str, ...] = ("cmmlu", "ceval", "xmedbench")
PAPER_BENCHMARKS: tuple[str, ...] = ("cmmlu", "ceval")  # Table 2's, and what `overall` averages
CHOICES: tuple[str, ...] = ("A", "B", "C", "D")
LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "E")  # XMedBench's CMB and CMExam items have five options

# Answer-bearing splits: C-Eval's test answers were not public in 2024, CMMLU has no val split, XMedBench is a
# test set only (no few-shot pool).
EVAL_SPLIT: dict[str, str] = {"cmmlu": "test", "ceval": "val", "xmedbench": "test"}
SHOT_SPLIT: dict[str, str] = {"cmmlu": "dev", "ceval": "dev"}
XMEDBENCH_FILE = "XMedBench/zh.json"
XMEDBENCH_SOURCES: tuple[str, ...] = ("medqa-mcmle", "cmb-single", "cmexam", "cmmlu-medical")

# Upstream column names (CMMLU capitalises, C-Eval does not; CMMLU's index column is unnamed).
COLUMNS: dict[str, dict[str, str]] = {
    "cmmlu": {"id": "", "question": "Question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "Answer"},
    "ceval": {"id": "id", "question": "question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "answer"},
}

# The paper's 1,415 questions (docs: paper.md, Table 2): the medicine-named subjects, answer-bearing splits only.
PAPER: dict[str, tuple[str, ...]] = {
    "cmmlu": (
        "anatomy",
        "clinical_knowledge",
        "college_medical_statistics",
        "college_medicine",
        "professional_medicine",
        "traditional_chinese_medicine",
    ),
    "ceval": ("basic_medicine", "clinical_medicine", "physician"),
}
PAPER_COUNTS: dict[str, int] = {"cmmlu": 1_325, "ceval": 90}

# Every medical CMMLU subject; C-Eval stays at the paper's three because veterinary_medicine is not human medicine
# (ask for it explicitly as `ceval:veterinary_medicine`).
MEDICAL: dict[str, tuple[str, ...]] = {
    "cmmlu": (*PAPER["cmmlu"], "genetics", "nutrition", "virology"),
    "ceval": PAPER["ceval"],
}
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "paper": PAPER,
    "medical": MEDICAL,
    "xmedbench": {"xmedbench": XMEDBENCH_SOURCES},
}


class BenchmarkError(ValueError):
    """Benchmark data that cannot be used (missing file, column or subject), with the file named."""


@dataclass(frozen=True)
class Question:
    benchmark: str
    subject: str
    split: str
    index: int
    question: str
    options: tuple[str, ...]  # four (CMMLU, C-Eval) or five (some XMedBench) option texts, A first
    answer: str  # one letter; several ("ACE") for XMedBench's multiple-answer items

    @property
    def key(self) -> str:
        if self.benchmark == "xmedbench":  # one file, one test set: the position in it is the id
            return f"xmedbench:{self.subject}:{self.index}"
        return f"{self.benchmark}:{self.subject}:{self.split}:{self.index}"

    @property
    def letters(self) -> tuple[str, ...]:
        return LETTERS[: len(self.options)]

    @property
    def multiple_answer(self) -> bool:
        return len(self.answer) > 1

    def as_example(self) -> dict[str, str]:
        """The record shape LLaMA-Factory's eval template formats."""
        return {"question": self.question, **dict(zip(self.letters, self.options, strict=True)), "answer": self.answer}


@dataclass(frozen=True)
class Subject:
    benchmark: str
    subject: str

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.subject}"


def subject_names() -> dict[str, dict[str, str]]:
    """Chinese subject names for the prompt, as the benchmarks' own subject mappings give them."""
    return json.loads((SHIPPED_DIR / "subjects.json").read_text(encoding="utf-8"))


def display_name(benchmark: str, subject: str) -> str:
    # A subject outside the upstream lists (a custom CSV) falls back to its file name.
    return subject_names()[benchmark].get(subject, subject.replace("_", " "))


def file_name(benchmark: str, subject: str, split: str) -> str:
    return f"{split}/{subject}.csv" if benchmark == "cmmlu" else f"{split}/{subject}_{split}.csv"


class BenchmarkSource:
    """One folder holding CMMLU (`data/{dev,test}`) and/or C-Eval (`{dev,val,test}` folders or ceval-exam.zip)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else SHIPPED_DIR
        if not self.root.is_dir():
            raise BenchmarkError(f"benchmark folder not found: {self.root}")
        self.shipped = self.root.resolve() == SHIPPED_DIR
        self._zip_names: dict[Path, list[str]] = {}

    @cached_property
    def locations(self) -> dict[str, Path]:
        """Where each benchmark lives under root: a folder with split subfolders, or a zip file."""
        found: dict[str, Path] = {}
        cmmlu = ("CMMLU/data", "CMMLU", "cmmlu/data", "cmmlu", "data")
        for rel in cmmlu:
            path = self.root / rel
            if (path / "test").is_dir() or (path / "dev").is_dir():
                found["cmmlu"] = path
                break
        for rel in ("C-Eval", "ceval", "ceval-exam", "."):
            path = self.root / rel
            if not path.is_dir():
                continue
            if (path / "val").is_dir():
                found["ceval"] = path
                break
            zips = sorted(path.glob("*.zip"))
            if zips:
                found["ceval"] = zips[0]
                break
        if (self.root / XMEDBENCH_FILE).is_file():
            found["xmedbench"] = self.root / XMEDBENCH_FILE
        return found

    def describe(self) -> dict[str, str]:
        return {bench: str(path) for bench, path in sorted(self.locations.items())}

    def _members(self, zip_path: Path) -> list[str]:
        if zip_path not in self._zip_names:
            with zipfile.ZipFile(zip_path) as archive:
                self._zip_names[zip_path] = archive.namelist()
        return self._zip_names[zip_path]

    def subjects(self, benchmark: str, split: str) -> list[str]:
        """Subjects that have a CSV for `split`, sorted."""
        where = self.locations.get(benchmark)
        if where is None:
            return []
        if benchmark == "xmedbench":
            return sorted({q.subject for q in self._xmedbench()}) if split == EVAL_SPLIT["xmedbench"] else []
        suffix = ".csv" if benchmark == "cmmlu" else f"_{split}.csv"
        if where.is_dir():
            names = [p.name for p in (where / split).glob(f"*{suffix}")]
        else:
            names = [m.rsplit("/", 1)[-1] for m in self._members(where) if m.rsplit("/", 2)[-2:-1] == [split]]
            names = [n for n in names if n.endswith(suffix)]
        return sorted(n[: -len(suffix)] for n in names)

    def read_bytes(self, benchmark: str, subject: str, split: str) -> tuple[bytes, str]:
        """Raw CSV bytes and a label naming the file (for error messages and the protocol)."""
        where = self.locations.get(benchmark)
        rel = file_name(benchmark, subject, split)
        if where is None:
            raise BenchmarkError(f"no {benchmark} data under {self.root} (expected {self.expected(benchmark)})")
        if where.is_dir():
            path = where / rel
            if not path.is_file():
                raise BenchmarkError(f"{benchmark} file not found: {path}")
            return path.read_bytes(), str(path)
        member = next((m for m in self._members(where) if m == rel or m.endswith("/" + rel)), None)
        if member is None:
            raise BenchmarkError(f"{benchmark} file not found: {where}:{rel}")
        with zipfile.ZipFile(where) as archive:
            return archive.read(member), f"{where}:{member}"

    @staticmethod
    def expected(benchmark: str) -> str:
        if benchmark == "cmmlu":
            return "CMMLU/data/{dev,test}/<subject>.csv"
        if benchmark == "xmedbench":
            return XMEDBENCH_FILE
        return "C-Eval/{dev,val}/<subject>_<split>.csv or C-Eval/ceval-exam.zip"

    def _xmedbench(self) -> list[Question]:
        if not hasattr(self, "_xmed"):
            path = self.locations["xmedbench"]
            data = path.read_bytes()
            self._xmed = parse_xmedbench(data, str(path))
            self._xmed_sha = hashlib.sha256(data).hexdigest()
        return self._xmed

    def load(self, benchmark: str, subject: str, split: str) -> tuple[list[Question], dict[str, str]]:
        """Questions of one CSV (or one XMedBench source) and its provenance (file label, sha256)."""
        if benchmark == "xmedbench":
            if "xmedbench" not in self.locations:
                raise BenchmarkError(f"no xmedbench data under {self.root} (expected {XMEDBENCH_FILE})")
            if split != EVAL_SPLIT["xmedbench"]:
                raise BenchmarkError(f"xmedbench has only a {EVAL_SPLIT['xmedbench']} split (no few-shot pool)")
            questions = [q for q in self._xmedbench() if q.subject == subject]
            return questions, {"file": XMEDBENCH_FILE, "sha256": self._xmed_sha}
        data, label = self.read_bytes(benchmark, subject, split)
        questions = parse_csv(data, label, benchmark, subject, split)
        # Paths relative to the benchmark folder keep mcq.json identical across machines.
        relative = label.removeprefix(str(self.root)).lstrip("/\\") or label
        return questions, {"file": relative, "sha256": hashlib.sha256(data).hexdigest()}


def parse_csv(data: bytes, label: str, benchmark: str, subject: str, split: str) -> list[Question]:
    """Parse one CSV; C-Eval rows end in CRLF while quoted cells hold bare LF, so the csv module sees raw newlines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BenchmarkError(f"{label}: not UTF-8 ({err})") from err
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    columns = COLUMNS[benchmark]
    need = [columns[k] for k in ("question", *CHOICES, "answer")]
    missing = [col for col in need if col not in header]
    if missing:
        raise BenchmarkError(f"{label}: missing column {missing[0]!r} (header: {','.join(header)})")
    questions = []
    for row_number, row in enumerate(reader):
        if None in row:
            raise BenchmarkError(f"{label}: data row {row_number + 1} has more cells than the header")
        answer = (row[columns["answer"]] or "").strip()
        if answer not in CHOICES:
            raise BenchmarkError(f"{label}: data row {row_number + 1} has answer {answer!r}, not one of A/B/C/D")
        raw_id = row.get(columns["id"], "")
        index = int(raw_id) if raw_id is not None and raw_id.strip().isdigit() else row_number
        questions.append(
            Question(
                benchmark=benchmark,
                subject=subject,
                split=split,
                index=index,
                question=row[columns["question"]],
                options=tuple(row[columns[ch]] for ch in CHOICES),  # type: ignore[arg-type]
                answer=answer,
            )
        )
    return questions


_XMED_OPTION = re.compile(r"\(([A-E])\) (.*)")
_XMED_ANSWER = re.compile(r"\(([A-E]+)\)")


def parse_xmedbench(data: bytes, label: str) -> list[Question]:
    """XMedBench's zh.json: `options` "(A) ….\n(B) …." (4 or 5; Apollo's trailing '.' dropped), answer "(D)"."""
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchmarkError(f"{label}: not UTF-8 JSON ({err})") from None
    if not isinstance(items, list):
        raise BenchmarkError(f"{label}: expected a JSON array of questions")
    questions = []
    for index, item in enumerate(items):
        where = f"{label}: item {index}"
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("question", "options", "answer", "source")
        ):
            raise BenchmarkError(f"{where}: needs string question, options, answer and source")  # fmt: skip
        options: list[str] = []
        for line in item["options"].split("\n"):
            match = _XMED_OPTION.fullmatch(line.strip())
            if not match or match.group(1) != LETTERS[len(options)]:
                raise BenchmarkError(f"{where}: option line {line[:40]!r} is not '({LETTERS[len(options)]}) …'")
            text = match.group(2)
            options.append(text[:-1] if text.endswith(".") else text)
        answer = _XMED_ANSWER.fullmatch(item["answer"].strip())
        if len(options) not in (4, 5) or not answer or any(a not in LETTERS[: len(options)] for a in answer.group(1)):
            raise BenchmarkError(f"{where}: {len(options)} options and answer {item['answer']!r}")
        questions.append(
            Question(
                benchmark="xmedbench",
                subject=item["source"],
                split=EVAL_SPLIT["xmedbench"],
                index=index,
                question=item["question"],
                options=tuple(options),
                answer=answer.group(1),
            )
        )
    return questions


def resolve_subjects(spec: str | Iterable[str], source: BenchmarkSource) -> list[Subject]:
    """Expand `paper`, `medical`, `cmmlu:all`, `cmmlu:anatomy,ceval:physician` or a bare unambiguous subject."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise BenchmarkError("no subjects given")
    available = {bench: source.subjects(bench, EVAL_SPLIT[bench]) for bench in BENCHMARKS}
    chosen: set[tuple[str, str]] = set()
    for item in items:
        if item in PRESETS:
            chosen.update((bench, subj) for bench, subjects in PRESETS[item].items() for subj in subjects)
            continue
        bench, sep, subj = item.partition(":")
        if not sep:
            bench, subj = _bare(item, available)
        if bench not in BENCHMARKS:
            raise BenchmarkError(
                f"unknown benchmark {bench!r} in {item!r}; use cmmlu:<subject>, ceval:<subject> or xmedbench:<source>"
            )
        if subj in ("all", "*"):
            if not available[bench]:
                raise BenchmarkError(f"no {bench} {EVAL_SPLIT[bench]} files under {source.root}")
            chosen.update((bench, s) for s in available[bench])
            continue
        chosen.add((bench, subj))
    order = {bench: i for i, bench in enumerate(BENCHMARKS)}
    result = [Subject(b, s) for b, s in sorted(chosen, key=lambda bs: (order[bs[0]], bs[1]))]
    for subject in result:
        bench, subj = subject.benchmark, subject.subject
        if bench not in source.locations:
            raise BenchmarkError(
                f"{subject.key} asked for, but there is no {bench} data under {source.root} "
                f"(expected {source.expected(bench)})"
            )
        if subj not in available[bench]:
            known = ", ".join(available[bench]) or "none"
            raise BenchmarkError(
                f"unknown subject {bench}:{subj}: no {file_name(bench, subj, EVAL_SPLIT[bench])} under "
                f"{source.locations[bench]} (available: {known})"
            )
    return result


def _bare(name: str, available: dict[str, list[str]]) -> tuple[str, str]:
    hits = [bench for bench in BENCHMARKS if name in available[bench] or name in subject_names().get(bench, {})]
    if len(hits) == 1:
        return hits[0], name
    if not hits:
        raise BenchmarkError(f"unknown subject {name!r}; presets: {', '.join(PRESETS)}; or cmmlu:<s> / ceval:<s>")
    raise BenchmarkError(f"subject {name!r} is in both CMMLU and C-Eval; write cmmlu:{name} or ceval:{name}")

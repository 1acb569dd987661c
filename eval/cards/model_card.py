"""`model-card`: a Hub-ready README.md for a LoRA adapter, from the adapter folder, report.json and manifest.json.

It replaces the placeholder LLaMA-Factory writes (`base_model` a local path, `license: other`, `results: []`):
the base model's hub id and licence, and a model-index of the report's numbers with each one's dataset and split.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from eval.cards import adapter as adapters
from eval.cards import licences, model_text
from eval.cards import manifest as mf
from eval.cards import recipe as recipes
from eval.cards import results as report_results
from eval.cards.common import CardError, is_hub_id, local_paths, warn
from eval.common import requests
from eval.common.files import atomic_write_text

VERB = "model-card"
LICENCE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
LICENCES_DOC = "https://huggingface.co/docs/hub/repositories-licenses"
TAGS = ("medical", "chinese", "lora", "peft", "llama-factory", "medasst")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, help="the adapter folder (output_dir of `llamafactory-cli train`)")
    parser.add_argument("--report", required=True, help="report.json of `eval.run report`, or its folder")
    parser.add_argument("--data", default="data", help="the `converters build` folder with manifest.json (data)")
    parser.add_argument("--recipe", help="the training recipe (default: the recipes/*.yaml whose output_dir it is)")
    parser.add_argument("--base-model", help="hub id of the base model (default: the recipe's model_name_or_path)")
    parser.add_argument(
        "--parent-adapter",
        nargs="+",
        default=(),
        help="hub ids of the adapters it was trained on top of (a preference stage), in order",
    )
    parser.add_argument("--system", help="the report's system this adapter is (default: the report's reference)")
    parser.add_argument("--license", help="Hub licence id, for a base model whose licence is not known here")
    parser.add_argument("--dataset-id", help="hub id of the published dataset card (`dataset-card`), listed first")
    parser.add_argument("--notice", help="a line shown at the top of the card (e.g. the demo's tiny-model note)")
    parser.add_argument("--output", help="where to write the card (default: ADAPTER/README.md, replacing LF's)")
    parser.add_argument(
        "--merged",
        action="store_true",
        help="the card of the adapter merged into its base (`llamafactory-cli export`): transformers",
    )


@dataclass(frozen=True)
class ModelCardRequest:
    adapter: Path
    report: Path
    data: Path = Path("data")
    recipe: Path | None = None
    base_model: str | None = None
    parent_adapter: tuple[str, ...] = ()
    system: str | None = None
    license: str | None = None
    dataset_id: str | None = None
    notice: str | None = None
    output: Path | None = None
    merged: bool = False

    def __post_init__(self) -> None:
        if not Path(self.adapter).is_dir():
            raise requests.UsageError(f"--adapter {self.adapter}: folder not found")
        if not (Path(self.adapter) / adapters.ADAPTER_CONFIG).is_file():
            raise requests.UsageError(f"--adapter {self.adapter}: no {adapters.ADAPTER_CONFIG} there (not a PEFT "
                                      "adapter; pass the output_dir of `llamafactory-cli train`)")  # fmt: skip
        report = Path(self.report)
        if not (report / report_results.REPORT_FILE).is_file() and not report.is_file():
            raise requests.UsageError(f"--report {self.report}: no report.json there (run `eval.run report` first)")
        if self.recipe is not None:
            requests.input_file(Path(self.recipe), "recipe")
        for name, value in (("base-model", self.base_model), ("dataset-id", self.dataset_id),
                            *(("parent-adapter", p) for p in self.parent_adapter)):  # fmt: skip
            if value is not None and not is_hub_id(value):
                raise requests.UsageError(f"--{name} {value}: not a hub id like Qwen/Qwen2-7B (a card never names a "
                                          "local path)")  # fmt: skip
        if self.license is not None and not LICENCE_ID.match(self.license):
            raise requests.UsageError(f"--license {self.license!r}: a Hub licence id like apache-2.0 or llama3")
        if self.output is not None and Path(self.output).is_dir():
            raise requests.UsageError(f"--output {self.output} is a folder; pass the README.md file to write")


def base_model(request: ModelCardRequest, recipe: recipes.Recipe | None, adapter: adapters.Adapter) -> str | None:
    """The user's hub id, else the recipe's, else the adapter's own when it is one; never a local path."""
    for candidate in (request.base_model, recipe.model if recipe else None, adapter.base_model):
        if is_hub_id(candidate):
            return candidate
    warn(VERB, "the base model is a local path and no --base-model was given: `base_model` is left out of the card "
               "(pass --base-model ORG/NAME)")  # fmt: skip
    return None


def licence(request: ModelCardRequest, base: str | None) -> licences.Licence | None:
    if request.license:
        known = next((lic for lic in licences.BASE_MODELS.values() if lic.hub_id == request.license), None)
        return known or licences.Licence(request.license, request.license, LICENCES_DOC)
    if base in licences.BASE_MODELS:
        return licences.BASE_MODELS[base]
    warn(VERB, f"no licence known for the base model {base or '(unnamed)'}: `license: other` (pass --license)")
    return None


def card_data(inputs: model_text.CardInputs):
    from huggingface_hub import EvalResult, ModelCardData

    lic = inputs.licence
    stage = inputs.recipe.stage if inputs.recipe else "sft"
    datasets = ([inputs.dataset_id] if inputs.dataset_id else []) + licences.hub_datasets(mf.sources(inputs.manifest))
    evals = [
        EvalResult(task_type=m.benchmark.task_type, task_name=m.benchmark.task_name,
                   dataset_type=m.benchmark.dataset_type, dataset_name=m.benchmark.dataset_name,
                   dataset_split=m.benchmark.split, metric_type=m.metric_type, metric_name=m.metric_name,
                   metric_value=m.value)
        for m in inputs.results.metrics
    ]  # fmt: skip
    extra = {} if lic else {"license_name": "see-base-model", "license_link": LICENCES_DOC}
    return ModelCardData(
        base_model=inputs.base_model, library_name="transformers" if inputs.merged else "peft",
        pipeline_tag="text-generation",
        license=lic.hub_id if lic else "other", language=["zh"], datasets=datasets or None,
        tags=[*TAGS, stage, *(["merged"] if inputs.merged else [])], model_name=inputs.system,
        eval_results=evals or None,
        tasks=["text-generation"], frameworks=["pytorch"],  # ModelScope's names for pipeline_tag / library_name
        **extra,
    )  # fmt: skip


def build(request: ModelCardRequest) -> str:
    adapter = adapters.load(Path(request.adapter))
    recipe_path = Path(request.recipe) if request.recipe else recipes.find_for(Path(request.adapter))
    recipe = recipes.load(recipe_path) if recipe_path else None
    if recipe is None:
        warn(VERB, "no --recipe, and no recipes/*.yaml trains into this folder: the card shows no recipe")
    if recipe and recipe.parents and len(request.parent_adapter) < len(recipe.parents):
        warn(VERB, f"{recipe.name} trains on top of {len(recipe.parents)} adapter(s): pass --parent-adapter with "
                   "their hub ids to link them")  # fmt: skip
    base = base_model(request, recipe, adapter)
    manifest = mf.load(Path(request.data))
    test_set = request.dataset_id or "medasst_test"
    results = report_results.load(Path(request.report), request.system, test_set)
    inputs = model_text.CardInputs(
        system=results.system, base_model=base, licence=licence(request, base),
        chain=recipes.chain(base, recipe, request.parent_adapter), adapter=adapter, recipe=recipe,
        results=results, manifest=manifest, dataset_id=request.dataset_id, notice=request.notice,
        merged=request.merged,
    )  # fmt: skip
    text = f"---\n{card_data(inputs).to_yaml()}\n---\n\n{model_text.body(inputs)}"
    found = local_paths(text)
    if found:  # an input carried one (a recipe value, a notice): refuse rather than publish it
        raise CardError(f"the card would name a local path ({found[0]}); pass hub ids / remove it from the input")
    return text


def main(request: ModelCardRequest) -> int:
    try:
        text = build(request)
    except CardError as e:
        print(f"{VERB}: error: {e}", file=sys.stderr)
        return 2
    out = Path(request.output) if request.output else Path(request.adapter) / "README.md"
    atomic_write_text(out, text)
    print(f"{VERB}: {out}")
    return 0


REQUEST = ModelCardRequest

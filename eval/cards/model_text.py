"""The Markdown body of an adapter's model card: results with their fingerprints, the adapter chain, the recipe
and the arguments as trained, the data, the evaluation protocol, intended use, the disclaimer and limitations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eval.cards import licences
from eval.cards import manifest as mf
from eval.cards.adapter import FRAMEWORKS_HEADING, HYPERPARAMETERS_HEADING, Adapter
from eval.cards.recipe import Recipe
from eval.cards.results import Results

# recipe key → (where the adapter records it, its key there); compared to show what a run overrode
AS_TRAINED: dict[str, tuple[str, str]] = {
    "lora_rank": ("lora", "r"),
    "lora_alpha": ("lora", "lora_alpha"),
    "lora_dropout": ("lora", "lora_dropout"),
    "lora_target": ("lora", "target_modules"),
    "learning_rate": ("hyperparameters", "learning_rate"),
    "per_device_train_batch_size": ("hyperparameters", "train_batch_size"),
    "seed": ("hyperparameters", "seed"),
    "lr_scheduler_type": ("hyperparameters", "lr_scheduler_type"),
    "warmup_steps": ("hyperparameters", "lr_scheduler_warmup_steps"),
    "num_train_epochs": ("hyperparameters", "num_epochs"),
    "max_steps": ("hyperparameters", "training_steps"),
    "gradient_accumulation_steps": ("hyperparameters", "gradient_accumulation_steps"),
}
DEFAULTS = {"warmup_steps": 0, "gradient_accumulation_steps": 1}  # what the Trainer leaves out of its list
PRECISION = ("bf16", "fp16")  # the Trainer lists "mixed_precision_training: Native AMP" only when one is on


def as_trained(key: str, sources: dict[str, dict[str, Any]]) -> Any:
    """What the adapter's own files say a recipe key was in the run; None when they do not record it."""
    hyper = sources["hyperparameters"]
    if not hyper:
        return None
    if key in PRECISION:
        return "mixed precision" if "mixed_precision_training" in hyper else "off"
    if key == "num_train_epochs" and "training_steps" in hyper:
        return "max_steps wins"  # a step limit ends the run whatever the epochs say
    where, name = AS_TRAINED.get(key, ("", ""))
    return sources.get(where, {}).get(name, DEFAULTS.get(key)) if where else None


def _matches(key: str, recipe: Any, trained: Any) -> bool:
    if key in PRECISION:
        return bool(recipe) == (trained == "mixed precision")
    if key == "lora_target" and isinstance(trained, list):  # `all`: every linear layer, whatever they are named
        return recipe == "all" or sorted(str(recipe).split(",")) == sorted(trained)
    return _same(recipe, trained)


@dataclass(frozen=True)
class CardInputs:
    system: str
    base_model: str | None
    licence: licences.Licence | None
    chain: list[str]
    adapter: Adapter
    recipe: Recipe | None
    results: Results
    manifest: dict[str, Any]
    dataset_id: str | None
    notice: str | None
    merged: bool = False  # the card of the export that merged the adapter into its base


def _num(value: float, percent: bool) -> str:
    return f"{value:.2f}" if percent else f"{value:.3f}"


def results_section(results: Results) -> str:
    lines = [
        "## Results", "",
        f"System `{results.system}` of the evaluation report (report fingerprint `{results.report_digest}`). The same "
        "numbers, at full precision, are in the `model-index` of this card's metadata; model-index has no field for "
        "a fingerprint, so each number's is here: the digest of the result file it was read from (`eval.run` "
        "recomputes or refuses whenever that digest would change).", "",
        "| benchmark | split | metric | value | result file | fingerprint |", "|---|---|---|---:|---|---|",
    ]  # fmt: skip
    for m in results.metrics:
        value = _num(m.value, "fraction" not in m.metric_name)
        lines.append(f"| {m.benchmark.dataset_name} | {m.benchmark.split} | {m.metric_name} | {value} | "
                     f"`{m.source}` | `{m.digest}` |")  # fmt: skip
    lines.append("")
    if results.resamples:
        lines.append(f"p-values against `{results.reference}` in the report: paired bootstrap, {results.resamples} "
                     f"resamples, seed {results.seed}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def lineage_section(card: CardInputs) -> str:
    lines = ["## Base model and adapter chain", "", " → ".join(card.chain), ""]
    if card.base_model is None:
        lines.append("The base model is not named: the adapter was trained on a local folder and no hub id was "
                     "given (`--base-model`).")  # fmt: skip
    if card.licence is not None:
        lines.append(f"Licence: the base model's, [{card.licence.name}]({card.licence.link}) "
                     f"(`{card.licence.hub_id}`); the adapter is used with, and bound by, the base model.")  # fmt: skip
    else:
        lines.append("Licence: not known for this base model; see the base model's own card.")
    return "\n".join(lines) + "\n"


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def training_section(card: CardInputs) -> str:
    adapter, recipe = card.adapter, card.recipe
    lines = ["## Training", ""]
    lora = adapter.lora()
    sources = {"lora": lora, "hyperparameters": adapter.hyperparameters}
    if recipe is not None:
        lines += [f"Recipe: `{recipe.name}` (LLaMA-Factory, stage `{recipe.stage}`), run with "
                  "`llamafactory-cli train`.", "", "| setting | recipe | as trained |", "|---|---|---|"]  # fmt: skip
        shown = recipe.shown()
        # a setting the run added (a `key=value` override such as max_steps) is shown too, against "not set"
        added = [k for k, (where, name) in AS_TRAINED.items() if k not in shown and name in sources[where]]
        for key in [*shown, *added]:
            value = f"`{shown[key]}`" if key in shown else "not set"
            trained = as_trained(key, sources)
            if trained is None:
                lines.append(f"| {key} | {value} | |")
            else:
                mark = "" if key in shown and _matches(key, shown[key], trained) else " (**differs**)"
                lines.append(f"| {key} | {value} | `{trained}`{mark} |")
        lines.append("")
    else:
        lines += ["Recipe: not given (`--recipe`); the arguments below are the adapter's own.", ""]
    lines += ["LoRA, from `adapter_config.json`:", ""]
    lines += [f"- {k}: `{v}`" for k, v in lora.items()]
    state = {**adapter.state, **adapter.results}
    if state:
        lines += ["", "Run, from `trainer_state.json` / `all_results.json`:", ""]
        lines += [f"- {k}: `{v}`" for k, v in sorted(state.items())]
    lines += ["", f"### {HYPERPARAMETERS_HEADING} (as trained)", ""]
    if adapter.hyperparameters:
        lines.append("The Trainer's own list, from the card it wrote into the adapter folder:")
        lines.append("")
        lines += [f"- {k}: {v}" for k, v in adapter.hyperparameters.items()]
    else:
        lines.append("The adapter folder holds no Trainer card (README.md) to read them from.")
    if adapter.frameworks:
        lines += ["", f"### {FRAMEWORKS_HEADING}", ""] + [f"- {f}" for f in adapter.frameworks]
    return "\n".join(lines) + "\n"


def data_section(card: CardInputs) -> str:
    manifest = card.manifest
    link = "the dataset card that `python -m eval.run dataset-card` writes into `data/`"
    if card.dataset_id:
        link = f"the dataset card [`{card.dataset_id}`](https://huggingface.co/datasets/{card.dataset_id})"
    lines = ["## Training data", "",
             f"The MedAsst merge built by `python -m converters build` (manifest version "
             f"{manifest.get('manifest_version')}); the full counts, filters and licences are in {link}.", "",
             mf.merged_table(manifest), "Filters applied:", ""]  # fmt: skip
    lines += [f"- {f}" for f in mf.filters(manifest)]
    lines += ["", "| source | upstream | licence |", "|---|---|---|"]
    for source in mf.sources(manifest):
        for up in licences.SOURCES.get(source, ()):
            lines.append(f"| {source} | [{up.title}]({up.url}) | {licences.licence_text(up)} |")
    return "\n".join(lines) + "\n"


def _describe(fields: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = []
    for key in keys:
        value = fields.get(key)
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()) if not isinstance(v, dict | list))
        elif isinstance(value, list):
            value = f"{len(value)} entries"
        if value not in (None, ""):
            parts.append(f"{key}: `{value}`")
    return "; ".join(parts) or "not recorded"


def protocol_section(card: CardInputs) -> str:
    protocols = card.results.protocols
    lines = ["## Evaluation protocol", "",
             "- Multiple choice (`python -m eval.run mcq`): the paper's medical subjects of CMMLU (test split) and "
             "C-Eval (val split: its test answers are not public); overall is the mean of the two accuracies. "
             + _describe(protocols.get("mcq.json", {}), ("protocol", "n_shot", "subjects", "scoring", "template",
                                                         "dtype")) + ".",
             ]  # fmt: skip
    if "scores.json" in protocols:
        lines.append("- Generation (`eval.run generate`) on the MedAsst test dialogues, scored with BLEU-4 / ROUGE "
                     "(`eval.run score`, ×100): "
                     + _describe(protocols.get("generate_run.json", {}),
                                 ("dataset", "cutoff_len", "max_new_tokens", "decoding", "backend")) + "; "
                     + _describe(protocols["scores.json"], ("metric", "bootstrap")) + ".")  # fmt: skip
    if any(m.source == "judge.json" for m in card.results.metrics):
        lines.append("- LLM judge (`eval.run judge`): pairwise answers judged in both orders (a verdict that flips "
                     "is a tie), and a safety rubric on the safety items; rates are fractions of the parsed "
                     "verdicts.")  # fmt: skip
    lines.append(
        "- Reproduce: `python -m eval.run --config eval/configs/paper.yaml` (see the repository's "
        "eval/README.md); each result file's fingerprint above names exactly what it was computed from."
    )
    return "\n".join(lines) + "\n"


USE = """## Intended use

Research on Chinese medical dialogue: reproducing and comparing fine-tuning recipes, and studying how a general
model changes when tuned on public medical question-answer data. It is not a medical device and is not meant for
diagnosis, treatment or triage of real patients.

## Medical disclaimer

This model's answers are generated text, not medical advice. They can be wrong, out of date, or unsafe, and they
are not checked by a clinician. Do not use them to make decisions about anyone's health; consult a qualified
doctor. In an emergency, call your local emergency number.

## Limitations

- Trained on public web and forum data (MedChatZH, Huatuo-26M, CMtMedQA, webMedQA): answers inherit its errors,
  templates, dated advice and biases; the data was cleaned mechanically (see the filters), not reviewed.
- Chinese only; multiple-choice accuracy and BLEU / ROUGE against one reference answer say little about clinical
  correctness or safety; judge rates depend on the judge model.
- Exam questions may overlap with web training data; see the contamination audit of the repository's eval/README.md.
"""


def how_to_use(card: CardInputs) -> str:
    base = card.base_model or "BASE_MODEL"
    template = (card.recipe.values.get("template") if card.recipe else None) or "the recipe's template"
    if card.merged:
        return f"""## How to use

The LoRA adapter merged into `{base}` (`llamafactory-cli export`): a plain transformers checkpoint.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("THIS_REPO_ID")
model = AutoModelForCausalLM.from_pretrained("THIS_REPO_ID")
```

Prompt with the chat format it was trained on (LLaMA-Factory template `{template}`; the export writes it into the
tokenizer's chat template).
"""
    return f"""## How to use

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{base}")
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base}"), "THIS_REPO_ID")
```

Prompt with the chat format it was trained on (LLaMA-Factory template `{template}`), or run it with
`llamafactory-cli chat` / `webchat` and the repository's `*_infer.yaml` recipe.
"""


MODELSCOPE = """## ModelScope

The same README.md serves ModelScope: its metadata reads `tasks` and `frameworks` (written above beside Hugging
Face's `pipeline_tag` and `library_name`) and shares `license`, `language`, `base_model`, `datasets` and `tags`.
ModelScope does not read `model-index`; the Results table above carries the numbers there.
"""


def body(card: CardInputs) -> str:
    kind = "a LoRA adapter merged into" if card.merged else "a LoRA adapter of"
    title = f"# {card.system}: {kind} {card.base_model}" if card.base_model else f"# {card.system}"
    head = [title, ""]
    if card.notice:
        head += [f"> **{card.notice.strip()}**", ""]
    head += ["A LoRA adapter trained with LLaMA-Factory on a merge of four public Chinese medical dialogue sets "
             "(MedAsst). This card was written by `python -m eval.run model-card` from the adapter's own files, the "
             "evaluation report and the data manifest.", ""]  # fmt: skip
    parts = [results_section(card.results), lineage_section(card), training_section(card), data_section(card),
             protocol_section(card), USE, how_to_use(card), MODELSCOPE]  # fmt: skip
    return "\n".join(head) + "\n" + "\n".join(parts)

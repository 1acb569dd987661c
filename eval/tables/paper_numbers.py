"""The paper's published numbers (Table 2, Table 3 = Figure 4), for side-by-side columns in `report`.

Source: "医疗电商平台中大语言模型驱动的中文医学对话系统研究", E-Commerce Letters 2024, 13(4) 1611-1620.
"""

from __future__ import annotations

# Row order of the paper's tables; `report` lists these first, then any other system by name.
SYSTEMS: tuple[str, ...] = ("LlaMa-3-8B", "Gemma-7B", "Mistral-7B", "Qwen2-7B", "MedAsst")
REFERENCE = "MedAsst"  # the system every other one is tested against

# Table 2: accuracy (%) on CMMLU + C-Eval medical multiple choice; overall = mean of the two benchmarks.
TABLE2_COLUMNS: tuple[str, ...] = ("cmmlu", "ceval", "overall")
TABLE2_LABELS: dict[str, str] = {"cmmlu": "CMMLU", "ceval": "C-Eval", "overall": "overall"}
TABLE2: dict[str, dict[str, float]] = {
    "LlaMa-3-8B": {"cmmlu": 42.04, "ceval": 54.44, "overall": 48.24},
    "Gemma-7B": {"cmmlu": 24.23, "ceval": 27.78, "overall": 26.01},
    "Mistral-7B": {"cmmlu": 35.85, "ceval": 53.33, "overall": 44.59},
    "Qwen2-7B": {"cmmlu": 87.02, "ceval": 87.78, "overall": 87.40},
    "MedAsst": {"cmmlu": 88.32, "ceval": 91.11, "overall": 89.72},
}
# Every CMMLU value above but MedAsst's is k/1,325 to two decimals (Qwen2-7B: 1,153/1,325 = 87.02); no k gives
# 88.32 (1,170/1,325 = 88.30, 1,171/1,325 = 88.38), so the paper's MedAsst CMMLU value cannot be a plain accuracy
# on its 1,325 questions.
TABLE2_NOTE = (
    "Note: the paper's MedAsst CMMLU value 88.32 is not k/1,325 for any k (1,170/1,325 = 88.30, "
    "1,171/1,325 = 88.38), while the other systems' CMMLU values are; it is printed as published."
)

# Table 3 (plotted as Figure 4): generation on the 8,975 test dialogues, LF's predict metrics ×100.
TABLE3_COLUMNS: tuple[str, ...] = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
TABLE3_LABELS: dict[str, str] = {"bleu-4": "BLEU-4", "rouge-1": "ROUGE-1", "rouge-2": "ROUGE-2", "rouge-l": "ROUGE-L"}
TABLE3: dict[str, dict[str, float]] = {
    "LlaMa-3-8B": {"bleu-4": 1.83, "rouge-1": 20.39, "rouge-2": 5.20, "rouge-l": 8.16},
    "Gemma-7B": {"bleu-4": 6.01, "rouge-1": 22.20, "rouge-2": 5.86, "rouge-l": 17.56},
    "Mistral-7B": {"bleu-4": 5.36, "rouge-1": 21.53, "rouge-2": 5.46, "rouge-l": 16.36},
    "Qwen2-7B": {"bleu-4": 6.03, "rouge-1": 21.82, "rouge-2": 5.83, "rouge-l": 16.17},
    "MedAsst": {"bleu-4": 6.70, "rouge-1": 22.80, "rouge-2": 6.66, "rouge-l": 18.17},
}

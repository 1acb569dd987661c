"""Scores MedAsst adapters: medical multiple choice (CMMLU + C-Eval) and dialogue generation (BLEU-4 / ROUGE)."""

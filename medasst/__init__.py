"""Facts shared by `converters`, `eval` and the demo: dataset names, file layout, cache dir, tiny models."""

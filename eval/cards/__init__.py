"""Hub-ready cards written from a run's own files: `model-card` (an adapter, its report and its data manifest) and
`dataset-card` (a `converters build` folder). Both render offline with huggingface_hub and never name a path of
the machine they were made on."""

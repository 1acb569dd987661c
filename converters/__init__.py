"""Raw MedChatZH / Huatuo-26M / CMtMedQA / webMedQA files → LLaMA-Factory Alpaca JSONL with history.

`python -m converters build --raw-dir RAW` runs the whole pipeline (see `pipeline.build`);
each source module yields `Record`s or counted `Skip`s and knows nothing about the others.
"""

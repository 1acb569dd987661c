"""`--config` when a system fails: one line naming it and the cause (the traceback in its own log), and its old
results never shown in the report under its name."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from types import SimpleNamespace

from test_eval_report import make_run

from eval import model_steps, pipeline


def test_a_step_that_raises_is_one_line_and_its_traceback_goes_to_the_systems_log(tmp_path, monkeypatch, capsys):
    boom = tmp_path / "boom_step.py"
    boom.write_text(
        "def main(request):\n"
        "    raise OSError('Can\\'t load the config for /models/missing. If you were trying to load it from the "
        "Hub, make sure...\\nsecond line of the message')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(model_steps.STEP_MODULES, "mcq", "boom_step")
    receive, send = multiprocessing.Pipe(duplex=False)
    run_dir = tmp_path / "runs" / "medasst"
    model_steps.model_steps_child([("mcq", SimpleNamespace(output=str(run_dir)))], send, "MedAsst")
    assert receive.recv()["codes"] == {"mcq": 1}
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("[MedAsst] mcq failed: OSError: Can't load the config for /models/missing.")
    assert "second line" not in err[0] and f"the traceback is in {run_dir / 'mcq.error.log'}" in err[0]
    assert "Traceback (most recent call last)" in (run_dir / "mcq.error.log").read_text()


def test_a_system_whose_step_failed_is_left_out_of_the_report(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    for name in ("Qwen2-7B", "MedAsst"):
        make_run(runs, name, 0.8)  # results of an earlier run are in both folders
    systems = [pipeline.System(name=n, model="m", template="qwen", run_dir=runs / n.lower())
               for n in ("Qwen2-7B", "MedAsst")]  # fmt: skip
    config = pipeline.Config(output_dir=tmp_path, systems=systems, report={"resamples": 50})
    assert pipeline.report_step(config, {"Qwen2-7B": ["mcq"]}) == 0
    assert "report: left out Qwen2-7B: a step failed in this run" in capsys.readouterr().err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["systems"] == ["MedAsst"]

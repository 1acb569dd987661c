"""Serving MedAsst: `llamafactory-cli api recipes/medasst_qwen2_infer.yaml`, driven by the real `openai` client.

The server runs the infer recipe with `key=value` overrides only (a tiny Qwen2 + an adapter that the real MedAsst
recipe taught to answer every exam question with "C"), on a free 127.0.0.1 port with an API key, and is always
stopped by the test.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from lfcli import CLI, LETTER, REPO_ROOT, exam_prompts, lf_env
from servers import free_port, lf_server

pytestmark = pytest.mark.slow

API_KEY = "medasst-test-key"
SYSTEM = "You are a helpful assistant."  # the recipe's default_system, as in training


@pytest.fixture(scope="module")
def api(taught, tmp_path_factory: pytest.TempPathFactory):
    """(base URL, exam prompts) of a running API server; stopped after the module."""
    model, adapter = taught("qwen2")
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    args = ["api", "recipes/medasst_qwen2_infer.yaml", f"model_name_or_path={model}", f"adapter_name_or_path={adapter}"]
    env = {"API_HOST": "127.0.0.1", "API_PORT": str(port), "API_KEY": API_KEY, "API_MODEL_NAME": "medasst"}
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with lf_server(args, log, f"{url}/v1/models", env, headers=headers) as proc:
        yield url, exam_prompts("ceval:physician", 20), proc


def client(url: str, key: str | None = API_KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key or "no-key", max_retries=0, timeout=120)


def test_lists_the_model_and_answers_multi_turn(api):
    url, questions, _ = api
    openai = client(url)
    assert [m.id for m in openai.models.list().data] == ["medasst"]
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": questions[0]},
        {"role": "assistant", "content": LETTER},
        {"role": "user", "content": questions[1]},
    ]
    reply = openai.chat.completions.create(model="medasst", messages=messages, temperature=0, max_tokens=16)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == LETTER
    assert choice.finish_reason == "stop", "stopped at <|im_end|>, not at max_tokens"
    assert reply.usage.prompt_tokens > 100 and reply.usage.completion_tokens <= 2


def test_streams_the_same_greedy_reply(api):
    url, questions, _ = api
    openai = client(url)
    messages = [{"role": "user", "content": questions[2]}]
    whole = openai.chat.completions.create(model="medasst", messages=messages, temperature=0, max_tokens=16)
    stream = openai.chat.completions.create(
        model="medasst", messages=messages, temperature=0, max_tokens=16, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == whole.choices[0].message.content == LETTER


def test_a_request_without_the_key_is_refused(api):
    import openai as openai_module

    url, questions, _ = api
    for key in (None, "wrong-key"):
        with pytest.raises(openai_module.AuthenticationError) as err:
            client(url, key).chat.completions.create(
                model="medasst", messages=[{"role": "user", "content": questions[0]}], temperature=0
            )
        assert err.value.status_code == 401
    with pytest.raises(urllib.error.HTTPError) as plain:  # the model list too
        urllib.request.urlopen(f"{url}/v1/models", timeout=10)
    assert plain.value.code == 401


def test_sixteen_concurrent_requests_all_answer(api):
    url, questions, proc = api
    openai = client(url)

    def ask(i: int) -> str:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": questions[i]}]
        reply = openai.chat.completions.create(model="medasst", messages=messages, temperature=0, max_tokens=8)
        return reply.choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(16)))
    assert len(answers) == 16 and all(isinstance(a, str) for a in answers)
    assert answers.count(LETTER) >= 15
    assert proc.poll() is None and [m.id for m in openai.models.list().data] == ["medasst"]


@pytest.mark.parametrize(
    ("messages", "detail"),
    [
        ([], "Invalid length"),
        ([{"role": "user", "content": "头痛"}, {"role": "user", "content": "发热"}], "Only supports u/a/u/a/u"),
        ([{"role": "assistant", "content": "您好"}], "Invalid role"),
        ([{"role": "doctor", "content": "头痛"}], None),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_stays_up(api, messages, detail):
    import openai as openai_module

    url, _, proc = api
    openai = client(url)
    with pytest.raises(openai_module.APIStatusError) as err:
        openai.chat.completions.create(model="medasst", messages=messages, temperature=0, max_tokens=4)
    assert 400 <= err.value.status_code < 500
    if detail:
        assert detail in json.dumps(err.value.body)
    assert proc.poll() is None
    assert openai.models.list().data, "still serving"


def test_chat_cli_answers_from_stdin(taught, tmp_path: Path):
    """`llamafactory-cli chat recipes/medasst_qwen2_infer.yaml`, typed into as a user does."""
    model, adapter = taught("qwen2")
    args = [str(CLI), "chat", "recipes/medasst_qwen2_infer.yaml", f"model_name_or_path={model}"]
    args += [f"adapter_name_or_path={adapter}", "max_new_tokens=8"]
    proc = subprocess.run(
        args, cwd=REPO_ROOT, env=lf_env(tmp_path), input="饮酒以后可以服用西地那非吗\nexit\n",
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "User: Assistant: " in proc.stdout, proc.stdout[-2000:]


def test_webchat_serves_on_127_0_0_1(taught, tmp_path: Path):
    model, adapter = taught("qwen2")
    port = free_port()
    # from a scratch folder: the WebUI code writes llamaboard_cache/ into its working directory
    args = ["webchat", str(REPO_ROOT / "recipes/medasst_qwen2_infer.yaml"), f"model_name_or_path={model}"]
    args.append(f"adapter_name_or_path={adapter}")
    env = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    with lf_server(args, tmp_path / "webchat.log", f"http://127.0.0.1:{port}/", env, cwd=tmp_path) as proc:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and b"gradio" in page.read().lower()
        assert proc.poll() is None
    assert proc.poll() is not None, "stopped by the test"
    assert not (REPO_ROOT / "llamaboard_cache").exists(), "nothing written into the checkout"

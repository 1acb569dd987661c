"""The LLaMA-Factory WebUI in a real browser: our datasets from Data dir = the repo root, preview, and a chat.

`llamafactory-cli webui` runs on a free 127.0.0.1 port from a scratch working directory (the WebUI lists adapters
under `saves/<model name>/lora/` of its working directory, so the taught MedAsst adapter is put there) and is
always stopped by the test. Headless Debian Chromium is driven by selenium (a browser download does not work
here); `.ci/run` installs `chromium`, `chromium-driver` and `fonts-noto-cjk`. Locally the test skips, saying why,
when the browser is missing; in CI (CI=true) a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from lfcli import LETTER, REPO_ROOT, exam_prompts
from servers import free_port, lf_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = os.environ.get("MEDASST_SCREENSHOTS")  # a folder to keep the screenshots in, if set
WAIT = 90


def need_browser() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    reason = "Debian's chromium + chromium-driver are not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(reason + "; .ci/run installs them")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def webui(taught, tmp_path_factory: pytest.TempPathFactory):
    need_browser()
    model, adapter = taught("qwen2")
    work = tmp_path_factory.mktemp("webui")
    shutil.copytree(adapter, work / "saves" / "Qwen2-7B" / "lora" / "medasst")
    port = free_port()
    env = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    with lf_server(["webui"], work / "webui.log", url, env, cwd=work):
        yield url, model, work


@pytest.fixture(scope="module")
def browser(webui):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1300", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(webui[0])
        yield driver
    finally:
        driver.quit()


class Page:
    """Gradio components found by their visible labels, as a person finds them."""

    def __init__(self, driver, shots: Path):
        self.driver = driver
        self.shots = shots

    def wait(self, xpath: str, timeout: float = WAIT):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        element = WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.XPATH, xpath))
        )
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        return element

    def until(self, condition, timeout: float = WAIT, message: str = ""):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(lambda _: condition(), message=message)

    def field(self, label: str, tag: str = "*[self::input or self::textarea]"):
        """The visible component labelled `label` (other tabs hold hidden ones of the same name)."""
        from selenium.webdriver.common.by import By

        info = f"//span[@data-testid='block-info' and normalize-space()='{label}']"
        xpath = f"{info}/ancestor::*[.//{tag}][1]//{tag}"
        self.wait(xpath)
        shown = self.until(
            lambda: [e for e in self.driver.find_elements(By.XPATH, xpath) if e.is_displayed()],
            message=f"no visible {label!r}",
        )
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", shown[0])
        return shown[0]

    def type_into(self, label: str, text: str, tag: str = "*[self::input or self::textarea]") -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.field(label, tag)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(text)
        box.send_keys(Keys.TAB)  # Gradio sends the change on blur

    def options(self, label: str) -> list[str]:
        from selenium.webdriver.common.by import By

        self.field(label, "input").click()
        self.wait("//li[@role='option']")
        return [o.get_attribute("aria-label") for o in self.driver.find_elements(By.XPATH, "//li[@role='option']")]

    def choose(self, label: str, value: str) -> None:
        self.field(label, "input").click()
        self.wait(f"//li[@role='option' and @aria-label='{value}']").click()
        self.wait("//h1").click()  # close the list

    def button(self, text: str):
        return self.wait(f"//button[normalize-space()='{text}']")

    def shot(self, name: str) -> Path:
        path = self.shots / name
        self.driver.save_screenshot(str(path))
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SCREENSHOTS) / name)
        return path


@pytest.fixture(scope="module")
def page(browser, webui) -> Page:
    return Page(browser, webui[2])


def test_train_tab_lists_and_previews_our_datasets(page: Page):
    page.type_into("Data dir", str(REPO_ROOT))
    info = json.loads((REPO_ROOT / "dataset_info.json").read_text(encoding="utf-8"))
    page.until(lambda: "medasst_demo_test" in page.options("Dataset"), message="the dataset list never filled")
    listed = page.options("Dataset")
    assert listed == list(info), "every registered dataset, in dataset_info.json's order"
    for name in (
        "medasst_train",
        "medasst_test",
        "medchatzh_train",
        "huatuo26m_test",
        "cmtmedqa_train",
        "webmedqa_test",
    ):
        assert name in listed
    page.wait("//h1").click()

    page.choose("Dataset", "medasst_demo_test")
    preview = page.button("Preview dataset")
    page.until(preview.is_enabled, message="Preview stays disabled although the file exists")
    preview.click()
    records = (REPO_ROOT / info["medasst_demo_test"]["file_name"]).read_text(encoding="utf-8").splitlines()
    page.until(lambda: page.field("Count", "input").get_attribute("value") == str(len(records)))
    samples = page.wait("//*[contains(@class, 'json')]")
    for _ in range(len(records)):  # page on to the first multi-turn dialogue
        if "'history': [['" in samples.text or '"history": [["' in samples.text:
            break
        before = samples.text
        page.button("Next").click()
        page.until(lambda before=before: samples.text != before)
    text = samples.text
    assert "'history': [['" in text or '"history": [["' in text, "a record with its earlier turns"
    first_multi_turn = next(json.loads(line) for line in records if json.loads(line)["history"])
    assert first_multi_turn["history"][0][0][:10] in text
    shot = page.shot("webui-train-preview.png")
    assert shot.stat().st_size > 50_000
    page.button("Close").click()


def test_chat_tab_loads_the_adapter_and_answers(page: Page, webui):
    _, model, _ = webui
    page.choose("Model name", "Qwen2-7B")
    page.type_into("Model path", str(model))
    page.until(lambda: "medasst" in page.options("Checkpoint path"), message="the adapter under saves/ is not listed")
    page.wait("//li[@role='option' and @aria-label='medasst']").click()
    page.wait("//h1").click()
    page.choose("Chat template", "qwen")
    page.wait("//button[@role='tab' and normalize-space()='Chat']").click()
    page.button("Load model").click()
    query = page.wait("//textarea[@placeholder='Input...']", timeout=180)
    page.until(query.is_displayed, timeout=180, message="the chat box never appeared: the model did not load")
    # the system prompt MedAsst was trained with (recipes/medasst_qwen2.yaml default_system), and (nearly) greedy
    # decoding: the WebUI samples at temperature 0.95 / top-p 0.7 by default
    page.wait("//textarea[@placeholder='System prompt (optional)']").send_keys("You are a helpful assistant.")
    for slider in ("Temperature", "Top-p"):
        page.type_into(slider, "0.01", "input[@type='number']")
    query.send_keys(exam_prompts("ceval:physician", 1)[0])
    page.button("Submit").click()

    from selenium.webdriver.common.by import By

    def bot_text() -> str:
        messages = page.driver.find_elements(By.XPATH, "//*[@data-testid='bot']")
        return messages[-1].text.strip() if messages else ""

    page.until(lambda: bot_text() != "", timeout=120, message="no answer from the model")
    time.sleep(2)  # let the streamed reply finish
    assert bot_text() == LETTER, "the taught adapter answers, through the WebUI's chat"
    page.shot("webui-chat.png")

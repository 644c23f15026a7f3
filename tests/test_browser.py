"""The web page in a real browser: headless Chromium types a question and reads the highlighted
answer, under the page's warning that the reader is weak. Skipped, saying why, only when Chromium
or its driver is absent (`.ci/run` installs them)."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Chromium not found: apt-get install chromium chromium-driver to run the browser test",
)


@pytest.fixture(scope="module")
def server(korean_docs_index, weak_reader):
    from odqa.pipeline import Pipeline, PipelineConfig
    from odqa.serve.app import create_app

    app = create_app(Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(weak_reader), k=3)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1000,900",
    ):
        options.add_argument(flag)
    # Chromium keeps its profile and singleton socket in TMPDIR: the test's folder, not /tmp
    scratch = tmp_path_factory.mktemp("chromium")
    service = Service(DRIVER, env={**os.environ, "TMPDIR": str(scratch)})
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


@pytest.mark.slow  # a headless browser
def test_question_to_highlighted_answer(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    warning = WebDriverWait(browser, 10).until(ready.visibility_of_element_located((By.ID, "reader-warning")))
    assert "F1 31.5" in warning.text and "step 30 of 100" in warning.text  # the reader's records say it is weak
    box = browser.find_element(By.ID, "question")
    box.send_keys("훈민정음을 창제한 왕은?", Keys.ENTER)
    # the first question also compiles the search kernel: minutes on a loaded 2-core machine
    WebDriverWait(browser, 180).until(ready.text_to_be_present_in_element((By.ID, "answer"), "세종"))
    marked = browser.find_element(By.CSS_SELECTOR, "#passage mark")
    assert marked.text == "세종"
    assert "훈민정음" in browser.find_element(By.ID, "passage").text
    assert "ms" in browser.find_element(By.ID, "latency").text
    OUTPUT.mkdir(exist_ok=True)
    browser.save_screenshot(str(OUTPUT / "browser-answer.png"))

    box.clear()
    box.send_keys("   ", Keys.ENTER)
    WebDriverWait(browser, 10).until(ready.text_to_be_present_in_element((By.ID, "error"), "질문"))
    assert not browser.find_element(By.ID, "answer-box").is_displayed()  # the last answer does not stay on screen

"""`clip-lora app` in a real headless browser: the page's top-1 for an uploaded val image is `clip-lora predict`'s.

Needs Debian's chromium + chromium-driver, selenium and the app extra, none of which `make test` installs: without
them this test is skipped with a message saying so. `make test-browser` installs the Python side and runs it with
CLIP_LORA_BROWSER_TEST=required, where a missing piece fails instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from clip_lora import changes
from clip_lora.predict import main as predict_main
from testing_utils import ROOT, free_port, network_guard_for_subprocess

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Any host but this machine fails to resolve: a page that needs a CDN would show it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,2000",
)
SERVER_START_LIMIT_S = 300  # torch + transformers + gradio imports on a loaded 2-CPU machine


def _missing() -> list[str]:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    missing += [name for name in ("selenium", "gradio") if importlib.util.find_spec(name) is None]
    return missing


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        message = (
            f"browser test of `clip-lora app` skipped: {', '.join(missing)} not installed "
            "(apt-get install -y chromium chromium-driver; then `make test-browser`)"
        )
        if os.environ.get("CLIP_LORA_BROWSER_TEST") == "required":
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for drivers on the internet
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    with tempfile.TemporaryDirectory() as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        yield driver
        driver.quit()


@pytest.fixture(scope="module")
def app_server(browser, trained_run, tmp_path_factory):
    """`python -m clip_lora app OUTPUT_DIR` in a child process whose every non-local connect is refused and logged."""
    tmp = tmp_path_factory.mktemp("app")
    guard_dir, refused_log = network_guard_for_subprocess(tmp / "guard")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard_dir), str(ROOT)])}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app itself must switch analytics off
    argv = [sys.executable, "-m", "clip_lora", "app", str(trained_run.output_dir), "--port", str(port)]
    log = tmp / "app.log"
    with open(log, "w") as out:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_LIMIT_S
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"clip-lora app exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"clip-lora app did not answer on {url}:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield url, refused_log
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_page_answers_an_upload_with_predicts_top1_offline(browser, app_server, trained_run, image_root):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app_url, refused_log = app_server
    out = trained_run.output_dir
    rows = changes.changed_images(out)
    fixed, broken = [c for c in rows if c.fixed], [c for c in rows if not c.fixed]
    assert fixed, "the smoke run should fix at least one image"
    # A fixed image: its two models disagree, so a page that swapped them (or lost the adapter) would show it.
    changed = fixed[0]
    image = image_root / changed.image
    [(_, [(predicted, _)])] = predict_main(["--adapter_name_or_path", str(out), str(image), "--top_k", "1"])
    assert predicted == changed.fine_tuned != changed.zero_shot

    browser.get(app_url)
    wait = WebDriverWait(browser, 120)
    upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))[0]
    upload.send_keys(str(image))

    def top1(elem_id: str):
        found = browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} [data-testid=label-output-value]")
        return found[0].text.strip() if found and found[0].text.strip() else None

    assert wait.until(lambda _: top1("fine_tuned_top5")) == predicted
    assert wait.until(lambda _: top1("zero_shot_top5")) == changed.zero_shot

    page_text = browser.find_element(By.TAG_NAME, "body").text
    assert f"Fixed (zero-shot wrong, fine-tuned right): {len(fixed)}" in page_text
    assert f"Broken (zero-shot right, fine-tuned wrong): {len(broken)}" in page_text
    assert "precision" in browser.find_element(By.ID, "report").text  # the per-class table
    assert browser.find_elements(By.CSS_SELECTOR, "#fixed_gallery img")  # thumbnails, found from run_config
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(app_url) for url in loaded), [
        url for url in loaded if not url.startswith(app_url)
    ]
    assert not refused_log.exists(), f"the app tried to leave this machine: {refused_log.read_text()}"

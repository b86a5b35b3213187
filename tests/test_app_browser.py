"""`clip-lora app` in a real headless browser: the page's top-1 for an uploaded val image is `clip-lora predict`'s,
and the page is laid out for a 1280 px window (no sideways scrolling, captions whole, both confusion matrices
readable side by side), measured in the page itself; a screenshot is saved for a person to look at.

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
PAGE_WIDTH_PX = 1280  # a laptop's browser window
THUMBNAILS_SHOWN = (
    60  # clip_lora.app_page.MAX_THUMBNAILS (not imported here: this file must load without gradio)
)
MIN_MATRIX_PX = 480  # each confusion matrix, side by side: ten class names stay legible at this width


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
        yield url, refused_log, log
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_page_answers_an_upload_with_predicts_top1_offline(browser, app_server, trained_run, image_root):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app_url, refused_log, _ = app_server
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


# Everything measured in one script: what the page looks like to a person, not what the Python side asked for.
LAYOUT_SCRIPT = """
const box = e => e.getBoundingClientRect();
const all = s => Array.from(document.querySelectorAll(s));
const table = all('#fixed_table *');
const heading = text => all('h3').find(h => h.innerText.trim() === text);
return {
  inner: window.innerWidth,
  page: document.documentElement.scrollWidth,
  past_right: all('body *').filter(e => box(e).right > window.innerWidth + 1).map(e => e.tagName).slice(0, 5),
  table_rows: all('#fixed_table tbody tr').length,
  table_scrolls: table.filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1).length,
  captions: all('#fixed_gallery .changed-caption').map(e => ({
    text: e.innerText, fits: e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight})),
  matrices: ['confusion_fine_tuned', 'confusion_zero_shot'].map(id => {
    const img = document.querySelector('#' + id + ' img');
    return img && {left: box(img).left, right: box(img).right, top: box(img).top, width: box(img).width};
  }),
  headings: ['Confusion matrix: fine-tuned', 'Confusion matrix: zero-shot'].map(
    text => heading(text) && box(heading(text)).bottom),
};
"""


def test_the_page_fits_1280_px_with_whole_captions_and_readable_matrices(
    browser, app_server, trained_run, tmp_path_factory
):
    from selenium.webdriver.support.ui import WebDriverWait

    app_url, _, log = app_server
    fixed = [c for c in changes.changed_images(trained_run.output_dir) if c.fixed]
    browser.set_window_size(PAGE_WIDTH_PX, 2000)
    browser.get(app_url)
    layout = WebDriverWait(browser, 120).until(
        lambda d: (found := d.execute_script(LAYOUT_SCRIPT))["captions"] and found["matrices"][1] and found
    )
    # The viewport is the window less the scroll bar; nothing may reach past it, the table included (Gradio's
    # table would scroll sideways inside its own box, which the page's width alone does not show).
    assert PAGE_WIDTH_PX - 40 <= layout["inner"] <= PAGE_WIDTH_PX, layout["inner"]
    assert layout["page"] <= layout["inner"] and not layout["past_right"], layout
    assert layout["table_rows"] > 0 and layout["table_scrolls"] == 0, layout
    # Every thumbnail's caption: true, zero-shot and fine-tuned, each whole (wrapped, not cut or ellipsized).
    shown = fixed[:THUMBNAILS_SHOWN]
    for caption, changed in zip(layout["captions"], shown, strict=True):
        assert caption["text"].splitlines() == list(changed.caption_lines()) and caption["fits"], caption
    # Both matrices side by side, each wide enough to read, each under its own heading (no label chip on the plot).
    fine_tuned, zero_shot = layout["matrices"]
    assert min(fine_tuned["width"], zero_shot["width"]) >= MIN_MATRIX_PX, layout["matrices"]
    assert abs(fine_tuned["top"] - zero_shot["top"]) < 2 and fine_tuned["right"] <= zero_shot["left"]
    assert all(bottom is not None and bottom <= fine_tuned["top"] for bottom in layout["headings"]), layout
    # The console says where the page is, and nothing about sharing it.
    console = log.read_text()
    assert f"clip-lora app: {app_url}" in console and "share=True" not in console, console[-2000:]
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(PAGE_WIDTH_PX, min(height + 200, 8000))
    folder = os.environ.get("CLIP_LORA_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshot")
    shot = os.path.join(folder, "app-1280.png")
    assert browser.save_screenshot(shot)
    print(f"screenshot of the page at {PAGE_WIDTH_PX} px: {shot}")

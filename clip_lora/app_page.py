"""The Gradio page of `clip-lora app` (imported only once the app extra is known to be installed).

Offline by construction: served from the gradio package itself (no SSR node server, no share link), system fonts
instead of the default theme's Google Fonts, analytics off (clip_lora.app sets GRADIO_ANALYTICS_ENABLED first).

Laid out for a 1280 px window: the changed images are our own HTML grid (thumbnails inline, each with its true,
zero-shot and fine-tuned label on three wrapped lines: Gradio's gallery cuts a caption at one line), the tables wrap
their cells instead of scrolling sideways, and the two confusion matrices share the width under their own headings
(an image's label chip would sit on the plot's title). tests/test_app_browser.py measures these in Chromium.
"""

from __future__ import annotations

import base64
import html
import io
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from clip_lora.app_run import Classifier, RunView  # noqa: E402
from clip_lora.changes import ChangedImage  # noqa: E402
from clip_lora.errors import ArgumentError  # noqa: E402

# System font stacks: the default theme would fetch its fonts from fonts.googleapis.com.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
MAX_THUMBNAILS = 60  # per section; a weak run can change thousands of images, the table lists them all
THUMBNAIL_PX = 256  # longest side of an inline thumbnail (a 60-image section stays well under a few MB)
# Our own classes only (Gradio's are internal): the changed-image grid, and the tables kept inside the page width.
PAGE_CSS = """
.changed-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.changed-grid figure { margin: 0; min-width: 0; }
.changed-grid img { width: 100%; aspect-ratio: 1; object-fit: cover; border-radius: 4px; display: block; }
.changed-grid figcaption { font-size: 0.85em; line-height: 1.35; white-space: normal; overflow-wrap: anywhere; }
.changed-table, .changed-table * { max-width: 100%; }
.changed-table table { table-layout: fixed; width: 100%; }
.changed-table td, .changed-table th { white-space: normal !important; overflow-wrap: anywhere; }
"""
CHANGED_COLUMNS = [
    "image",
    "true",
    "zero-shot",
    "p (zero-shot)",
    "fine-tuned",
    "p (fine-tuned)",
    "p(true) zero-shot",
    "p(true) fine-tuned",
]
# The image id is the long cell; the six labels and probabilities share the rest.
COLUMN_WIDTHS = ["22%", "13%", "13%", "9%", "13%", "9%", "10.5%", "10.5%"]


def summary(view: RunView) -> str:
    lines = [f"# clip-lora: {view.run_dir.name or view.run_dir}"]
    results = view.results
    if "zero_shot_accuracy" in results and "eval_accuracy" in results:
        lines.append(
            f"Val accuracy: zero-shot **{results['zero_shot_accuracy']:.4f}**, "
            f"fine-tuned **{results['eval_accuracy']:.4f}** (`{view.run_dir}`)."
        )
    return "\n\n".join(lines)


def changed_table(changed: list[ChangedImage]) -> list[list]:
    return [
        [
            c.image,
            c.true,
            c.zero_shot,
            round(c.zero_shot_probs[c.zero_shot], 4),
            c.fine_tuned,
            round(c.fine_tuned_probs[c.fine_tuned], 4),
            round(c.zero_shot_p_true, 4),
            round(c.fine_tuned_p_true, 4),
        ]
        for c in changed
    ]


def thumbnail_uri(path) -> str:
    """The image as a small inline JPEG (data: URI): the page carries its thumbnails, no file route is needed."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def changed_grid_html(changed: list[ChangedImage]) -> str:
    """Thumbnails with their three caption lines (true, zero-shot, fine-tuned), escaped: class names are user text."""
    figures = []
    for c in changed:
        lines = "<br>".join(html.escape(line) for line in c.caption_lines())
        figures.append(
            f'<figure><img src="{thumbnail_uri(c.path)}" alt="{html.escape(c.image, quote=True)}">'
            f'<figcaption class="changed-caption">{lines}</figcaption></figure>'
        )
    return f'<div class="changed-grid">{"".join(figures)}</div>'


def changed_section(view: RunView, changed: list[ChangedImage], title: str, elem_id: str) -> None:
    gr.Markdown(f"### {title}: {len(changed)}")
    if not changed:
        return
    shown = [c for c in changed if c.path]
    if len(shown) > MAX_THUMBNAILS:
        gr.Markdown(f"The first {MAX_THUMBNAILS} of {len(shown)} images; the table lists all.")
    if shown:
        gr.HTML(changed_grid_html(shown[:MAX_THUMBNAILS]), elem_id=f"{elem_id}_gallery")
    gr.Dataframe(
        changed_table(changed),
        headers=CHANGED_COLUMNS,
        interactive=False,
        wrap=True,
        column_widths=COLUMN_WIDTHS,
        elem_id=f"{elem_id}_table",
        elem_classes=["changed-table"],
    )


def build_page(view: RunView, classifier: Classifier) -> gr.Blocks:
    def classify(image):
        if image is None:
            return None, None
        fine_tuned, zero_shot = classifier.top_k(image, 5)
        return dict(fine_tuned), dict(zero_shot)

    with gr.Blocks(title=f"clip-lora: {view.run_dir.name}") as page:
        gr.Markdown(summary(view))
        gr.Markdown("## Classify an image: the fine-tuned model beside zero-shot (same classes and prompts)")
        with gr.Row():
            image = gr.Image(type="pil", label="Image", sources=["upload", "clipboard"], elem_id="upload")
            fine_tuned = gr.Label(num_top_classes=5, label="Fine-tuned: top-5", elem_id="fine_tuned_top5")
            zero_shot = gr.Label(num_top_classes=5, label="Zero-shot: top-5", elem_id="zero_shot_top5")
        image.change(classify, image, [fine_tuned, zero_shot])

        gr.Markdown("## What the fine-tuning changed on val")
        if view.fixed is None:
            gr.Markdown("This folder has no predictions CSVs (a pushed repo holds none): nothing to compare.")
        else:
            if (view.fixed or view.broken) and not view.image_files:
                gr.Markdown("The val images are not on this machine (pass `--data_dir`): tables only.")
            changed_section(view, view.fixed, "Fixed (zero-shot wrong, fine-tuned right)", "fixed")
            changed_section(view, view.broken, "Broken (zero-shot right, fine-tuned wrong)", "broken")

        gr.Markdown("## Per class (val, fine-tuned)")
        gr.Markdown(view.report_md or "No classification_report.md in this folder.", elem_id="report")
        with gr.Row(equal_height=True):
            for path, title, elem_id in (
                (view.confusion_matrix, "Confusion matrix: fine-tuned", "confusion_fine_tuned"),
                (view.zero_shot_confusion_matrix, "Confusion matrix: zero-shot", "confusion_zero_shot"),
            ):
                if path:
                    with gr.Column(min_width=480):
                        # The heading above the plot, not Gradio's label chip on top of it (over the plot's title).
                        gr.Markdown(f"### {title}")
                        gr.Image(
                            str(path),
                            show_label=False,
                            interactive=False,
                            elem_id=elem_id,
                            buttons=["download"],
                        )
    return page


def serve(view: RunView, classifier: Classifier, host: str, port: int) -> None:
    """Blocks until interrupted; prints the local URL (Gradio's own start-up lines, which end with a hint to make a
    public share link, are silenced: this page is never shared)."""
    page = build_page(view, classifier)
    try:
        page.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            allowed_paths=[str(view.run_dir)],  # the confusion matrices; thumbnails are inline
            theme=THEME,
            css=PAGE_CSS,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as err:  # the port is taken (gradio's "Cannot find empty port"), or the host is not ours
        raise ArgumentError(
            f"cannot serve on {host}:{port} ({str(err).split('. ')[0]}); pass another --port or --host."
        ) from None
    print(f"clip-lora app: {page.local_url} (this machine only; Ctrl-C stops it)", flush=True)
    page.block_thread()

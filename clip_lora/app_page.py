"""The Gradio page of `clip-lora app` (imported only once the app extra is known to be installed).

Offline by construction: served from the gradio package itself (no SSR node server, no share link), system fonts
instead of the default theme's Google Fonts, analytics off (clip_lora.app sets GRADIO_ANALYTICS_ENABLED first).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from clip_lora.app import Classifier, RunView  # noqa: E402
from clip_lora.changes import ChangedImage  # noqa: E402
from clip_lora.errors import ArgumentError  # noqa: E402

# System font stacks: the default theme would fetch its fonts from fonts.googleapis.com.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
MAX_THUMBNAILS = 60  # per section; a weak run can change thousands of images, the table lists them all
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


def changed_section(view: RunView, changed: list[ChangedImage], title: str, elem_id: str) -> None:
    gr.Markdown(f"### {title}: {len(changed)}")
    if not changed:
        return
    thumbnails = [(str(c.path), c.caption()) for c in changed if c.path]
    if len(thumbnails) > MAX_THUMBNAILS:
        gr.Markdown(f"The first {MAX_THUMBNAILS} of {len(thumbnails)} images; the table lists all.")
    if thumbnails:
        gr.Gallery(
            thumbnails[:MAX_THUMBNAILS],
            columns=6,
            height="auto",
            show_label=False,
            elem_id=f"{elem_id}_gallery",
        )
    gr.Dataframe(
        changed_table(changed), headers=CHANGED_COLUMNS, interactive=False, elem_id=f"{elem_id}_table"
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
        with gr.Row():
            for path, label in (
                (view.confusion_matrix, "Confusion matrix: fine-tuned"),
                (view.zero_shot_confusion_matrix, "Confusion matrix: zero-shot"),
            ):
                if path:
                    gr.Image(str(path), label=label, interactive=False)
    return page


def serve(view: RunView, classifier: Classifier, host: str, port: int) -> None:
    """Blocks until interrupted; prints the local URL."""
    allowed = [str(p) for p in (view.run_dir, *view.image_files)]
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
            allowed_paths=allowed,
            theme=THEME,
        )
    except OSError as err:  # the port is taken (gradio's "Cannot find empty port"), or the host is not ours
        raise ArgumentError(
            f"cannot serve on {host}:{port} ({str(err).split('. ')[0]}); pass another --port or --host."
        ) from None

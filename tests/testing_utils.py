"""Test helpers, one home: paths, the smoke argv, a tiny trainer, image layouts, archives, subprocess runs, fake Hub.

Fixtures live in conftest.py; everything a test imports comes from here (no test file imports another).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from clip_lora import hub
from clip_lora.cli import run as run_verb
from clip_lora.data import IMAGENETTE_CLASSES
from clip_lora.trainer import ClipLoraTrainer

# ---------------------------------------------------------------- paths, argv, a tiny trainer

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"


DOCS = ROOT / "docs"


def doc_page(name: str) -> str:
    """The text of README.md ("README") or of a docs/ page ("evidence" -> docs/evidence.md): where a check reads a
    statement from the place a reader finds it."""
    return (ROOT / "README.md" if name == "README" else DOCS / f"{name}.md").read_text(encoding="utf-8")


def all_doc_pages() -> dict[str, str]:
    """README.md and every docs/ page, by name."""
    return {
        "README": doc_page("README"),
        **{path.stem: path.read_text(encoding="utf-8") for path in DOCS.glob("*.md")},
    }


def clip_lora_imports() -> dict[str, set[str]]:
    """clip_lora's modules -> the clip_lora modules each imports anywhere in its file (a deferred import inside a
    function counts too: it closes a circle as surely when it runs)."""
    import ast

    package = ROOT / "clip_lora"
    modules = {f"clip_lora.{path.stem}": path for path in package.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = found & set(modules) - {name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or round a circle (strongly connected, size > 1)."""
    reach = {name: set() for name in graph}
    for name in graph:
        todo = list(graph[name])
        while todo:
            other = todo.pop()
            if other not in reach[name]:
                reach[name].add(other)
                todo.extend(graph.get(other, ()))
    circles = {
        frozenset({name} | {o for o in reach[name] if name in reach[o]})
        for name in graph
        if name in reach[name]
    }
    return [set(circle) for circle in circles]


def smoke_argv(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """The smoke recipe pointed at the test session's tiny model and images (the same main(), other paths)."""
    return [
        str(ROOT / "clip_lora" / "recipes" / "smoke.yaml"),
        "--model_name_or_path",
        str(model_dir),
        "--data_dir",
        str(data_dir),
        "--output_dir",
        str(output_dir),
        "--use_cpu",
        "true",
        *extra,
    ]


TINY_CLASSES = ["tench", "church", "parachute"]


def make_tiny_trainer(model_dir: Path, output_dir: Path, num_images: int = 24, **overrides):
    """A ClipLoraTrainer on the tiny CLIP with LoRA and a 3-class tensor dataset (no images to decode)."""
    from datasets import Dataset
    from transformers import CLIPTokenizer

    from clip_lora.arguments import ClipLoraTrainingArguments
    from clip_lora.modeling import apply_lora, load_clip
    from clip_lora.trainer import ClipLoraTrainer
    from collator import ClipClassificationCollator
    from metrics import compute_metrics

    model, processor = load_clip(str(model_dir))
    model = apply_lora(model, 4, 8, 0.0, ["q_proj", "k_proj", "v_proj", "out_proj"])
    torch.manual_seed(0)
    labels = [i % 3 for i in range(num_images)]
    pixels = [(torch.randn(3, 32, 32) * 0.2 + label).tolist() for label in labels]
    dataset = Dataset.from_dict({"pixel_values": pixels, "labels": labels}).with_format("torch")
    args = ClipLoraTrainingArguments(
        **{
            "output_dir": str(output_dir),
            "use_cpu": True,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "learning_rate": 1e-2,
            "save_strategy": "no",
            "eval_strategy": "no",
            "load_best_model_at_end": False,
            "report_to": "none",
            "logging_steps": 1,
            **overrides,
        }
    )
    collate = ClipClassificationCollator.from_class_names(
        CLIPTokenizer.from_pretrained(model_dir), TINY_CLASSES, ["a photo of a {}."]
    )
    return ClipLoraTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        data_collator=collate,
        processing_class=processor,
        compute_metrics=compute_metrics,
        num_classes=3,
    )


# ---------------------------------------------------------------- one-line user errors


def user_error(argv, capsys, verb: str = "train") -> str:
    """Runs the console entry; asserts exit 2 and a one-line error without traceback; returns that line."""
    capsys.readouterr()
    assert run_verb(verb, argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err[-2000:]
    return errors[0]


# ---------------------------------------------------------------- image folders and hub datasets

WNIDS = list(IMAGENETTE_CLASSES)

NAMES = list(IMAGENETTE_CLASSES.values())


def write_image(path: Path, seed: int, size=(12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def make_layout(root: Path, folders, n_train: int, n_val: int, val_name="val", ext=".JPEG") -> Path:
    """root/train/<folder>/<i><ext> and root/<val_name>/<folder>/<i><ext>, distinct random pixels each."""
    for c, folder in enumerate(folders):
        for split, n in (("train", n_train), (val_name, n_val)):
            for i in range(n):
                write_image(
                    root / split / folder / f"{i}{ext}", seed=c * 1000 + i + (500 if split != "train" else 0)
                )
    return root


def fake_hub(with_label=True):
    img = Image.new("RGB", (6, 6), (10, 200, 30))
    feats = {"img": datasets.Image(), "caption": datasets.Value("string")}
    feats["fine_label"] = datasets.ClassLabel(names=["ant", "bee"]) if with_label else datasets.Value("int64")
    rows = {"img": [img] * 6, "caption": ["x"] * 6, "fine_label": [0, 1, 0, 1, 0, 1]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(feats))
    return datasets.DatasetDict({"train": ds, "test": ds.select(range(4))})


# ---------------------------------------------------------------- archives


def tar_dir(src: Path, tgz: Path) -> str:
    """Packs every child of src into tgz (arcnames relative to src); returns its md5."""
    with tarfile.open(tgz, "w:gz") as tar:
        for child in sorted(src.iterdir()):
            tar.add(child, arcname=child.name)
    return hashlib.md5(tgz.read_bytes()).hexdigest()


def unsafe_archive(path: Path, kind: str, outside: Path) -> str:
    """A .tgz with a valid imagenette2-320 tree plus one escaping member of the given kind; returns md5."""
    with tarfile.open(path, "w:gz") as tar:
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, "PNG")

        def add_file(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

        for wnid in WNIDS:
            for split in ("train", "val"):
                add_file(f"imagenette2-320/{split}/{wnid}/a.png", buf.getvalue())
        if kind == "absolute":
            add_file(str(outside / "evil.txt"), b"x")
        elif kind == "dotdot":
            add_file("imagenette2-320/../../outside/evil.txt", b"x")
        else:
            link = tarfile.TarInfo("imagenette2-320/link")
            link.type, link.linkname = tarfile.SYMTYPE, str(outside)
            tar.addfile(link)
            add_file("imagenette2-320/link/evil.txt", b"x")
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- subprocess smoke runs (resume, secrets)

FAKE_HF_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdefXYZ"
FAKE_WANDB_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0deadbeef"  # 40 characters, like a real key
# 96 train images / batch 16 = 6 steps an epoch: checkpoint-6, -12, -18.
SHORT = ("--num_train_epochs", "3", "--max_train_samples", "96", "--max_eval_samples", "40")


def command(model_dir: Path, image_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train_clip_lora.py"),
        *smoke_argv(model_dir, image_root, out, *SHORT, *extra),
    ]


def env(scratch: Path, **extra: str) -> dict:
    return {**os.environ, "HF_DATASETS_CACHE": str(scratch / "hf-datasets"), "OMP_NUM_THREADS": "1", **extra}


def start_reference(
    tmp_path_factory, model_dir: Path, image_root: Path
) -> tuple[Path, Path, subprocess.Popen | None]:
    """(output dir, wandb dir, process) of the shared uninterrupted run; process is None when it already ran."""
    base = tmp_path_factory.getbasetemp() / "reference-run"
    out, wandb_dir = base / "out", base / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run_env = env(
        base,
        HF_TOKEN=FAKE_HF_TOKEN,
        WANDB_API_KEY=FAKE_WANDB_KEY,
        WANDB_MODE="offline",
        WANDB_DIR=str(wandb_dir),
        WANDB_SILENT="true",
    )
    if (out / "all_results.json").exists():
        return out, wandb_dir, None
    argv = command(model_dir, image_root, out, "--report_to", "wandb", "--push_to_hub", "false")
    # Console output goes to files (a pipe nobody reads would stall the run) and is kept for the secrets test.
    with open(base / "stdout.log", "wb") as stdout, open(base / "stderr.log", "wb") as stderr:
        return out, wandb_dir, subprocess.Popen(argv, env=run_env, stdout=stdout, stderr=stderr)


def finish(process: subprocess.Popen | None, out: Path) -> tuple[bytes, bytes]:
    """Waits for the run start_reference started (if any), asserts it succeeded; returns its (stdout, stderr)."""
    if process is not None:
        process.wait(timeout=400)
    stdout, stderr = ((out.parent / name).read_bytes() for name in ("stdout.log", "stderr.log"))
    assert process is None or process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return stdout, stderr


# ---------------------------------------------------------------- the session's trained run, with a fake Hub

HUB_MODEL_ID = "tester/clip-lora-tiny"
WRITE_WHOAMI = {"name": "tester", "orgs": [], "auth": {"accessToken": {"displayName": "ci", "role": "write"}}}
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class Run:
    output_dir: Path
    results: dict
    exit_code: int
    events: list = field(
        default_factory=list
    )  # ("whoami"|"create_repo"|"train_step"|"create_commit"|..., details)
    stderr: str = ""
    wandb_dir: Path | None = None


class FakeHubApi:
    """Records every call; `whoami` answers `whoami_answer` (or raises it when it is an exception)."""

    def __init__(self, events: list, whoami_answer=None):
        self.events = events
        self.whoami_answer = WRITE_WHOAMI if whoami_answer is None else whoami_answer

    def whoami(self, token=None, **kwargs):
        self.events.append(("whoami", {"token": token}))
        if isinstance(self.whoami_answer, Exception):
            raise self.whoami_answer
        return self.whoami_answer

    def create_repo(self, repo_id, **kwargs):
        self.events.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, **kwargs):
        files = {op.path_in_repo: Path(op.path_or_fileobj) for op in operations}
        self.events.append(("create_commit", {"repo_id": repo_id, "files": files, **kwargs}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


def guard_network(monkeypatch, events: list) -> None:
    """Sockets may reach this machine only; any other connect is recorded and refused."""
    original = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family != socket.AF_UNIX and host not in LOCAL_HOSTS:
            events.append(("network", address))
            raise OSError(f"test: network access to {address} refused")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

    def trainer_hf_api(*args, **kwargs):
        events.append(("trainer_hf_api", args))
        raise AssertionError("Trainer must not talk to the Hub itself")

    monkeypatch.setattr("transformers.trainer.hf_api", trainer_hf_api)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(script: Path, *args: str, processes: int = 2) -> list[str]:
    """`torchrun --nproc_per_node N script args` on a free port: CPU DDP over gloo on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(free_port()), str(script), *args]  # fmt: skip


def torchrun_node_commands(script: Path, *args: str, nodes: int = 2) -> list[list[str]]:
    """One `torchrun --nnodes N --node_rank i --nproc_per_node 1` command per "machine", all on this one, meeting at
    127.0.0.1 (the multi_node config's launch, one process per node); start them together."""
    port = str(free_port())
    return [
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            str(nodes),
            "--node_rank",
            str(rank),
            "--nproc_per_node",
            "1",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            port,
            str(script),
            *args,
        ]
        for rank in range(nodes)
    ]


def network_guard_for_subprocess(folder: Path) -> tuple[Path, Path]:
    """(a folder to put first on a child's PYTHONPATH, the log file): its sitecustomize refuses and logs every
    connect that leaves this machine, as guard_network does in-process."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "refused_connections.log"
    (folder / "sitecustomize.py").write_text(
        f"""import socket

_connect = socket.socket.connect


def _guarded(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    if sock.family != socket.AF_UNIX and host not in {LOCAL_HOSTS!r}:
        with open({str(log)!r}, "a") as f:
            f.write(repr(address) + "\\n")
        raise OSError(f"test: network access to {{address}} refused")
    return _connect(sock, address)


socket.socket.connect = _guarded
"""
    )
    return folder, log


def record_training_steps(monkeypatch, events: list) -> None:
    original = ClipLoraTrainer.training_step

    def training_step(self, *args, **kwargs):
        if not any(kind == "train_step" for kind, _ in events):
            events.append(("train_step", self.state.global_step))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClipLoraTrainer, "training_step", training_step)


def no_wandb_credentials(monkeypatch, tmp: Path) -> Path:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp))
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # wandb must not wrap pytest's stdout/stderr
    return tmp


class _Tee(io.StringIO):
    def write(self, text):
        sys.__stderr__.write(text)
        return super().write(text)


def run_trained(argv: list[str], tmp: Path) -> Run:
    """cli(argv + push + wandb) under the fakes; the environment is restored afterwards."""
    from clip_lora import artifacts

    events: list = []
    wandb_dir = tmp / "wandb-dir"
    wandb_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", "hf_test_token")
        mp.setattr(hub, "hub_api", lambda token=None: FakeHubApi(events))
        guard_network(mp, events)
        record_training_steps(mp, events)
        no_wandb_credentials(mp, wandb_dir)
        stderr = _Tee()
        with contextlib.redirect_stderr(stderr):
            code = run_verb(
                "train",
                [*argv, "--push_to_hub", "true", "--hub_model_id", HUB_MODEL_ID, "--report_to", "wandb"],
            )
    out = Path(argv[argv.index("--output_dir") + 1])
    results = artifacts.read_json(out / artifacts.ALL_RESULTS) if code == 0 else {}
    return Run(out, results, code, events, stderr.getvalue(), wandb_dir)


# ---------------------------------------------------------------- a small in-process run, for fault tests

SMALL_RUN = (
    "--num_train_epochs",
    "2",
)  # 2 classes x 6 train images, batch 16: one step an epoch, 2 checkpoints
SAME_BYTES = (  # what a resumed run must reproduce byte for byte
    "predictions.csv",
    "zero_shot_predictions.csv",
    "adapter_model.safetensors",
    "classification_report.json",
    "temperature.json",  # fitted on the selected adapter's dev logits after training
    "calibration.json",
)


def small_argv(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return smoke_argv(model_dir, data_dir, output_dir, *SMALL_RUN, *extra)


# Timings differ run to run; Trainer averages train_loss over the steps of the current process only, so a resumed
# run reports the mean of its own steps (the adapter, predictions and every eval number still match).
NOT_REPRODUCED = ("runtime", "per_second", "preparation_time", "train_loss")


def without_timings(results: dict) -> dict:
    return {k: v for k, v in results.items() if not any(part in k for part in NOT_REPRODUCED)}


def assert_same_results(out: Path, reference: Path) -> None:
    from clip_lora import artifacts

    for name in SAME_BYTES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    results = [without_timings(artifacts.read_json(d / artifacts.ALL_RESULTS)) for d in (out, reference)]
    assert results[0] == results[1], {
        k: (v, results[1].get(k)) for k, v in results[0].items() if v != results[1].get(k)
    }


# ---------------------------------------------------------------- constructed dev evaluations


def feed_dev_evaluations(
    trainer, accuracies, losses, steps_per_epoch: int = 12, metric: str = "accuracy"
) -> dict:
    """Play dev evaluations (epoch k: accuracy, loss) into a trainer the way Trainer does (log the metrics, then
    `_determine_best_metric`); returns the trainer state as trainer_state.json holds it."""
    from transformers import TrainerState

    trainer.state = TrainerState()
    trainer.args.metric_for_best_model = metric
    trainer.args.greater_is_better = metric != "loss"
    for epoch, (accuracy, loss) in enumerate(zip(accuracies, losses, strict=True), start=1):
        metrics = {"eval_accuracy": accuracy, "eval_loss": loss}
        trainer.state.global_step, trainer.state.epoch = steps_per_epoch * epoch, float(epoch)
        trainer.state.log_history.append(
            {**metrics, "epoch": float(epoch), "step": trainer.state.global_step}
        )
        trainer._determine_best_metric(metrics, trial=None)
    return {
        "log_history": trainer.state.log_history,
        "best_metric": trainer.state.best_metric,
        "best_global_step": trainer.state.best_global_step,
    }


# ---------------------------------------------------------------- save points and the faults injected there

ATOMIC_TEMP = re.compile(r"\.\d+\.partial$")  # artifacts.atomic_write's temp name: <name>.<pid>.partial


class Killed(BaseException):
    """Stands in for SIGKILL at a write: nothing after the raise runs, and nothing catches it."""


@contextlib.contextmanager
def save_points(out: Path, on_save):
    """Every write of a run into `out`, and every training / prediction step, first calls on_save(writer, name,
    path), which may raise a fault. Writers: artifacts.atomic_write (our artifacts), Python's open for writing
    (Trainer's JSON, PEFT's config and card, the processor files), torch.save (optimizer, scheduler, RNG state,
    arguments) and the safetensors writer PEFT saves adapters with; moments: ClipLoraTrainer.training_step and
    prediction_step."""
    import builtins

    import peft.peft_model

    from clip_lora.trainer import ClipLoraTrainer

    real_open, real_save, real_safe = builtins.open, torch.save, peft.peft_model.safe_save_file
    real_step, real_predict = ClipLoraTrainer.training_step, ClipLoraTrainer.prediction_step
    root = str(out)

    def name_of(path) -> str:
        return ATOMIC_TEMP.sub("", Path(os.fsdecode(path)).name)

    def opened(file, mode="r", *args, **kwargs):
        if (
            isinstance(file, (str, os.PathLike))
            and any(c in mode for c in "wax")
            and str(file).startswith(root)
        ):
            writer = (
                "atomic_write" if ATOMIC_TEMP.search(os.fsdecode(file)) else "open"
            )  # ours, or a library's
            on_save(writer, name_of(file), file)
        return real_open(file, mode, *args, **kwargs)

    def saved(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and str(f).startswith(root):
            on_save("torch.save", name_of(f), f)
        return real_save(obj, f, *args, **kwargs)

    def safe_saved(tensors, filename, *args, **kwargs):
        if str(filename).startswith(root):
            on_save("safetensors", name_of(filename), filename)
        return real_safe(tensors, filename, *args, **kwargs)

    def step(self, *args, **kwargs):
        on_save("training_step", "", None)
        return real_step(self, *args, **kwargs)

    def predict(self, *args, **kwargs):
        on_save("prediction_step", "", None)
        return real_predict(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", opened)
        mp.setattr(torch, "save", saved)
        mp.setattr(peft.peft_model, "safe_save_file", safe_saved)
        mp.setattr(ClipLoraTrainer, "training_step", step)
        mp.setattr(ClipLoraTrainer, "prediction_step", predict)
        yield


# What the CLI answers for each injected fault (clip_lora/faults.py); "kill" has no answer: the process is gone.
FAULT_STATUS = {"disk_full": 74, "ctrl_c": 130, "read_only": 73, "sigterm": 143, "permission": 73}
FAULT_KINDS = ("kill", "disk_full", "ctrl_c", "read_only", "sigterm", "permission")


def raise_fault(kind: str, writer: str, path) -> None:
    """The fault `kind` as `writer` raises it; a full disk first leaves the partial file a real one leaves."""
    from safetensors import SafetensorError

    from clip_lora.faults import Terminated

    if kind == "kill":
        raise Killed(writer)
    if kind == "ctrl_c":
        raise KeyboardInterrupt
    if kind == "sigterm":
        raise Terminated
    if kind in ("read_only", "permission"):
        code = errno.EROFS if kind == "read_only" else errno.EACCES
        raise OSError(code, os.strerror(code), os.fsdecode(path) if path else None)
    if path is not None:  # disk_full: some bytes made it to disk, then the writer's own error
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"\0" * 64)
        os.close(fd)
    if writer == "torch.save":
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    if writer == "safetensors":
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    raise OSError(errno.ENOSPC, "No space left on device", os.fsdecode(path) if path else None)


def fault_at(target: tuple[str, str, int], kind: str):
    """on_save for save_points: `kind` at the n-th save point (writer, name); every other one proceeds.
    `on_save.fired` says whether the run reached that save point."""
    counts = collections.Counter()

    def on_save(writer, name, path):
        counts[writer, name] += 1
        if (writer, name, counts[writer, name]) == target:
            on_save.fired = True
            raise_fault(kind, writer, path)

    on_save.fired = False
    return on_save

"""Sharing a run on the Hugging Face Hub: check write access before training, push the selected adapter at the end.

    repo_id = hub.check_write_access(training_args)        # step 1 of main(): fails in seconds, not after 10 epochs
    trainer = ClipLoraTrainer(args=hub.without_trainer_push(training_args), ...)   # Trainer itself never pushes
    hub.push_run(output_dir, repo_id, training_args)       # last step: adapter + model card + report + plots

Every call to the Hub goes through `hub_api()`, the one boundary tests replace (no network in the test suite).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token

from clip_lora import artifacts
from clip_lora.errors import HubError  # noqa: F401 - re-exported: raised here, caught in cli

logger = logging.getLogger(__name__)

# What a pushed repo holds: the selected adapter, its card, the numbers behind the card and the plots. Never
# checkpoints or optimizer state (they stay in output_dir for resuming).
ADAPTER_FILES = artifacts.ADAPTER_FILES
PUSH_FILES = (
    *ADAPTER_FILES,
    artifacts.MODEL_CARD,
    artifacts.ALL_RESULTS,
    artifacts.TRAIN_RESULTS,
    artifacts.EVAL_RESULTS,
    artifacts.CLASSIFICATION_REPORT_JSON,
    artifacts.CLASSIFICATION_REPORT_MD,
    artifacts.TRAINING_CURVES,
    artifacts.CONFUSION_MATRIX,
    artifacts.ZERO_SHOT_CONFUSION_MATRIX,
    artifacts.CHANGES,
    artifacts.TEMPERATURE,
    artifacts.CALIBRATION,
    artifacts.RELIABILITY,
    artifacts.CONTROL_JSON,
    artifacts.WISE_FT_TRADEOFF_PNG,
)
WRITE_ORG_ROLES = ("admin", "write", "contributor")
TOKENS_URL = "https://huggingface.co/settings/tokens"


def hub_api(token: str | None = None) -> HfApi:
    """The only place this project talks to the Hub; tests monkeypatch it with a recording fake."""
    return HfApi(token=token)


def without_trainer_push(training_args):
    """A copy of the arguments for the Trainer with push_to_hub off.

    With push_to_hub on, Trainer creates the repo in __init__ and uploads the whole output_dir (checkpoints and
    optimizer state included) on every save; this run pushes once, at the end, the files in PUSH_FILES. The user's
    flag stays in `training_args` (and in run_config.json). The copy holds no token (see below)."""
    trainer_args = copy.copy(training_args)
    trainer_args.push_to_hub = False
    # Trainer pickles its arguments into training_args.bin (output_dir and every checkpoint): no token may be in
    # them. The push reads the token from the user's `training_args`, which stay in memory only.
    for name in vars(trainer_args):
        if name.endswith("_token"):
            setattr(trainer_args, name, None)
    return trainer_args


def _token(training_args) -> str:
    token = training_args.hub_token or get_token()
    if not token:
        raise HubError(
            "--push_to_hub needs a Hugging Face token with write access: run `hf auth login` or set HF_TOKEN "
            f"(create one at {TOKENS_URL}), or drop --push_to_hub."
        )
    return token


def _can_write(whoami: dict, repo_id: str) -> str | None:
    """None when the token may write to repo_id, else the reason it may not (from the whoami-v2 answer)."""
    namespace = repo_id.split("/")[0]
    access = (whoami.get("auth") or {}).get("accessToken") or {}
    role = access.get("role")
    if role == "read":
        return f"the token {access.get('displayName', '')!r} is read-only"
    if role == "fineGrained":
        granted = [
            scope.get("entity", {})
            for scope in (access.get("fineGrained") or {}).get("scoped", [])
            if "repo.write" in scope.get("permissions", [])
        ]
        if not any(entity.get("name") in (namespace, repo_id) for entity in granted):
            return (
                f"the fine-grained token {access.get('displayName', '')!r} has no repo.write on {namespace!r}"
            )
    if namespace != whoami.get("name"):
        org_roles = {org.get("name"): org.get("roleInOrg") for org in whoami.get("orgs", [])}
        if namespace not in org_roles:
            return f"{whoami.get('name')!r} is not a member of the organization {namespace!r}"
        if org_roles[namespace] not in WRITE_ORG_ROLES:
            return f"{whoami.get('name')!r} has the role {org_roles[namespace]!r} in {namespace!r}, not write"
    return None


def check_write_access(training_args) -> str:
    """Resolve --hub_model_id to USER/NAME and make sure this token can write there; returns the repo id.

    Run before any data or model is loaded. The main process also creates the repo (as Trainer would at init), so a
    write problem the token's metadata cannot show still surfaces now rather than after training."""
    if not training_args.do_train:
        raise HubError(
            "--push_to_hub pushes the adapter a training run selects; drop it with --do_train false."
        )
    token = _token(training_args)
    api = hub_api(token)
    try:
        whoami = api.whoami(token=token)
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot push"; say which in one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubError(
            f"cannot verify the Hugging Face token for --push_to_hub ({reason}); check the token "
            f"({TOKENS_URL}) and the connection, or drop --push_to_hub."
        ) from None
    name = training_args.hub_model_id or Path(training_args.output_dir).absolute().name
    repo_id = name if "/" in name else f"{whoami.get('name')}/{name}"
    problem = _can_write(whoami, repo_id)
    if problem:
        raise HubError(
            f"cannot push to {repo_id}: {problem}; use a write token ({TOKENS_URL}) or another --hub_model_id."
        )
    if training_args.process_index == 0:
        try:
            api.create_repo(repo_id, token=token, private=training_args.hub_private_repo, exist_ok=True)
        except Exception as err:  # noqa: BLE001
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HubError(
                f"cannot create or write to {repo_id} ({reason}); check --hub_model_id and the token."
            ) from None
    logger.info(
        "Hub: %s can push to %s; the adapter is pushed once, after the final evaluation",
        whoami.get("name"),
        repo_id,
    )
    return repo_id


def files_to_push(output_dir: str | Path) -> list[str]:
    """The PUSH_FILES present in output_dir (the adapter and the card must be there)."""
    out = Path(output_dir)
    missing = [name for name in (*ADAPTER_FILES, artifacts.MODEL_CARD) if not (out / name).is_file()]
    if missing:
        raise HubError(f"{out} lacks {', '.join(missing)}: nothing to push (did training save an adapter?).")
    return [name for name in PUSH_FILES if (out / name).is_file()]


def push_run(output_dir: str | Path, repo_id: str, training_args) -> str:
    """Upload files_to_push(output_dir) to repo_id in one commit; returns the commit URL."""
    out = Path(output_dir)
    names = files_to_push(out)
    token = _token(training_args)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(out / name)) for name in names]
    try:
        commit = hub_api(token).create_commit(
            repo_id,
            operations=operations,
            commit_message="Upload the selected LoRA adapter, model card and report",
            token=token,
            revision=training_args.hub_revision,
        )
    except Exception as err:  # noqa: BLE001
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubError(
            f"push to {repo_id} failed ({reason}); everything is saved in {out}: retry with "
            f"`hf upload {repo_id} {out} {' '.join('--include ' + n for n in names)}`."
        ) from None
    url = getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
    logger.info("Pushed %d files to %s", len(names), url)
    return url

"""The one door through which training and evaluation code gets a registered checkpoint.

A checkpoint is never loaded from its path: it is resolved in the registry, copied into a private folder with every
byte checked against its registered digest, and `transformers` loads that copy, so the files cannot change between
the check and the load. Loads and refusals go into the audit log. Whether a checkpoint may serve as a base is the run
gate's decision, not this module's: any registered checkpoint loads, and its state is recorded with the load.
"""

from __future__ import annotations

import json
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.checkpoints import snapshot_verified
from forgegov.governance.loading.use import open_for_use

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Any of these at the top level means the checkpoint carries its tokenizer.
TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "tokenizer.model"})


class Head(StrEnum):
    """What a checkpoint is loaded as: the one place `transformers`' auto classes are chosen."""

    CAUSAL_LM = "causal language model"
    SEQUENCE_CLASSIFIER = "sequence classifier"  # a judge of replies (evaluation/judge.py)


def load_checkpoint(workspace: Workspace, ref: str, *, actor: str, purpose: str,
                    head: Head = Head.CAUSAL_LM) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """The model registered as `ref` (`checkpoint/NAME@VERSION` or `sha256:<prefix>`), verified byte for byte and
    loaded with `head`, and its tokenizer when the checkpoint holds one."""
    use = open_for_use(workspace, ref, AssetKind.CHECKPOINT, actor=actor, purpose=purpose)
    asset = use.asset
    files = [entry["path"] for entry in json.loads(asset.manifest)["files"]]
    with tempfile.TemporaryDirectory(prefix="forgegov-checkpoint-") as scratch:
        # Files that break the rules of what a checkpoint may hold (registered before those rules) are refused too.
        snapshot = use.verify(lambda: snapshot_verified(asset, Path(scratch) / "snapshot"))
        with_tokenizer = not TOKENIZER_FILES.isdisjoint(files)
        model, tokenizer = _from_pretrained(snapshot, use.label, with_tokenizer, head)
    use.loaded(parent_digest=asset.parent_digest, files=len(files), tokenizer=with_tokenizer)
    return model, tokenizer


def _from_pretrained(snapshot: Path, name: str, with_tokenizer: bool,
                     head: Head) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    auto = {Head.CAUSAL_LM: AutoModelForCausalLM, Head.SEQUENCE_CLASSIFIER: AutoModelForSequenceClassification}[head]
    # Offline, safetensors only, and no code from the folder: the snapshot's bytes are all that may be used.
    options = {"local_files_only": True, "trust_remote_code": False}
    try:
        model, info = auto.from_pretrained(snapshot, use_safetensors=True, output_loading_info=True, **options)
        tokenizer = AutoTokenizer.from_pretrained(snapshot, **options) if with_tokenizer else None
    except (OSError, ValueError, RuntimeError) as exc:
        raise BadInput(f"{name} is verified but does not load as a {head.value}: {exc}") from exc
    # transformers fills weights a checkpoint lacks with random values and only warns: a causal language model
    # loaded as a classifier would get a random head, deciding differently on every load. A classifier must carry
    # every weight it uses.
    if head is Head.SEQUENCE_CLASSIFIER:
        gaps = {kind: sorted(map(str, info.get(kind) or ())) for kind in ("missing_keys", "mismatched_keys")}
        if any(gaps.values()):
            raise BadInput(f"{name} is verified but is not a complete {head.value}: "
                           + "; ".join(f"{kind.replace('_', ' ')}: {', '.join(keys[:5])}"
                                       for kind, keys in gaps.items() if keys),
                           hint="register the classifier saved with save_pretrained, head included")
    return model, tokenizer


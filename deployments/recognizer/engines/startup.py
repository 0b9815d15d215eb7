"""Why a vLLM engine did not start, in words that point at the right fix.

vLLM's front end only raises "Engine core initialization failed. See root cause above": the root
cause is logged by the EngineCore process. ``ErrorLog`` gives vLLM's loggers (in this process and,
through ``VLLM_LOGGING_CONFIG_PATH``, in the EngineCore processes it spawns) a second handler that
writes errors to a per-process file, so the start-up error can quote the root cause.
``start_failure`` then adds the fix that fits it: the memory plan's numbers for memory failures,
the offline download for hub or file failures, nothing misleading otherwise.

Also here: ``RpcFolder`` (where one engine's ZMQ sockets go, removed with it), the removal of what a
killed replica left (``remove_left_by_dead``) and the files a local checkpoint directory (e.g. a
fine-tuning output) must hold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from deployments.gpu_device import process_alive

HF_HINT = ("Without hub access run `huggingface-cli download {hub} --local-dir DIR` and set recognizer.model to "
           "DIR")
MEMORY_FIXES = ("free GPU memory, lower layout.batch_size or run layout on CPU (layout.device: cpu), lower "
                "engine_kwargs.max_num_batched_tokens, or set engine_kwargs.gpu_memory_utilization yourself")
CPU_MEMORY_FIXES = "raise recognizer.cpu_kv_cache_gb (the CPU engine's KV cache) or lower engine_kwargs.max_model_len"
_MEMORY = re.compile(r"memory|kv cache|OutOfMemory", re.I)
_HUB = re.compile(r"huggingface|hub|repository not found|repo id|LocalEntryNotFound|does not appear to have|"
                  r"No such file|not a (local folder|valid model)|Can't load|OfflineModeIsEnabled|\b40[14]\b", re.I)
# "ValueError: ..." at the end of a traceback; vLLM prefixes every logged line ("ERROR 11-30 ... [core.py:1510] ").
_EXCEPTION_LINE = re.compile(r"(?:^|\s)(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
_FORMAT = "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s"


def remove_left_by_dead(folder: Path, pattern: str) -> list[Path]:
    """Remove the entries of ``folder`` whose name matches ``pattern`` (group 1: the pid of the process
    that made them) when that process is gone: what a replica killed with SIGKILL left behind is
    removed by the next engine that starts on the node. Returns what was removed."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = re.fullmatch(pattern, entry.name)
        if match and not process_alive(int(match.group(1))):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


class RpcFolder:
    """A folder of one engine's own for the ZMQ IPC sockets between vLLM's front end and its
    EngineCore process, removed when the engine shuts down. vLLM names them
    ``$VLLM_RPC_BASE_PATH/<uuid>`` (default: the temp dir) and leaves the socket files behind, seven
    per engine started here, so replicas that restart, and test sessions, would fill /tmp. vLLM
    makes them all while the engine starts (the EngineCore process inherits the setting), so the
    setting is this folder only for that while; a base path the user set is kept as the parent."""

    def __init__(self):
        base = os.environ.get("VLLM_RPC_BASE_PATH") or tempfile.gettempdir()
        remove_left_by_dead(Path(base), r"vllm-rpc-(\d+)-\w+")  # a SIGKILLed replica's, never removed
        # named by this process (short: socket paths are limited)
        self.path = Path(tempfile.mkdtemp(prefix=f"vllm-rpc-{os.getpid()}-", dir=base))

    @contextlib.contextmanager
    def active(self):
        before = os.environ.get("VLLM_RPC_BASE_PATH")
        os.environ["VLLM_RPC_BASE_PATH"] = str(self.path)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("VLLM_RPC_BASE_PATH", None)
            else:
                os.environ["VLLM_RPC_BASE_PATH"] = before

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class ErrorLog:
    """vLLM's errors of this process and its EngineCore processes, in one file per process."""

    def __init__(self, root: Optional[Path] = None):
        folder = Path(root or Path(tempfile.gettempdir()) / "paddleocr-vl-serve")
        folder.mkdir(parents=True, exist_ok=True)
        remove_left_by_dead(folder, r"vllm-errors-(\d+)\.(?:log|json)")
        self.path = folder / f"vllm-errors-{os.getpid()}.log"
        self.path.touch()
        self.mark = self.path.stat().st_size

    def install(self) -> None:
        """Before vLLM is imported: a logging config that keeps vLLM's console output and adds this
        file (read by spawned EngineCore processes); after: the handler on the live logger (forked ones)."""
        config = self.path.with_suffix(".json")
        config.write_text(json.dumps(self.logging_config()))
        os.environ.setdefault("VLLM_LOGGING_CONFIG_PATH", str(config))
        logger = logging.getLogger("vllm")
        if not any(getattr(h, "baseFilename", None) == str(self.path) for h in logger.handlers):
            handler = logging.FileHandler(self.path)
            handler.setLevel(logging.ERROR)
            handler.setFormatter(logging.Formatter(_FORMAT))
            logger.addHandler(handler)

    def logging_config(self) -> dict:
        level = os.environ.get("VLLM_LOGGING_LEVEL", "INFO")
        return {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"vllm": {"()": "vllm.logging_utils.NewLineFormatter", "format": _FORMAT,
                                    "datefmt": "%m-%d %H:%M:%S"}},
            "handlers": {
                "vllm": {"class": "logging.StreamHandler", "formatter": "vllm", "level": level,
                         "stream": os.environ.get("VLLM_LOGGING_STREAM", "ext://sys.stdout")},
                "errors": {"class": "logging.FileHandler", "formatter": "vllm", "level": "ERROR",
                           "filename": str(self.path)}},
            "loggers": {"vllm": {"handlers": ["vllm", "errors"], "level": level, "propagate": False}},
        }

    def remove(self) -> None:
        """At engine shutdown: detach this file from vLLM's logger, delete it and its config, so
        that no file is left behind and the next engine of this process starts afresh."""
        logger = logging.getLogger("vllm")
        for handler in [h for h in logger.handlers if getattr(h, "baseFilename", None) == str(self.path)]:
            logger.removeHandler(handler)
            handler.close()
        config = self.path.with_suffix(".json")
        if os.environ.get("VLLM_LOGGING_CONFIG_PATH") == str(config):
            del os.environ["VLLM_LOGGING_CONFIG_PATH"]
        self.path.unlink(missing_ok=True)
        config.unlink(missing_ok=True)

    def since_mark(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.mark)
            return f.read().decode("utf-8", "replace")


def root_cause(log_text: str) -> Optional[str]:
    """The last exception line ("ValueError: Free memory on device ...") of the logged tracebacks."""
    found = None
    for line in log_text.splitlines():
        match = _EXCEPTION_LINE.search(line.strip())
        if match:
            found = f"{match.group(1)}: {match.group(2)}"
    return found


def start_failure(model: str, error: BaseException, log_text: str, hub_model: str,
                  plan_text: Optional[str] = None, on_gpu: bool = True) -> str:
    """The start-up error: the root cause (logged by EngineCore, else the exception) and its fix."""
    first = str(error).splitlines()[0] if str(error) else repr(error)
    cause = (root_cause(log_text) or f"{type(error).__name__}: {first}").rstrip(". ")
    message = f"vLLM could not start {model!r}: {cause}"
    if _MEMORY.search(cause):
        plan = f"the memory plan was: {plan_text}. " if plan_text else ""
        return f"{message}. {plan}Fixes: {MEMORY_FIXES if on_gpu else CPU_MEMORY_FIXES}"
    if isinstance(error, OSError) or _HUB.search(cause):
        return f"{message}. {HF_HINT.format(hub=hub_model)}"
    return f"{message}. The engine's full traceback is in this replica's log"


def missing_checkpoint_files(path: Path) -> list[str]:
    """What a local PaddleOCR-VL directory lacks for vLLM (a fine-tuning output often has only
    weights and config): the tokenizer config with its image token and the image processor's config.
    A chat template is not required: without one the engine uses its pipeline's."""
    missing = []
    tokenizer = path / "tokenizer_config.json"
    if not tokenizer.exists():
        missing.append("tokenizer_config.json")
    else:
        try:
            settings = json.loads(tokenizer.read_text())
        except ValueError:
            settings = {}
        if not settings.get("image_token"):
            missing.append("an image_token in tokenizer_config.json")
    if not any((path / f).exists() for f in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    return missing

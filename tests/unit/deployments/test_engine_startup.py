"""Start-up errors of the vLLM engine point at the right fix: the root cause logged by EngineCore,
the memory plan for memory failures, the offline download only for hub/file failures; and the files
a local (fine-tuned) checkpoint directory must hold; the folder of an engine's ZMQ sockets."""

import json

import pytest

from deployments.recognizer.engines.startup import missing_checkpoint_files, root_cause, start_failure

ENGINE_CORE_LOG = """ERROR 11-30 14:01:02 [core.py:1510] EngineCore failed to start.
ERROR 11-30 14:01:02 [core.py:1510] Traceback (most recent call last):
ERROR 11-30 14:01:02 [core.py:1510]   File "vllm/v1/worker/gpu_worker.py", line 535, in init_device
ERROR 11-30 14:01:02 [core.py:1510] ValueError: Free memory on device cuda:0 (6.77/7.96 GiB) on startup is less than \
desired GPU memory utilization (0.99, 7.88 GiB). Decrease GPU memory utilization or reduce GPU memory used by other \
processes.
"""
FRONT_END = RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")


def test_the_root_cause_is_the_last_logged_exception():
    assert root_cause(ENGINE_CORE_LOG).startswith("ValueError: Free memory on device cuda:0 (6.77/7.96 GiB)")
    assert root_cause("INFO nothing failed\n") is None


def test_a_memory_failure_quotes_the_root_cause_and_the_plan_not_the_hub():
    message = start_failure("PaddlePaddle/PaddleOCR-VL", FRONT_END, ENGINE_CORE_LOG, "PaddlePaddle/PaddleOCR-VL",
                            plan_text="card 7.96 GiB with 6.77 free; ...")
    assert "Free memory on device cuda:0 (6.77/7.96 GiB)" in message
    assert "See root cause above" not in message
    assert "the memory plan was: card 7.96 GiB with 6.77 free" in message and "layout.batch_size" in message
    assert "huggingface-cli" not in message


def test_a_hub_failure_gets_the_offline_download():
    log = "ERROR x\nERROR y OSError: We couldn't connect to 'https://huggingface.co' to load the files\n"
    message = start_failure("PaddlePaddle/PaddleOCR-VL", FRONT_END, log, "PaddlePaddle/PaddleOCR-VL")
    assert "huggingface-cli download PaddlePaddle/PaddleOCR-VL --local-dir DIR" in message
    assert "memory plan" not in message


def test_without_a_logged_cause_the_exception_is_kept_and_no_wrong_fix_is_given():
    message = start_failure("/m", TypeError("unexpected keyword argument 'foo'"), "", "PaddlePaddle/PaddleOCR-VL")
    assert "TypeError: unexpected keyword argument 'foo'" in message
    assert "huggingface-cli" not in message and "memory plan" not in message
    assert "full traceback is in this replica's log" in message


def test_a_fine_tuned_directory_names_what_it_lacks(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert missing_checkpoint_files(tmp_path) == ["tokenizer_config.json", "preprocessor_config.json"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    (tmp_path / "preprocessor_config.json").write_text("{}")
    assert missing_checkpoint_files(tmp_path) == ["an image_token in tokenizer_config.json"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"image_token": "<|IMAGE_PLACEHOLDER|>"}))
    assert missing_checkpoint_files(tmp_path) == []  # no chat template: the pipeline's is used


def test_the_tiny_checkpoint_is_complete(tiny_vlm):
    assert missing_checkpoint_files(tiny_vlm) == []


def test_a_number_that_contains_401_is_not_a_hub_error():
    message = start_failure("/m", ValueError("max_num_seqs 4010 exceeds the limit"), "", "PaddlePaddle/PaddleOCR-VL")
    assert "huggingface-cli" not in message
    hub = start_failure("org/model", RuntimeError("404 Client Error: Not Found for url"), "", "PaddlePaddle/PaddleOCR-VL")
    assert "huggingface-cli download" in hub


def test_the_error_log_leaves_nothing_behind(tmp_path, monkeypatch):
    import logging

    from deployments.recognizer.engines.startup import ErrorLog

    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    errors = ErrorLog(tmp_path)
    errors.install()
    logging.getLogger("vllm").error("ValueError: boom")
    assert root_cause(errors.since_mark()) == "ValueError: boom"
    errors.remove()
    assert list(tmp_path.iterdir()) == [] and "VLLM_LOGGING_CONFIG_PATH" not in __import__("os").environ
    assert not any(getattr(h, "baseFilename", "").startswith(str(tmp_path)) for h in logging.getLogger("vllm").handlers)


@pytest.mark.parametrize("preset", [False, True])
def test_the_rpc_folder_holds_the_setting_only_while_active_and_leaves_nothing(tmp_path, monkeypatch, preset):
    import os

    from deployments.recognizer.engines.startup import RpcFolder

    if preset:  # a base path the user set stays the parent, and the setting again afterwards
        monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(tmp_path))
    else:
        monkeypatch.delenv("VLLM_RPC_BASE_PATH", raising=False)
    folder = RpcFolder()
    assert folder.path.is_dir() and (folder.path.parent == tmp_path) == preset
    with folder.active():
        assert os.environ["VLLM_RPC_BASE_PATH"] == str(folder.path)
    assert os.environ.get("VLLM_RPC_BASE_PATH") == (str(tmp_path) if preset else None)
    (folder.path / "socket").touch()
    folder.remove()
    assert not folder.path.exists()


def test_what_a_killed_replica_left_is_removed_by_the_next_engine_that_starts(tmp_path, monkeypatch):
    """A SIGKILLed replica never removes its RpcFolder or error log: the next one on the node does,
    by the dead pid in their names; a live process's stay."""
    import os
    import subprocess
    import sys

    from deployments.recognizer.engines.startup import ErrorLog, RpcFolder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(tmp_path))
    logs = tmp_path / "logs"
    logs.mkdir()
    dead = [tmp_path / f"vllm-rpc-{gone}-abc123", logs / f"vllm-errors-{gone}.log", logs / f"vllm-errors-{gone}.json"]
    live = [tmp_path / f"vllm-rpc-{os.getpid()}-def456", logs / f"vllm-errors-{os.getppid()}.log",
            tmp_path / "vllm-rpc-notapid"]
    for path in dead + live:
        if "rpc" in path.name:
            path.mkdir()
        else:
            path.write_text("x")
    (dead[0] / "socket").touch()
    folder, log = RpcFolder(), ErrorLog(logs)
    assert not any(p.exists() for p in dead) and all(p.exists() for p in live)
    assert folder.path.name.startswith(f"vllm-rpc-{os.getpid()}-") and log.path.name == f"vllm-errors-{os.getpid()}.log"
    folder.remove()
    log.remove()

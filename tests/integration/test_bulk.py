"""Bulk runs: a job stopped mid-way and run again writes every document exactly once (real Ray,
real lite models, generated corpus with a corrupt and an encrypted PDF); inputs; cluster.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from documents import corrupt_pdf, encrypted_pdf, image_bytes, text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def make_corpus(root: Path, n: int = 12) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = root / f"doc{i:02d}.pdf"
        path.write_bytes(text_pdf(1 + i % 3, f"Document {i}, page {{n}}: some words to read. "))
        files.append(path)
    (root / "corrupt.pdf").write_bytes(corrupt_pdf())
    (root / "secret.pdf").write_bytes(encrypted_pdf())
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "figure.png").write_bytes(image_bytes(size=(400, 300)))
    return files + [root / "corrupt.pdf", root / "secret.pdf", root / "sub" / "figure.png"]


def run_bulk(corpus: Path, output: Path, stop_after_shards: int = 0) -> subprocess.CompletedProcess | None:
    """`python -m serve_app.bulk` in its own process (its own single-node Ray on 127.0.0.1);
    with ``stop_after_shards`` it is stopped (SIGTERM to its pid) once that many shards exist."""
    import os
    import signal
    import time

    command = [sys.executable, "-m", "serve_app.bulk", "--input", str(corpus), "--output", str(output),
               "--workers", "2", "--worker-num-cpus", "0.5", "--shard-size", "2", "--flush-every-s", "2",
               "--progress-every-s", "2"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=Path(__file__).parents[2], start_new_session=True)
    if stop_after_shards:
        deadline = time.monotonic() + 300
        while len(list(output.glob("part-*.parquet"))) < stop_after_shards and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)  # the job and the Ray processes it started, nothing else
        proc.wait(timeout=120)
        return None
    out, _ = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def test_stopped_job_resumes_and_every_document_is_written_once(tmp_path):
    corpus, output = tmp_path / "corpus", tmp_path / "out"
    files = make_corpus(corpus)
    run_bulk(corpus, output, stop_after_shards=1)
    written_before = pq.read_table(output).num_rows
    assert 0 < written_before < len(files)
    done = run_bulk(corpus, output)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(files) - written_before} to parse" in done.stdout and "[bulk] summary" in done.stdout
    table = pq.read_table(output)
    sources = table.column("source").to_pylist()
    assert sorted(sources) == sorted(str(f) for f in files)  # none missing, none twice
    status = dict(zip(sources, table.column("status").to_pylist()))
    kinds = dict(zip(sources, table.column("error_kind").to_pylist()))
    assert kinds[str(corpus / "corrupt.pdf")] == "corrupt_pdf" and kinds[str(corpus / "secret.pdf")] == "encrypted_pdf"
    assert sum(s == "ok" for s in status.values()) == len(files) - 2
    summary = json.loads((output / "_SUMMARY.json").read_text())
    assert summary["skipped"] == written_before and summary["job_status"] == "ok"
    markdown = dict(zip(sources, table.column("markdown").to_pylist()))
    assert "Document 3, page 1:" in markdown[str(corpus / "doc03.pdf")][0]
    again = run_bulk(corpus, output)
    assert "0 to parse" in again.stdout and pq.read_table(output).num_rows == len(files)


def test_inputs_from_directory_glob_and_manifests(tmp_path):
    from serve_app.bulk import list_inputs

    files = make_corpus(tmp_path / "c", 3)
    assert list_inputs(str(tmp_path / "c")) == sorted(str(f) for f in files)
    assert list_inputs(str(tmp_path / "c" / "*.pdf")) == sorted(str(f) for f in files if f.suffix == ".pdf")
    (tmp_path / "m.txt").write_text("\n".join(map(str, files[:2])) + "\n")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"path": str(f)}) for f in files[:2]))
    import pyarrow as pa

    pq.write_table(pa.table({"path": [str(f) for f in files[:2]]}), tmp_path / "m.parquet")
    for manifest in ("m.txt", "m.jsonl", "m.parquet"):
        assert list_inputs(str(tmp_path / manifest)) == [str(f) for f in files[:2]]
    with pytest.raises(SystemExit, match="does not exist"):
        list_inputs(str(tmp_path / "missing"))


def test_cluster_yaml_is_valid_for_the_ray_launcher():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((Path(__file__).parents[2] / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    types = config["available_node_types"]
    assert "GPU" not in types["head"]["resources"]
    assert {"gpu_blackwell_16gb", "gpu_datacenter"} <= set(types)
    assert "cu128" in config["docker"]["image"]

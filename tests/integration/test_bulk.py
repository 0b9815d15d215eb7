"""Bulk runs as Ray jobs on the session's two-node cluster: a job stopped mid-way and submitted
again writes every document exactly once (real Jobs API, real lite models, a generated corpus with a
corrupt and an encrypted PDF); inputs; cluster.yaml. A driver killed at every step of the commit
protocol: test_bulk_crash.py."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from devtools.documents import corrupt_pdf, encrypted_pdf, image_bytes, text_pdf

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


def submit(client, corpus: Path, output: Path, config: Path) -> str:
    """`python -m serve_app.bulk` as a Ray job: rendering tasks anywhere, layout and recognition
    actors on the second node (they ask for GPU shares; only that node declares GPUs)."""
    entrypoint = (f"{sys.executable} -m serve_app.bulk --input {corpus} --output {output} --config {config} "
                  "--recognize-workers 2 --recognize-batch 2 --shard-size 2 --flush-every-s 2 "
                  "--progress-every-s 2 --markdown-files --jsonl --max-doc-error-rate 0.9")
    # (how the documents split between the stopped job and the next depends on timing: the two bad
    # ones may be most of the second job's, which must still succeed)
    return client.submit_job(entrypoint=entrypoint)


def wait(client, job: str, timeout: float = 600, until=None):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_job_status(job)
        if status in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED) or (until and until()):
            return status
        time.sleep(0.5)
    client.stop_job(job)
    raise AssertionError(f"job {job} still {client.get_job_status(job)} after {timeout} s:\n"
                         + client.get_job_logs(job)[-3000:])


def shards(output: Path) -> list[Path]:
    return sorted((output / "parquet").glob("part-*.parquet"))


class Gate:
    """A document served over loopback HTTP that cannot finish until the test opens the gate: it
    trickles one byte every 2 s (the reader's timeout never fires), so the first job is stopped
    with work left by construction, however fast the machine."""

    def __init__(self, data: bytes):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        opened = self.opened = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                sent = 0
                try:
                    while not opened.wait(2) and sent < len(data) - 1:
                        self.wfile.write(data[sent : sent + 1])
                        self.wfile.flush()
                        sent += 1
                    opened.wait()
                    self.wfile.write(data[sent:])
                except (BrokenPipeError, ConnectionResetError):  # the stopped job went away
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/gated.pdf"

    def close(self):
        self.opened.set()
        self.server.shutdown()


@pytest.fixture
def gate():
    """The gated document's server, shut down (gate open) whatever the test's outcome."""
    gated = Gate(text_pdf(1, "Gated document, page {n}: it arrives only after the first job stopped. "))
    yield gated
    gated.close()


def test_job_on_two_nodes_stopped_and_resubmitted_writes_every_document_once(ray_cluster, tmp_path, gate):
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import list_actors

    corpus, output, config = tmp_path / "corpus", tmp_path / "out", tmp_path / "app.yaml"
    files = [str(f) for f in make_corpus(corpus)] + [gate.url]
    manifest = tmp_path / "corpus.txt"
    manifest.write_text("\n".join(files) + "\n")
    config.write_text("layout: {num_gpus: 0.25, num_cpus: 0.25}\nrecognizer: {num_gpus: 0.5, num_cpus: 0.25}\n")
    client = JobSubmissionClient(ray_cluster.dashboard)

    try:
        first = submit(client, manifest, output, config)
        assert wait(client, first, until=lambda: len(shards(output)) >= 1) == JobStatus.RUNNING
        client.stop_job(first)  # SIGTERM: the driver writes what is complete, then exits
        assert wait(client, first) == JobStatus.STOPPED
    finally:
        gate.opened.set()  # the resubmitted job reads the gated document at once
    first_sources = set(pq.read_table(output / "parquet").column("source").to_pylist())
    written_before = len(first_sources)
    assert 0 < written_before < len(files) and gate.url not in first_sources, client.get_job_logs(first)[-3000:]

    second = submit(client, manifest, output, config)
    assert wait(client, second) == JobStatus.SUCCEEDED, client.get_job_logs(second)[-3000:]
    logs = client.get_job_logs(second)
    assert f" {written_before} written earlier" in logs and "[bulk] summary" in logs

    nodes = {n["node_id"]: n for n in ray_cluster.nodes()}
    gpu_node = next(i for i, n in nodes.items() if "second_node" in n["resources_total"])
    job_id = client.get_job_info(second).job_id
    workers = [a for a in list_actors(address=ray_cluster.dashboard, filters=[("job_id", "=", job_id)], limit=1000)
               if "LayoutWorker" in a.class_name or "RecognizeWorker" in a.class_name]
    assert len(workers) == 3 and {a.node_id for a in workers} == {gpu_node}

    table = pq.read_table(output / "parquet")
    sources = table.column("source").to_pylist()
    assert sorted(sources) == sorted(files)  # none missing, none twice
    status = dict(zip(sources, table.column("status").to_pylist()))
    kinds = dict(zip(sources, table.column("error_kind").to_pylist()))
    assert kinds[str(corpus / "corrupt.pdf")] == "corrupt_pdf" and kinds[str(corpus / "secret.pdf")] == "encrypted_pdf"
    assert sum(s == "ok" for s in status.values()) == len(files) - 2
    summary = json.loads((output / "_SUMMARY.json").read_text())
    assert summary["skipped"] == written_before and summary["documents"] == len(files) - written_before
    failed_in_second = Counter(k for s, k in kinds.items() if k and s not in first_sources)
    assert summary["job_status"] == "ok" and summary["failures_by_kind"] == dict(failed_in_second)
    rows = {r["source"]: r for r in table.to_pylist()}
    doc = rows[str(corpus / "doc04.pdf")]
    assert doc["page_count"] == 2 and doc["pages_ok"] == 2 and "page 2:" in doc["markdown"][1]
    assert "parsing_res_list" in json.loads(doc["pruned_result"][1])
    assert (output / "markdown" / f"{doc['doc_id']}.md").read_text().startswith(doc["markdown"][0])
    jsonl = [json.loads(line) for f in sorted((output / "jsonl").glob("*.jsonl")) for line in f.open()]
    assert sorted(r["source"] for r in jsonl) == sorted(sources)

    third = submit(client, manifest, output, config)
    assert wait(client, third) == JobStatus.SUCCEEDED
    assert pq.read_table(output / "parquet").num_rows == len(files)
    assert json.loads((output / "_SUMMARY.json").read_text())["skipped"] == len(files)


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
    assert {"gpu_single", "gpu_datacenter"} <= set(types)
    assert "cu128" in config["docker"]["image"]

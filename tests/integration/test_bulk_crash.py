"""The bulk commit protocol killed at every step (``serve_app/bulk/output.py``): a real driver
(``python -m serve_app.bulk`` on the session's cluster, the offline models) gets a real SIGKILL, or a
real SIGTERM, from itself at each named crash point in turn (``serve_app/crashpoints.py``), and the
next run resumes from whatever the crash left, the crash points of recovery included. After every
run: no source twice in the shards or the JSONL twins, nothing committed lost or parsed again; after
the last run, every source exactly once. Work is bounded by count (a point is its n-th occurrence),
never by timing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from devtools.documents import corrupt_pdf, text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: (crash spec, how the run ends): each run starts from the state the run before it left.
KILL_CHAIN = [
    ("commit:markdown=KILL", "killed"),  # a Markdown file written, its document not committed
    ("commit:pending=KILL", "killed"),  # one document committed, in no shard
    ("recover:shard=KILL", "killed"),  # the next run dies in recovery: a shard written, the pending file kept
    ("recover:delete=KILL", "killed"),  # ... and again after removing it
    ("compact:shard=KILL", "killed"),  # a shard written: no JSONL twin, its pending files kept
    ("recover:jsonl=KILL", "killed"),  # the next run dies after writing the missing twin
    ("compact:jsonl=KILL", "killed"),  # shard and twin written, the pending files kept
    ("compact:delete=KILL", "killed"),  # one of the two pending files removed
    ("summary=KILL", "killed"),  # everything written, the summary too; dead before exit
]
TERM_CHAIN = [
    ("commit:markdown=TERM", "stopped"),  # the signal waits for the commit; the run compacts and stops
    ("commit:pending#2=TERM", "stopped"),
    ("commit:pending=TERM,stopping=KILL", "killed"),  # killed once stopping, before its last compaction
    ("recover:shard=TERM", "stopped"),  # waits for recovery to end; stops before parsing anything
    ("compact:shard=TERM", "stopped"),  # waits for the compaction (twin, pending files) to end
    ("compact:delete=TERM", "stopped"),
    ("commit:pending=TERM,stop:compact:shard=KILL", "killed"),  # killed inside the stopping compaction
    ("commit:pending=TERM,stop:compact:delete=KILL", "killed"),
    ("summary=TERM", "ok"),  # the run is ending: the signal changes nothing
]


def make_corpus(root: Path, n: int) -> list[str]:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"doc{i:02d}.pdf").write_bytes(text_pdf(1, f"Document {i}, page {{n}}: a few words. "))
    (root / "corrupt.pdf").write_bytes(corrupt_pdf())  # a failed row: no Markdown file
    return sorted(str(p) for p in root.iterdir())


class Chain:
    """Runs the driver again and again on one output and checks the invariant after each run."""

    def __init__(self, cluster, tmp: Path, documents: int = 12):
        self.sources = make_corpus(tmp / "corpus", documents)
        self.output = tmp / "out"
        self.tmp, self.runs = tmp, 0
        self.committed: dict[str, str] = {}  # source → finished_at of its row, once committed
        self.command = [sys.executable, "-m", "serve_app.bulk", "--input", str(tmp / "corpus"),
                        "--output", str(self.output), "--shard-size", "2", "--flush-every-s", "600",
                        "--recognize-batch", "1", "--markdown-files", "--jsonl", "--max-doc-error-rate", "1"]
        self.env = {**os.environ, "RAY_ADDRESS": cluster.address}

    def run(self, spec: str = "") -> tuple[int, str]:
        self.runs += 1
        env = {**self.env, "PADDLEOCR_VL_CRASH": spec} if spec else self.env
        done = subprocess.run(self.command, env=env, capture_output=True, text=True, timeout=900)
        (self.tmp / f"run{self.runs}.log").write_text(done.stdout + done.stderr)
        return done.returncode, done.stdout + done.stderr

    def step(self, spec: str, ends: str) -> None:
        before = dict(self.committed)
        code, log = self.run(spec)
        fired = re.findall(r"\[crash point\] (\S+)#\d+: SIG(\w+)", log)
        assert fired, f"{spec}: no crash point fired\n{log[-3000:]}"
        expected = {"killed": -signal.SIGKILL, "stopped": 1, "ok": 0}[ends]
        assert code == expected, f"{spec}: exit {code}, expected {expected}\n{log[-3000:]}"
        written = re.search(r" (\d+) written earlier", log)
        if written:  # it got past recovery: it skipped exactly what was committed before it
            assert int(written.group(1)) == len(before), f"{spec}: {log[-3000:]}"
        self.check(spec, before)
        if ends != "killed":  # a run that ended compacted everything and counted what it committed
            summary = json.loads((self.output / "_SUMMARY.json").read_text())
            assert summary["job_status"] == ends and not self.pending_rows(), f"{spec}: {summary}"
            assert summary["documents"] == len(self.committed) - len(before), f"{spec}: {summary}"

    def check(self, spec: str, before: dict[str, str]) -> None:
        shard_rows = self.shard_rows()
        for name, rows in (("parquet", shard_rows), ("jsonl", self.jsonl_rows())):
            twice = [s for s, n in Counter(r["source"] for r in rows).items() if n > 1]
            assert not twice, f"after {spec}: {twice} twice in {name}"
        now: dict[str, set[str]] = {}
        for row in shard_rows + self.pending_rows():
            now.setdefault(row["source"], set()).add(row["finished_at"])
        assert all(len(v) == 1 for v in now.values()), f"after {spec}: a source with two different rows: {now}"
        for source, at in before.items():  # nothing lost, nothing parsed again
            assert now.get(source) == {at}, f"after {spec}: {source} was {at}, now {now.get(source)}"
        self.committed = {s: next(iter(v)) for s, v in now.items()}
        assert set(self.committed) <= set(self.sources)

    def finish(self) -> None:
        before = dict(self.committed)
        code, log = self.run()
        assert code == 0, log[-3000:]
        self.check("the last run", before)
        rows = self.shard_rows()
        assert sorted(r["source"] for r in rows) == self.sources  # every source exactly once
        assert sorted(r["source"] for r in self.jsonl_rows()) == self.sources
        assert not self.pending_rows()
        summary = json.loads((self.output / "_SUMMARY.json").read_text())
        assert summary["skipped"] == len(before) and summary["documents"] == len(self.sources) - len(before)
        for row in rows:
            if row["status"] == "ok":
                assert (self.output / "markdown" / f"{row['doc_id']}.md").read_text() == "\n\n".join(row["markdown"])
            else:
                assert row["error_kind"] == "corrupt_pdf"

    def shard_rows(self) -> list[dict]:
        folder = self.output / "parquet"
        return pq.read_table(folder).to_pylist() if list(folder.glob("part-*.parquet")) else []

    def jsonl_rows(self) -> list[dict]:
        return [json.loads(line) for f in sorted((self.output / "jsonl").glob("part-*.jsonl")) for line in f.open()]

    def pending_rows(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in (self.output / "_pending").glob("*.json")]


@pytest.mark.parametrize("chain", [KILL_CHAIN, TERM_CHAIN], ids=["sigkill", "sigterm"])
def test_a_driver_killed_at_every_step_resumes_with_every_document_exactly_once(ray_cluster, tmp_path, chain):
    runs = Chain(ray_cluster, tmp_path)
    for spec, ends in chain:
        runs.step(spec, ends)
    runs.finish()

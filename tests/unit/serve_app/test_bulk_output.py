"""The bulk output's commit protocol without Ray (``serve_app/bulk/output.py``): shards, recovery of
what a killed driver left at each step, the one-writer lock, the stop signals' timing and the crash
points themselves. The same protocol killed for real at every step: tests/integration/test_bulk_crash.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from serve_app import crashpoints
from serve_app.bulk.io import list_inputs
from serve_app.bulk.output import Output
from serve_app.bulk.stopping import GracefulStop
from test_bulk_pieces import collector, done, page


def sources(folder) -> list[str]:
    return sorted(pq.read_table(folder / "parquet").column("source").to_pylist())


def jsonl_sources(folder) -> list[str]:
    return sorted(json.loads(line)["source"] for f in (folder / "jsonl").glob("*.jsonl") for line in f.open())


def test_shards_are_atomic_and_resume_keeps_the_newest_row_per_source(tmp_path):
    collect, output = collector(), Output(str(tmp_path), markdown_files=True, jsonl=True)
    old = collect.add(page("a", 0, 1, doc_id="h1"))
    failed = collect.add(done("b", "unreadable_source"))
    for row in (old, failed):
        output.commit(row)
    output.compact([old, failed])
    new = {**collect.add(page("a", 0, 1, doc_id="h2")), "finished_at": "9999"}
    output.write_shard([new])
    other = {**new, "fingerprint": "other", "source": "z"}
    output.write_shard([other])
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary files left
    assert not list((tmp_path / "_pending").iterdir())  # compacted
    assert pq.read_table(tmp_path / "parquet").num_rows == 4
    assert output.completed("fp") == {"a": "h2", "b": ""}
    assert output.completed("fp", retry_failed=True) == {"a": "h2"}
    assert Output(str(tmp_path / "nothing")).completed("fp") == {} and Output(str(tmp_path / "nothing")).recover() == 0
    assert (tmp_path / "markdown" / "h1.md").read_text() == "a p0"
    jsonl = [json.loads(line)["source"] for f in (tmp_path / "jsonl").glob("*.jsonl") for line in f.open()]
    assert sorted(jsonl) == ["a", "a", "b", "z"]  # the same rows as the shards


def test_a_driver_killed_anywhere_leaves_each_committed_document_exactly_once_after_recovery(tmp_path):
    """Committed, not compacted (killed before the shard) → recovered into a shard; compacted but
    the pending files not yet removed (killed between) → removed, not written twice."""
    collect, output = collector(), Output(str(tmp_path))
    rows = [collect.add(page(name, 0, 1, doc_id=name)) for name in "abcd"]
    for row in rows:
        output.commit(row)
    output.compact(rows[:1])
    output.write_shard(rows[1:2])  # compact() killed after b's shard, before its pending file went
    assert len(list((tmp_path / "_pending").iterdir())) == 3  # b, c, d
    assert output.completed("fp") == {"a": "a", "b": "b"}
    assert output.committed_sources() == {"a", "b", "c", "d"}  # shards and pending files
    assert Output(str(tmp_path)).recover() == 2  # c and d; b is in a shard already
    assert sorted(pq.read_table(tmp_path / "parquet").column("source").to_pylist()) == ["a", "b", "c", "d"]
    assert not list((tmp_path / "_pending").iterdir()) and Output(str(tmp_path)).recover() == 0


def test_a_compaction_repeated_after_an_interruption_writes_nothing_twice(tmp_path):
    """The CI failure of 8f49133: a stop signal landed inside a compaction after its shard, and the
    stopping driver compacted the same documents again."""
    collect, output = collector(), Output(str(tmp_path), jsonl=True)
    rows = [collect.add(page(name, 0, 1, doc_id=name)) for name in "ab"]
    for row in rows:
        output.commit(row)
    output.write_shard(rows)  # the shard is in place; the pending files are not removed yet
    output.compact(rows)  # the stopping driver's last compaction, with the same buffer
    assert sources(tmp_path) == jsonl_sources(tmp_path) == ["a", "b"]
    assert not list((tmp_path / "_pending").iterdir())


def test_recovery_gives_every_shard_its_jsonl_twin_and_removes_cut_short_writes(tmp_path):
    collect = collector()
    rows = [collect.add(page(name, 0, 1, doc_id=name)) for name in "abc"]
    Output(str(tmp_path)).write_shard(rows[:2])  # as if killed between the shard and its twin
    (tmp_path / "parquet" / ".part-x.parquet.tmp").write_bytes(b"half a shard")
    (tmp_path / "_pending").mkdir()
    (tmp_path / "_pending" / ".abc.json.tmp").write_text("{")
    output = Output(str(tmp_path), jsonl=True)
    output.commit(rows[2])
    assert output.recover() == 1
    assert sources(tmp_path) == jsonl_sources(tmp_path) == ["a", "b", "c"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert Output(str(tmp_path), jsonl=True).recover() == 0 and jsonl_sources(tmp_path) == ["a", "b", "c"]


def test_one_writer_per_output_and_the_lock_goes_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from serve_app.bulk.output import Output; "
                               f"Output({str(tmp_path)!r}).claim(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit, match=rf"another bulk run \(pid {holder.pid} on .*\) is writing to"):
            Output(str(tmp_path)).claim()
    finally:
        holder.kill()
        holder.wait()
    Output(str(tmp_path)).claim()  # a SIGKILLed holder leaves no lock behind


def test_a_run_that_ends_releases_its_output_to_the_next_run_in_the_same_process(tmp_path):
    first = Output(str(tmp_path))
    first.claim()
    with pytest.raises(SystemExit, match="another bulk run"):
        Output(str(tmp_path)).claim()  # two runs at once in one process are refused too
    first.release()
    first.release()  # twice is harmless
    Output(str(tmp_path)).claim()


def test_a_stop_signal_waits_for_the_step_under_way_and_is_ignored_once_stopping():
    stop, previous = GracefulStop(), signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        steps = []
        with pytest.raises(KeyboardInterrupt):
            with stop.step():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished")  # the step goes on to its end
        assert steps == ["finished"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # between steps: at once
        stop.stop()
        with stop.step():
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # stopping: nothing raised
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_points(spec: str, code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from serve_app import crashpoints as c\n" + code],
                          env={**os.environ, crashpoints.ENV: spec, **env}, capture_output=True, text=True, timeout=60)


def test_a_crash_point_kills_its_process_at_the_named_occurrence_and_phase(tmp_path):
    done_ = run_points("a#2=KILL", "c.reached('a'); print('one', flush=True); c.reached('a'); print('two')")
    assert done_.returncode == -signal.SIGKILL and done_.stdout == "one\n" and "[crash point] a#2: SIGKILL" in done_.stderr
    code = "c.reached('a')\nwith c.phase('stop'):\n    c.reached('a')\nprint('after')"
    assert run_points("stop:a=KILL", code).returncode == -signal.SIGKILL
    assert run_points("stop:a#2=KILL", code).stdout == "after\n"
    marker = tmp_path / "fired"
    assert run_points("a=KILL", "c.reached('a')", PADDLEOCR_VL_CRASH_ONCE=str(marker)).returncode == -signal.SIGKILL
    assert run_points("a=KILL", "c.reached('a'); print('restarted')",
                      PADDLEOCR_VL_CRASH_ONCE=str(marker)).stdout == "restarted\n"  # fires once across restarts
    with pytest.raises(ValueError, match="point\\[#n\\]=KILL"):
        crashpoints.parse("a#x=KILL")
    assert crashpoints.parse("a=TERM, b#3=KILL") == {("a", 1): signal.SIGTERM, ("b", 3): signal.SIGKILL}


def test_a_manifest_that_names_a_source_twice_lists_it_once(tmp_path):
    (tmp_path / "m.txt").write_text("x.pdf\ny.pdf\nx.pdf\n")
    assert list_inputs(str(tmp_path / "m.txt")) == ["x.pdf", "y.pdf"]

"""The launcher's overrides, Ray CPU count and object store size (no Ray started)."""

import pytest
import yaml

from serve_app import launch
from serve_app.__main__ import main


def test_overrides_are_dotted_yaml_values_on_a_copy():
    args = {"recognizer": {"num_cpus": 0.5}}
    out = launch.apply_overrides(args, ["recognizer.model=/models/PaddleOCR-VL", "layout.batch_size=4",
                                        "ingress.visualize=false", "jobs.store=/var/lib/jobs"])
    assert out == {"recognizer": {"num_cpus": 0.5, "model": "/models/PaddleOCR-VL"}, "layout": {"batch_size": 4},
                   "ingress": {"visualize": False}, "jobs": {"store": "/var/lib/jobs"}}
    assert args == {"recognizer": {"num_cpus": 0.5}}


@pytest.mark.parametrize("bad", ["recognizer.model", "=x", "recognizer.num_cpus.x=1"])
def test_malformed_override_names_the_fix(bad):
    with pytest.raises(SystemExit, match="KEY=VALUE|is a value"):
        launch.apply_overrides({"recognizer": {"num_cpus": 0.5}}, [bad])


def test_unknown_key_stops_before_ray_starts(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"applications": [{"name": "a", "args": {}}]}))
    assert main(["serve", str(config), "--set", "recognizer.modle=/m"]) == 2
    err = capsys.readouterr().err
    assert "recognizer.modle=/m" in err and "recognizer.modle: unknown setting; did you mean 'model'?" in err


def test_ray_is_told_at_least_the_reserved_cpus(monkeypatch):
    from serve_app.config import load_config

    configs = [load_config(a["args"]) for a in yaml.safe_load(open("configs/cpu.yaml"))["applications"]]
    monkeypatch.setattr("deployments.resources.machine_cpus", lambda: 1)
    assert launch.ray_cpus(configs) == 2  # 4 deployments' fractions: 1.75
    monkeypatch.setattr("deployments.resources.machine_cpus", lambda: 16)
    assert launch.ray_cpus(configs) == 16


def test_object_store_fits_a_small_dev_shm(monkeypatch, tmp_path):
    gib = 1024**3
    monkeypatch.setattr("ray._common.utils.get_system_memory", lambda: 64 * gib)
    monkeypatch.setattr("shutil.disk_usage", lambda _: type("U", (), {"total": 2 * gib})())
    assert launch.object_store_bytes() == int(2 * gib * 0.8)
    monkeypatch.setattr("shutil.disk_usage", lambda _: type("U", (), {"total": 32 * gib})())
    assert launch.object_store_bytes() is None  # Ray's default (30 % of 64 GiB) fits
    monkeypatch.setattr("shutil.disk_usage", lambda _: type("U", (), {"total": 64 * 1024**2})())
    assert launch.object_store_bytes() is None  # Docker's default 64 MiB: Ray's own fallback, never 51 MB

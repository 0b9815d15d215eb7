"""Every shipped Serve config file builds a valid AppConfig; defaults are sane."""

from pathlib import Path

import pytest
import yaml

from serve_app.config import AppConfig, ConfigError, load_config

CONFIGS = sorted((Path(__file__).parents[3] / "configs").glob("*.yaml"))


def test_there_are_configs_for_cpu_and_each_gpu_class():
    names = {p.name for p in CONFIGS}
    assert {"cpu.yaml", "gpu-8gb.yaml", "gpu-12gb.yaml", "gpu-16gb.yaml", "gpu-24gb.yaml", "gpu-32gb.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_serve_config_files_validate(path):
    serve_config = yaml.safe_load(path.read_text())
    assert serve_config["http_options"]["host"] == "127.0.0.1"
    (application,) = serve_config["applications"]
    assert application["import_path"] == "serve_app:build_app"
    config = load_config(application["args"])
    gpus = config.layout_config().num_gpus + config.recognizer_config().num_gpus
    assert gpus < 1.0  # fractions on one card leave headroom
    if config.gpu:  # a GPU config: both stages on the card, placed by its memory plan
        assert config.layout_config().num_gpus > 0 and config.recognizer_config().num_gpus > 0.5


def test_defaults_and_unknown_keys():
    config = AppConfig()
    assert config.layout.backend == "auto" and config.recognizer.engine == "auto"
    options = config.deployment("recognizer").serve_options()
    assert options["max_ongoing_requests"] >= 64  # Serve's default of 5 would starve a batching engine
    with pytest.raises(ValueError, match="recogniser: unknown setting; did you mean 'recognizer'"):
        load_config({"recogniser": {}})
    with pytest.raises(ValueError, match="deployments.layout.max_queue_requests: unknown setting; did you mean "
                       "'max_queued_requests'"):
        load_config({"deployments": {"layout": {"max_queue_requests": 1}}})


def test_the_api_replica_keeps_room_for_health_beside_its_documents():
    assert AppConfig().deployment("ingress").max_ongoing_requests == 1024
    with pytest.raises(ValueError, match="max_ongoing_requests 256 leaves no room beside 64 documents in progress and "
                       "256 waiting .* /health would queue behind parsing; make it at least 192 more"):
        load_config({"deployments": {"ingress": {"max_ongoing_requests": 256}}})
    assert load_config({"deployments": {"ingress": {"max_ongoing_requests": 256}},
                        "ingress": {"max_waiting_documents": 0}}).deployment("ingress").max_ongoing_requests == 256


def test_a_deployment_setting_changes_that_setting_only():
    settings = load_config({"deployments": {"recognizer": {"max_queued_requests": 99}}}).deployment("recognizer")
    assert (settings.max_queued_requests, settings.max_ongoing_requests, settings.num_replicas) == (99, 256, 1)


def test_the_recognizer_reserves_the_layout_models_gpu_peak_only_when_they_share_a_card():
    from deployments.gpu_memory import layout_peak_gib

    on_gpu = {"backend": "transformers", "device": "cuda", "num_gpus": 0.1, "batch_size": 8}
    assert load_config({"layout": on_gpu}).recognizer_config().gpu_reserved_gb == layout_peak_gib(8, "float32")
    bf16 = load_config({"layout": {**on_gpu, "dtype": "bfloat16"}}).recognizer_config()
    assert bf16.gpu_reserved_gb == layout_peak_gib(8, "bfloat16") < layout_peak_gib(8, "float32")
    for layout in ({**on_gpu, "device": "cpu"}, {**on_gpu, "num_gpus": 0}, {}):  # CPU, no GPU share, lite
        assert load_config({"layout": layout}).recognizer_config().gpu_reserved_gb == 0.0
    explicit = load_config({"layout": on_gpu, "recognizer": {"gpu_reserved_gb": 3.0}})
    assert explicit.recognizer_config().gpu_reserved_gb == 3.0


def test_a_card_class_places_the_gpu_stages_from_its_memory_plan_and_a_set_fraction_wins():
    from deployments.gpu_memory import plan_card

    gpu_stages = {"layout": {"backend": "transformers", "model": "m", "device": "cuda", "batch_size": 16},
                  "recognizer": {"engine": "vllm", "model": "v"}}
    config = load_config({"gpu": "16gb", **gpu_stages})
    plan = plan_card("16gb", config.recognizer_config().gpu_reserved_gb)
    assert (config.layout_config().num_gpus, config.recognizer_config().num_gpus) == \
        (plan.layout_num_gpus, plan.recognizer_num_gpus)
    assert config.layout_config().num_gpus + config.recognizer_config().num_gpus <= 1
    own = load_config({"gpu": "16gb", **gpu_stages, "recognizer": {**gpu_stages["recognizer"], "num_gpus": 0.5}})
    assert own.recognizer_config().num_gpus == 0.5 and own.layout_config().num_gpus == plan.layout_num_gpus
    assert load_config({"gpu": "16gb"}).layout_config().num_gpus == 0  # the lite layout model runs on CPU
    with pytest.raises(ValueError, match="gpu: '10gb' is not a card class; use one of 8gb"):
        load_config({"gpu": "10gb"})
    with pytest.raises(ValueError, match=r"layout.num_gpus 0.5 \+ recognizer.num_gpus 0.9 > 1"):
        load_config({"layout": {**gpu_stages["layout"], "num_gpus": 0.5}, "recognizer": {"num_gpus": 0.9}})


def test_an_empty_api_key_is_refused_not_taken_as_no_key():
    with pytest.raises(ConfigError, match="ingress.api_key: an empty key would turn authentication off"):
        load_config({"ingress": {"api_key": " "}})
    assert load_config({"ingress": {"api_key": "k"}}).ingress.api_key == "k"

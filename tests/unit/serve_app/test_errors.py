"""The one error vocabulary: Ray's and Serve's own exception types classified by isinstance, the
document's input errors by their kind, a stage's own failure by its stage; ServiceError's status
and Retry-After; the options a job keeps; what each path defaults to."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from deployments.datamodel import ErrorKind, Stage
from deployments.renderer import InputError
from serve_app.config import AppConfig
from serve_app.errors import ServiceError, classify, page_error, service_error
from serve_app.options import OptionError, ParseOptions


def ray_errors():
    from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, OwnerDiedError
    from ray.serve.exceptions import BackPressureError

    return [(ActorDiedError(), ErrorKind.REPLICA_LOST), (ActorUnavailableError("gone", None), ErrorKind.REPLICA_LOST),
            (OwnerDiedError("00" * 28, None, ""), ErrorKind.REPLICA_LOST), (BackPressureError(num_queued_requests=9, max_queued_requests=8),
                                                           ErrorKind.OVERLOADED),
            (GetTimeoutError(), ErrorKind.DEADLINE_EXCEEDED), (asyncio.TimeoutError(), ErrorKind.DEADLINE_EXCEEDED)]


def test_ray_and_serve_errors_are_classified_by_their_types_on_every_path():
    for exc, kind in ray_errors():
        assert classify(exc, Stage.LAYOUT) == kind, exc
        wrapped = RuntimeError("a stage call failed")
        wrapped.__cause__ = exc
        assert classify(wrapped, Stage.RECOGNIZE) == kind
    assert classify(InputError(ErrorKind.CORRUPT_PDF, "bad")) == ErrorKind.CORRUPT_PDF
    assert classify(ValueError("bug"), Stage.LAYOUT) == ErrorKind.LAYOUT_FAILED
    assert classify(ValueError("bug"), Stage.RENDER) == ErrorKind.RENDER_FAILED
    assert classify(ValueError("bug")) == ErrorKind.INTERNAL_ERROR


def test_a_page_error_names_its_stage_and_the_fix():
    from ray.exceptions import ActorDiedError

    lost = page_error(ActorDiedError(), Stage.LAYOUT, 2)
    assert (lost.stage, lost.kind) == (Stage.LAYOUT, ErrorKind.REPLICA_LOST)
    assert lost.message.startswith("page 3: the layout replica serving it stopped") and "retry the document" in lost.message
    own = page_error(KeyError("x"), Stage.RECOGNIZE, 0)
    assert own.kind == ErrorKind.RECOGNITION_FAILED and "KeyError" in own.message


def test_service_errors_carry_status_and_retry_after_across_processes():
    busy = pickle.loads(pickle.dumps(ServiceError(429, "busy; retry later", 5)))
    assert (busy.status, busy.message, busy.headers) == (429, "busy; retry later", {"Retry-After": "5"})
    assert str(busy) == "HTTP 429: busy; retry later" and ServiceError(422, "x").headers == {}
    assert service_error(InputError(ErrorKind.EMPTY_PDF, "no pages")).status == 422
    assert service_error(OptionError("layoutNms: bad")).status == 422
    assert (service_error(KeyError("bug")).status, service_error(KeyError("bug")).message) == (500, "Internal server error")


def test_each_path_decides_options_over_its_defaults_and_a_job_keeps_them_whole():
    config = AppConfig(ingress={"timeout_s": 120, "visualize": False})
    assert ParseOptions.from_request({}, config.option_defaults("call")).deadline_s == 120
    assert ParseOptions.from_request({}, config.option_defaults("job")).deadline_s == 21600  # jobs.timeout_s
    bulk = ParseOptions.from_request({"visualize": True}, config.option_defaults("bulk"))
    assert bulk.deadline_s is None and bulk.visualize  # the request's own value wins
    assert ParseOptions.from_request({}, config.option_defaults("bulk")).visualize is False
    request = {"layoutThreshold": {"22": 0.35, "3": 0.5}, "vlmExtraArgs": {"table_max_pixels": 500000},
               "markdownIgnoreLabels": ["header"], "deadlineSeconds": 30, "pageRanges": "1-2"}
    options = ParseOptions.from_request(request, config.option_defaults("job"))
    assert ParseOptions.model_validate(pickle.loads(pickle.dumps(options.model_dump(mode="json")))) == options
    import json

    assert ParseOptions.model_validate(json.loads(json.dumps(options.model_dump(mode="json")))) == options


def test_a_deadline_beyond_the_path_s_cap_is_refused_naming_the_setting():
    config = AppConfig(ingress={"timeout_s": 120, "max_deadline_s": 600}, jobs={"max_deadline_s": 7200})
    assert ParseOptions.from_request({"deadlineSeconds": 600}, config.option_defaults("call")).deadline_s == 600
    with pytest.raises(OptionError, match=r"deadlineSeconds: 601 exceeds .* 600 s \(ingress.max_deadline_s\); a longer "
                       r"document is for a job"):
        ParseOptions.from_request({"deadlineSeconds": 601}, config.option_defaults("call"))
    assert ParseOptions.from_request({"deadlineSeconds": 7200}, config.option_defaults("job")).deadline_s == 7200
    with pytest.raises(OptionError, match=r"7201 exceeds .* \(jobs.max_deadline_s\)$"):
        ParseOptions.from_request({"deadlineSeconds": 7201}, config.option_defaults("job"))
    assert ParseOptions.from_request({"deadlineSeconds": 10**6}, config.option_defaults("bulk")).deadline_s == 10**6
    with pytest.raises(ValueError, match="timeout_s 700 exceeds max_deadline_s 600"):
        AppConfig(ingress={"timeout_s": 700, "max_deadline_s": 600})
    with pytest.raises(ValueError, match="max_body_mb 300 exceeds bodies_in_flight_mb 200: a body of the largest size"):
        AppConfig(ingress={"max_body_mb": 300, "bodies_in_flight_mb": 200})


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_kind_is_written_as_its_name(kind):
    import json

    assert json.dumps(kind) == f'"{kind.value}"' and f"{kind}" == kind.value == str(kind)

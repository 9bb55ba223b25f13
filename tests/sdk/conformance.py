#!/usr/bin/env python3
"""Drives `dashbatch sim serve` with the official OpenAI Python SDK and checks, strictly, that the
simulator speaks the API as the real providers do.

Usage: conformance.py BASE_URL [dashscope|openai]

BASE_URL is the simulator's base URL (`http://127.0.0.1:PORT/compatible-mode/v1` for the
DashScope flavour, `http://127.0.0.1:PORT/v1` for the OpenAI flavour); the flavour is guessed from
it when not given. The admin routes (`/_sim/clock`, `/_sim/faults`) are reached at the same host.

Every object the simulator returns is validated with the SDK's own pydantic types in strict mode
(`Model.model_validate(raw_json, strict=True)` on the raw JSON of `with_raw_response`), and every
output/error line with the `BatchRequestOutput` shape below. Where DashScope legitimately sends
something OpenAI's types describe differently, the divergence is listed in DIVERGENCES with its
section of shared/reference/dashscope-batch-api.md and handled for that field and value only.

The script prints one line per failed check, the divergences it had to accept, and a summary
`sdk conformance (<flavour>): N checks passed, M failed`; it exits 1 when any check failed.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import re
import sys
import time
import traceback
import typing
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Literal, Optional

import openai
import pydantic
from openai.pagination import SyncCursorPage
from openai.types import Batch, CreateEmbeddingResponse, FileDeleted, FileObject
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, TypeAdapter

TERMINAL = {"completed", "failed", "expired", "cancelled"}
# The providers' recorded answers, copied from the reference (fixtures/api/README.md).
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "api"
POLL_TIMEOUT_SECONDS = 60.0
# The simulator's default speed: a few lines finish in well under a second.
FAST_TIME_SCALE = 1000.0

# The keys each provider sends on a batch object (§3.2, §3.5; §8.3 adds `model` and `usage`).
DASHSCOPE_BATCH_KEYS = {
    "id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status",
    "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at",
    "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
    "request_counts", "metadata",
}
OPENAI_BATCH_KEYS = DASHSCOPE_BATCH_KEYS | {"model", "usage"}
# File objects: DashScope omits `status_details` and has no `expires_at` (§2.1, §2.6); OpenAI
# sends both (§8.2).
DASHSCOPE_FILE_KEYS = {"id", "object", "bytes", "created_at", "filename", "purpose", "status"}
OPENAI_FILE_KEYS = DASHSCOPE_FILE_KEYS | {"expires_at", "status_details"}


# ---------------------------------------------------------------------------------------------
# The result-line shape (reference §5.1, §5.2, §8.4: OpenAI's BatchRequestOutput)
# ---------------------------------------------------------------------------------------------


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LineResponse(StrictModel):
    status_code: int
    request_id: str
    body: Dict[str, Any]


class LineError(StrictModel):
    code: str
    message: str


class BatchRequestOutput(StrictModel):
    """One line of an output or error file. Every key is always present; `response` and `error`
    may be null (never both)."""

    id: str
    custom_id: str
    response: Optional[LineResponse]
    error: Optional[LineError]

    @pydantic.model_validator(mode="after")
    def response_or_error(self) -> "BatchRequestOutput":
        if self.response is None and self.error is None:
            raise ValueError("a result line has neither `response` nor `error`")
        return self


class ErrorDetail(StrictModel):
    message: str
    type: str
    code: Optional[str]
    param: Optional[str]


class ErrorEnvelope(StrictModel):
    """The body of every non-2xx answer (reference §1.3)."""

    error: ErrorDetail


# ---------------------------------------------------------------------------------------------
# Known divergences between what DashScope sends and what OpenAI's SDK types say
# ---------------------------------------------------------------------------------------------


@dataclass
class Divergence:
    """A value DashScope legitimately sends for one field of one SDK type, which that type may
    not accept. When (and only when) the SDK's annotation refuses the value and `applies(value)`
    holds, the value is replaced by `stand_in` for validation; everything else stays strict."""

    name: str
    model: type
    field: str
    applies: Callable[[Any], bool]
    reference: str
    stand_in: Any  # a value, or a function of the refused value
    used: int = 0


def _window_is_dashscope(value: Any) -> bool:
    """`completion_window`: an integer and `h` or `d`, 24h to 336h (reference §3.1, §9 #2)."""
    match = re.fullmatch(r"([0-9]+)([hd])", value) if isinstance(value, str) else None
    if not match:
        return False
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
    return 24 <= hours <= 336


DASHSCOPE_ENDPOINTS = {"/v1/chat/completions", "/v1/embeddings", "/v1/chat/ds-test"}

DIVERGENCES = {
    "dashscope": [
        Divergence(
            "completion_window beyond 24h", Batch, "completion_window", _window_is_dashscope,
            "§3.1, §9 #2 (DashScope accepts 24h..336h, h/d units; OpenAI only 24h)", "24h",
        ),
        Divergence(
            "endpoint /v1/chat/ds-test", Batch, "endpoint",
            lambda value: value == "/v1/chat/ds-test",
            "§3.1, §9 #3 (batch-test-model's endpoint, unknown to OpenAI)",
            "/v1/chat/completions",
        ),
        Divergence(
            "purpose batch_output on result files", FileObject, "purpose",
            lambda value: value == "batch_output",
            "§2.3, §2.6 (result files are listed with purpose batch_output)", "batch",
        ),
        Divergence(
            "purpose file-extract", FileObject, "purpose",
            lambda value: value == "file-extract",
            "§2.1, §2.6, §9 #15 (Qwen-Long documents; not an OpenAI purpose)", "user_data",
        ),
        Divergence(
            "line error spelled error_code/error_message", BatchRequestOutput, "error",
            lambda value: isinstance(value, dict)
            and set(value) == {"error_code", "error_message"},
            "§5.2, §10 #16 (DashScope's own CSV helper reads this spelling)",
            lambda value: {"code": value["error_code"], "message": value["error_message"]},
        ),
        Divergence(
            "data: null on an empty list", SyncCursorPage, "data",
            lambda value: value is None,
            "§3.3, §10 #4 (DashScope sends \"data\": null, not [])", [],
        ),
    ],
    "openai": [],
}

# What else DashScope sends differently from OpenAI. OpenAI's types accept all of it (optional
# fields), so these need no stand-in; the script checks each one explicitly per flavour instead.
DASHSCOPE_SHAPE_NOTES = [
    "file objects omit status_details and expires_at (§2.1, §2.6; SDK: optional)",
    "file lists carry no first_id/last_id (§2.3, §9 #14; SDK page: not declared)",
    "batches have expires_at null and no model/usage (§3.5, §9 #8, #9; SDK: optional)",
    "in_progress_at == created_at, finalizing_at == completed_at (§3.5)",
    "a batch that failed validation has failed_at == created_at (§3.5, the live capture)",
    "cancelling_at stays null until the batch is cancelled (§3.4)",
    "error files use the file-batch_output- prefix (§2.7, §10 #3)",
    "line ids are UUIDs equal to response.request_id (§2.7, §5.1)",
]


def _field_accepts(model: type, field: str, value: Any) -> bool:
    info = model.model_fields.get(field)
    if info is None:
        return True
    try:
        TypeAdapter(info.annotation).validate_python(value, strict=True)
        return True
    except pydantic.ValidationError:
        return False


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


class SectionFailed(Exception):
    """Raised to abandon the rest of a section after a failure it cannot go on from."""


class Conformance:
    def __init__(self, base_url: str, flavour: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.flavour = flavour
        self.dashscope = flavour == "dashscope"
        self.root_url = re.sub(r"(/compatible-mode)?/v1$", "", self.base_url)
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key="sim", max_retries=0, timeout=30.0
        )
        self.model = "qwen-flash" if self.dashscope else "gpt-4o-mini"
        self.other_model = "qwen-plus" if self.dashscope else "gpt-4o"
        self.passed = 0
        self.failures: List[str] = []
        self.section = ""
        self.divergences = DIVERGENCES[flavour]
        self.files_to_delete: List[str] = []
        self.run_tag = f"{int(time.time() * 1000) % 10**9}"
        self.upload_answers: Dict[str, dict] = {}

    # -- bookkeeping ------------------------------------------------------------------------

    def check(self, name: str, condition: bool, detail: Any = "") -> bool:
        if condition:
            self.passed += 1
        else:
            message = f"FAIL [{self.flavour}] {self.section}: {name}"
            if detail != "":
                message += f" -- {detail}"
            self.failures.append(message)
            print(message, flush=True)
        return condition

    def require(self, name: str, condition: bool, detail: Any = "") -> None:
        if not self.check(name, condition, detail):
            raise SectionFailed(name)

    def check_equal(self, name: str, actual: Any, expected: Any) -> bool:
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    @contextmanager
    def in_section(self, name: str):
        self.section = name
        try:
            yield
        except SectionFailed:
            pass
        except Exception as error:  # noqa: BLE001 - every surprise is a failed check
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            frames = traceback.extract_tb(error.__traceback__)
            where = [frame for frame in frames if frame.filename == __file__][-1]
            self.check(
                "section ran to its end",
                False,
                f"{detail} (at line {where.lineno}: {where.line})",
            )

    # -- admin routes (not part of the API; plain urllib) -----------------------------------

    def admin(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.root_url}/_sim{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def set_time_scale(self, scale: float) -> None:
        self.admin("PUT", "/clock", {"time_scale": scale})

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/clock/advance", {"seconds": seconds})

    def set_fault_plan(self, batches: list) -> None:
        self.admin("PUT", "/faults", {"routes": {}, "batches": batches})

    # -- strict validation ------------------------------------------------------------------

    def _with_divergences(self, model: type, raw: dict, what: str) -> dict:
        payload = dict(raw)
        for divergence in self.divergences:
            if not issubclass(model, divergence.model) or divergence.field not in payload:
                continue
            value = payload[divergence.field]
            if _field_accepts(model, divergence.field, value):
                continue
            if divergence.applies(value):
                stand_in = divergence.stand_in
                payload[divergence.field] = stand_in(value) if callable(stand_in) else stand_in
                divergence.used += 1
        return payload

    def strict(self, model: type, raw: Any, what: str) -> Any:
        """Validates raw JSON (already decoded) with an SDK type in strict mode."""
        if not self.check(f"{what} is a JSON object", isinstance(raw, dict), raw):
            raise SectionFailed(what)
        payload = self._with_divergences(model, raw, what)
        try:
            parsed = model.model_validate(payload, strict=True)
        except pydantic.ValidationError as error:
            self.check(f"{what} validates as {model.__name__} (strict)", False, error)
            raise SectionFailed(what) from None
        self.passed += 1
        return parsed

    def raw_json(self, raw_response: Any, what: str, status: int = 200) -> Any:
        self.check_equal(f"{what}: HTTP status", raw_response.status_code, status)
        content_type = raw_response.headers.get("content-type", "")
        self.check(f"{what}: JSON content type", content_type.startswith("application/json"),
                   content_type)
        if not self.dashscope:
            # OpenAI answers carry x-request-id (the SDK's `_request_id`).
            request_id = raw_response.headers.get("x-request-id", "")
            self.check(f"{what}: x-request-id header", re.fullmatch(r"req_[0-9a-f]{32}",
                                                                    request_id) is not None,
                       request_id)
        return json.loads(raw_response.text)

    def batch_object(self, raw: dict, what: str) -> Batch:
        batch = self.strict(Batch, raw, what)
        expected = DASHSCOPE_BATCH_KEYS if self.dashscope else OPENAI_BATCH_KEYS
        self.check_equal(f"{what}: keys of a {self.flavour} batch", set(raw), expected)
        self.check_equal(f"{what}: object", raw["object"], "batch")
        counts = raw["request_counts"]
        self.check(
            f"{what}: completed + failed <= total",
            counts["completed"] + counts["failed"] <= counts["total"],
            counts,
        )
        if self.dashscope:
            # §3.5, §10 #1: always null in live responses.
            self.check_equal(f"{what}: expires_at is null on DashScope", raw["expires_at"], None)
            self.check(f"{what}: endpoint is a DashScope endpoint",
                       raw["endpoint"] in DASHSCOPE_ENDPOINTS, raw["endpoint"])
            self.check(f"{what}: completion_window is a DashScope window",
                       _window_is_dashscope(raw["completion_window"]), raw["completion_window"])
            if raw["in_progress_at"] is not None:
                # §3.5, §10 #5: in_progress_at equals created_at.
                self.check_equal(f"{what}: in_progress_at == created_at",
                                 raw["in_progress_at"], raw["created_at"])
            if raw["status"] == "failed":
                # The live failed-validation capture (§3.5).
                self.check_equal(f"{what}: failed_at == created_at", raw["failed_at"],
                                 raw["created_at"])
        else:
            self.check_equal(f"{what}: expires_at = created_at + 24h", raw["expires_at"],
                             raw["created_at"] + 86_400)
            self.check_equal(f"{what}: completion_window", raw["completion_window"], "24h")
            usage = raw["usage"]
            self.check(f"{what}: usage adds up", usage is not None and usage["total_tokens"]
                       == usage["input_tokens"] + usage["output_tokens"], usage)
        return batch

    def file_object(self, raw: dict, what: str) -> FileObject:
        file = self.strict(FileObject, raw, what)
        expected = DASHSCOPE_FILE_KEYS if self.dashscope else OPENAI_FILE_KEYS
        self.check_equal(f"{what}: keys of a {self.flavour} file", set(raw), expected)
        self.check_equal(f"{what}: status", raw["status"], "processed")
        if not self.dashscope:
            self.check_equal(f"{what}: status_details", raw.get("status_details", "absent"), None)
            self.check(f"{what}: expires_at after created_at",
                       isinstance(raw["expires_at"], int) and raw["expires_at"] > raw["created_at"],
                       raw)
        return file

    def list_page(self, model: type, raw: dict, what: str, files: bool) -> List[dict]:
        """Validates a list envelope and its items; returns the raw items."""
        self.check_equal(f"{what}: object", raw.get("object"), "list")
        self.check(f"{what}: has_more is a bool", isinstance(raw.get("has_more"), bool), raw)
        items = raw.get("data")
        if self.dashscope and files:
            # §2.3, §9 #14: DashScope file lists carry no first_id/last_id.
            self.check(f"{what}: no first_id/last_id on DashScope file lists",
                       "first_id" not in raw and "last_id" not in raw, sorted(raw))
        else:
            ids = [item["id"] for item in items or []]
            self.check_equal(f"{what}: first_id", raw.get("first_id", "absent"),
                             ids[0] if ids else None)
            self.check_equal(f"{what}: last_id", raw.get("last_id", "absent"),
                             ids[-1] if ids else None)
        if items == [] or items is None:
            if self.dashscope:
                self.check_equal(f"{what}: an empty DashScope list has data null", items, None)
            else:
                self.check_equal(f"{what}: an empty OpenAI list has data []", items, [])
        for index, item in enumerate(items or []):
            if model is Batch:
                self.batch_object(item, f"{what} item {index}")
            else:
                self.file_object(item, f"{what} item {index}")
        envelope = self._with_divergences(SyncCursorPage, raw, what)
        if isinstance(envelope.get("data"), list):
            envelope["data"] = [self._with_divergences(model, item, what) if isinstance(item, dict)
                                else item for item in envelope["data"]]
        self.strict(SyncCursorPage[model], envelope, f"{what} envelope")
        return items or []

    def result_lines(self, file_id: str, what: str) -> List[BatchRequestOutput]:
        content = self.client.files.with_raw_response.content(file_id)
        self.check_equal(f"{what}: HTTP status", content.status_code, 200)
        text = content.text
        listed_bytes = self.client.files.retrieve(file_id).bytes
        self.check_equal(f"{what}: the file object's bytes", listed_bytes, len(content.content))
        self.check(f"{what}: ends with a newline", text.endswith("\n"), repr(text[-40:]))
        return self.parse_lines(text, what)

    def parse_lines(self, text: str, what: str) -> List[BatchRequestOutput]:
        """Validates every line of an output or error file as a strict BatchRequestOutput."""
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                raw = json.loads(line)
            except ValueError as error:
                self.check(f"{what} line {number} is JSON", False, error)
                continue
            if not self.check(f"{what} line {number} is an object", isinstance(raw, dict), raw):
                continue
            payload = self._with_divergences(BatchRequestOutput, raw, what)
            try:
                lines.append(BatchRequestOutput.model_validate(payload, strict=True))
                self.passed += 1
            except pydantic.ValidationError as error:
                self.check(f"{what} line {number} is a BatchRequestOutput", False, error)
                continue
            self.check_equal(f"{what} line {number}: keys in the documented order", list(raw),
                             ["id", "custom_id", "response", "error"])
        return lines

    def answer_body(self, line: BatchRequestOutput, endpoint: str, what: str) -> None:
        """A 200 answer's body is the realtime endpoint's response (§5.1)."""
        response = line.response
        assert response is not None
        if endpoint == "/v1/embeddings":
            body = self.strict(CreateEmbeddingResponse, response.body, f"{what} body")
        else:
            body = self.strict(ChatCompletion, response.body, f"{what} body")
            self.check_equal(f"{what}: body.object", body.object, "chat.completion")
            # The providers' own layouts: live DashScope (§5.1) and OpenAI's example (§8.4).
            layout = (["created", "usage", "model", "id", "choices", "object"] if self.dashscope
                      else ["id", "object", "created", "model", "choices", "usage",
                            "system_fingerprint"])
            self.check_equal(f"{what}: body keys in the provider's order", list(response.body),
                             layout)
        if self.dashscope:
            # §5.1: line id == request_id; completion id is chatcmpl-<same uuid>.
            self.check_equal(f"{what}: id == response.request_id", line.id, response.request_id)
            if endpoint != "/v1/embeddings":
                self.check_equal(f"{what}: body.id", response.body.get("id"), f"chatcmpl-{line.id}")
        else:
            self.check(f"{what}: id is batch_req_...", line.id.startswith("batch_req_"), line.id)

    def api_error(self, error: openai.APIStatusError, status: int, what: str) -> None:
        self.check_equal(f"{what}: HTTP status", error.status_code, status)
        try:
            ErrorEnvelope.model_validate(error.response.json(), strict=True)
            self.passed += 1
        except (ValueError, pydantic.ValidationError) as problem:
            self.check(f"{what}: error body is {{error: {{message, type, code, param}}}}", False,
                       problem)

    def expect_error(self, exception: type, status: int, what: str,
                     call: Callable[[], Any]) -> None:
        try:
            result = call()
        except exception as error:
            self.passed += 1
            self.api_error(error, status, what)
            return
        except openai.APIStatusError as error:
            self.check(f"{what} raises {exception.__name__}", False,
                       f"got {type(error).__name__} {error.status_code}: {error.message}")
            return
        self.check(f"{what} raises {exception.__name__}", False, f"it returned {result!r}")

    # -- building blocks --------------------------------------------------------------------

    def chat_line(self, custom_id: str, model: Optional[str] = None, content: str = "",
                  url: str = "/v1/chat/completions", messages: Optional[list] = None) -> dict:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": url,
            "body": {
                "model": model or self.model,
                "messages": messages
                if messages is not None
                else [{"role": "user", "content": content or f"What is {custom_id}?"}],
            },
        }

    def upload(self, lines: List[dict], filename: str) -> FileObject:
        payload = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        raw_response = self.client.files.with_raw_response.create(
            file=(filename, payload, "application/jsonl"), purpose="batch"
        )
        raw = self.raw_json(raw_response, f"upload {filename}")
        file = self.file_object(raw, f"upload {filename}")
        self.check_equal(f"upload {filename}: bytes", file.bytes, len(payload))
        self.check_equal(f"upload {filename}: filename", file.filename, filename)
        self.check_equal(f"upload {filename}: purpose", file.purpose, "batch")
        self.files_to_delete.append(file.id)
        self.upload_answers[file.id] = raw
        return file

    def create(self, file_id: str, what: str, endpoint: str = "/v1/chat/completions",
               window: str = "24h", metadata: Optional[dict] = None) -> Batch:
        extra = {} if metadata is None else {"metadata": metadata}
        raw_response = self.client.batches.with_raw_response.create(
            input_file_id=file_id,
            endpoint=typing.cast(Any, endpoint),
            completion_window=typing.cast(Any, window),
            **extra,
        )
        raw = self.raw_json(raw_response, f"create {what}")
        batch = self.batch_object(raw, f"create {what}")
        self.check_equal(f"create {what}: status", batch.status, "validating")
        self.check_equal(f"create {what}: input_file_id", batch.input_file_id, file_id)
        self.check_equal(f"create {what}: endpoint", batch.endpoint, endpoint)
        self.check_equal(f"create {what}: completion_window", batch.completion_window, window)
        self.check_equal(f"create {what}: metadata echoed", raw["metadata"], metadata)
        self.check_equal(f"create {what}: request_counts while validating",
                         raw["request_counts"], {"total": 0, "completed": 0, "failed": 0})
        for stamp in ("in_progress_at", "finalizing_at", "completed_at", "failed_at",
                      "expired_at", "cancelling_at", "cancelled_at"):
            self.check_equal(f"create {what}: {stamp}", raw[stamp], None)
        self.check_equal(f"create {what}: no files yet",
                         (raw["output_file_id"], raw["error_file_id"]), (None, None))
        return batch

    def retrieve(self, batch_id: str, what: str) -> Batch:
        raw_response = self.client.batches.with_raw_response.retrieve(batch_id)
        return self.batch_object(self.raw_json(raw_response, what), what)

    def poll(self, batch_id: str, what: str) -> Batch:
        order = ["validating", "in_progress", "finalizing", "completed"]
        seen: List[str] = []
        deadline = time.monotonic() + POLL_TIMEOUT_SECONDS
        while True:
            raw_response = self.client.batches.with_raw_response.retrieve(batch_id)
            raw = json.loads(raw_response.text)
            if raw_response.status_code != 200:
                self.require(f"poll {what}: HTTP 200", False, raw_response.status_code)
            if not seen or seen[-1] != raw.get("status"):
                seen.append(raw.get("status"))
                self.batch_object(raw, f"poll {what} ({raw.get('status')})")
            if raw.get("status") in TERMINAL:
                break
            if time.monotonic() > deadline:
                self.require(f"poll {what}: settles within {POLL_TIMEOUT_SECONDS}s", False, seen)
            time.sleep(0.05)
        happy = [status for status in seen if status in order]
        self.check(f"poll {what}: statuses move forward", happy == sorted(happy, key=order.index),
                   seen)
        return Batch.model_validate(raw, strict=False)

    def lines_of(self, batch: Batch, what: str) -> tuple:
        output, errors = [], []
        if batch.output_file_id:
            output = self.result_lines(batch.output_file_id, f"{what} output")
        if batch.error_file_id:
            errors = self.result_lines(batch.error_file_id, f"{what} errors")
        return output, errors

    def delete_quietly(self, file_id: str) -> None:
        try:
            self.client.files.delete(file_id)
        except openai.NotFoundError:
            pass

    # -- sections ---------------------------------------------------------------------------

    def run(self) -> int:
        print(f"sdk conformance: openai {openai.__version__}, pydantic {pydantic.VERSION}, "
              f"{self.flavour} simulator at {self.base_url}", flush=True)
        with self.in_section("SDK"):
            self.check("pydantic 2 (strict model_validate)", pydantic.VERSION.startswith("2."),
                       pydantic.VERSION)
            for method, parameter in [(self.client.files.create, "expires_after"),
                                      (self.client.batches.create, "output_expires_after")]:
                self.check(f"the SDK knows {parameter} (scripts/python-env.sh: openai>=1.100)",
                           parameter in inspect.signature(method).parameters, openai.__version__)
        with self.in_section("recorded provider answers (fixtures/api)"):
            self.recorded_answers()
        with self.in_section("setup"):
            self.set_time_scale(FAST_TIME_SCALE)
            self.set_fault_plan([])
        with self.in_section("lifecycle"):
            self.lifecycle()
        with self.in_section("not found"):
            self.not_found()
        with self.in_section("cancel with partial results"):
            self.cancel_in_progress()
        with self.in_section("cancel while validating"):
            self.cancel_while_validating()
        with self.in_section("failed validation"):
            self.failed_validation()
        with self.in_section("completion windows and endpoints"):
            self.windows_and_endpoints()
        with self.in_section("expiry with partial results"):
            self.expiry()
        if not self.dashscope:
            with self.in_section("expiration policies"):
                self.expiration_policies()
        with self.in_section("cleanup"):
            self.set_time_scale(FAST_TIME_SCALE)
            self.set_fault_plan([])
            for file_id in self.files_to_delete:
                self.delete_quietly(file_id)
        used = [f"{d.name} [{d.reference}] x{d.used}" for d in self.divergences if d.used]
        unused = [d.name for d in self.divergences if not d.used]
        if used:
            print("accepted divergences (SDK type refused, DashScope rule held): "
                  + "; ".join(used))
        if unused:
            print("divergences this SDK's types accept as they are: " + "; ".join(unused))
        if self.dashscope:
            print("DashScope shape checked explicitly: " + "; ".join(DASHSCOPE_SHAPE_NOTES))
        print(f"sdk conformance ({self.flavour}): {self.passed} checks passed, "
              f"{len(self.failures)} failed", flush=True)
        return 1 if self.failures else 0

    def recorded_answers(self) -> None:
        """The same strict checks, on the providers' own recorded answers (fixtures/api, copied
        from the reference): they must pass there too, or the checks are tailored to the
        simulator rather than to the API."""
        directory = FIXTURES
        self.require("fixtures/api is there", directory.is_dir(), str(directory))

        def load(name: str) -> Any:
            return json.loads((directory / name).read_text(encoding="utf-8"))

        if self.dashscope:
            for name in ("batch_created", "batch_completed", "batch_cancelling", "batch_cancelled",
                         "batch_failed_validation"):
                self.batch_object(load(f"{name}.json"), f"recorded {name}")
            self.list_page(Batch, load("batch_list.json"), "recorded batch_list", False)
            self.list_page(Batch, load("batch_list_empty.json"), "recorded batch_list_empty",
                           False)
            self.file_object(load("file_object.json"), "recorded file_object")
            self.list_page(FileObject, load("file_list.json"), "recorded file_list", True)
            self.strict(FileDeleted, load("file_deleted.json"), "recorded file_deleted")
            lines_file = "output_lines.jsonl"
        else:
            self.batch_object(load("openai_batch_completed.json"), "recorded openai batch")
            lines_file = "openai_output_lines.jsonl"
        lines = self.parse_lines((directory / lines_file).read_text(encoding="utf-8"),
                                 f"recorded {lines_file}")
        self.check(f"recorded {lines_file}: every line read", len(lines) >= 2, len(lines))
        for line in lines:
            if line.response is not None and line.response.status_code == 200:
                self.answer_body(line, "/v1/chat/completions", f"recorded {line.custom_id}")

    def lifecycle(self) -> None:
        good_ids = [f"sdk-{index}-{self.run_tag}" for index in range(4)]
        lines = [self.chat_line(custom_id, content=f"问题 {index}: what is {index}+{index}? ✓")
                 for index, custom_id in enumerate(good_ids)]
        # A body the realtime endpoint refuses: the line fails alone (error file), the batch runs.
        refused_id = f"sdk-refused-{self.run_tag}"
        lines.append(self.chat_line(refused_id, messages=[]))
        file = self.upload(lines, "conformance.jsonl")

        retrieved = self.client.files.with_raw_response.retrieve(file.id)
        raw = self.raw_json(retrieved, "files.retrieve")
        self.file_object(raw, "files.retrieve")
        self.check_equal("files.retrieve: same object as the upload", raw,
                         self.upload_answers[file.id])

        listed = self.client.files.with_raw_response.list()
        items = self.list_page(FileObject, self.raw_json(listed, "files.list"), "files.list", True)
        self.check("files.list: holds the upload", file.id in [item["id"] for item in items])
        by_purpose = [item.id for item in self.client.files.list(purpose="batch")]
        self.check("files.list(purpose=batch): holds the upload", file.id in by_purpose)
        paged = [item.id for item in self.client.files.list(limit=1)]
        self.check_equal("files.list(limit=1) auto-pagination sees every file once",
                         paged, [item["id"] for item in items])

        if self.dashscope:
            # §2.4: only file-batch_output... ids can be downloaded.
            self.expect_error(openai.PermissionDeniedError, 403, "files.content(input)",
                              lambda: self.client.files.content(file.id))
        else:
            content = self.client.files.content(file.id)
            self.check_equal("files.content(input) gives the upload back",
                             content.text.splitlines()[0], json.dumps(lines[0], ensure_ascii=False))

        name = f"SDK Conformance {self.run_tag}"
        metadata = {"ds_name": name, "ds_description": "official OpenAI SDK against the simulator"}
        created = self.create(file.id, "lifecycle", metadata=metadata)
        if self.dashscope:
            self.check("create: batch id is batch_<uuid>",
                       re.fullmatch(r"batch_[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
                                    created.id) is not None, created.id)
        else:
            self.check_equal("create: model of the lines", created.model, self.model)
            self.check("create: batch id is batch_<hex32>",
                       re.fullmatch(r"batch_[0-9a-f]{32}", created.id) is not None, created.id)

        done = self.poll(created.id, "lifecycle")
        self.require("lifecycle: completed", done.status == "completed", done.status)
        self.check_equal("lifecycle: request_counts", done.request_counts.model_dump(),
                         {"total": 5, "completed": 4, "failed": 1})
        self.check("lifecycle: completed_at set", done.completed_at is not None)
        if self.dashscope:
            self.check_equal("lifecycle: finalizing_at == completed_at", done.finalizing_at,
                             done.completed_at)
            self.check("lifecycle: error file id starts file-batch_output- (§2.7, §10 #3)",
                       (done.error_file_id or "").startswith("file-batch_output-"),
                       done.error_file_id)
            self.check("lifecycle: output file id starts file-batch_output-",
                       (done.output_file_id or "").startswith("file-batch_output-"),
                       done.output_file_id)
        else:
            stamps = [done.created_at, done.in_progress_at, done.finalizing_at, done.completed_at]
            self.check("lifecycle: created <= in_progress <= finalizing <= completed",
                       None not in stamps and stamps == sorted(stamps), stamps)
            self.check("lifecycle: usage counts tokens",
                       done.usage is not None and done.usage.input_tokens > 0
                       and done.usage.output_tokens > 0, done.usage)
        self.require("lifecycle: output and error files",
                     done.output_file_id is not None and done.error_file_id is not None,
                     (done.output_file_id, done.error_file_id))

        for file_id in (done.output_file_id, done.error_file_id):
            self.files_to_delete.append(file_id)
            raw = self.raw_json(self.client.files.with_raw_response.retrieve(file_id),
                                "result file")
            result_file = self.file_object(raw, "result file")
            self.check_equal("result file: purpose", result_file.purpose, "batch_output")
            self.check_equal("result file: created when the batch completed",
                             result_file.created_at, done.completed_at)
        batch_outputs = [item.id for item in self.client.files.list(purpose="batch_output")]
        self.check("files.list(purpose=batch_output) holds both result files",
                   {done.output_file_id, done.error_file_id} <= set(batch_outputs), batch_outputs)

        output, errors = self.lines_of(done, "lifecycle")
        self.check_equal("lifecycle: output custom ids", sorted(line.custom_id for line in output),
                         sorted(good_ids))
        for line in output:
            what = f"output {line.custom_id}"
            self.check(f"{what}: status 200 and no error",
                       line.response is not None and line.response.status_code == 200
                       and line.error is None, line)
            if line.response is not None:
                self.answer_body(line, "/v1/chat/completions", what)
                self.check_equal(f"{what}: body.model", line.response.body.get("model"), self.model)
        self.check_equal("lifecycle: error custom ids", [line.custom_id for line in errors],
                         [refused_id])
        for line in errors:
            if self.dashscope:
                # §5.2: {"response": null, "error": {"code", "message"}}.
                self.check("error line: response null, error set",
                           line.response is None and line.error is not None, line)
            else:
                # §8.4: the refused response itself, in the error file.
                self.check("error line: a 400 response whose body carries error",
                           line.error is None and line.response is not None
                           and line.response.status_code == 400
                           and isinstance(line.response.body.get("error", {}).get("message"), str),
                           line)
        self.check_equal("lifecycle: line ids unique across both files",
                         len({line.id for line in output + errors}), 5)

        self.list_batches(file, done, name)

        deleted = self.client.files.with_raw_response.delete(file.id)
        raw = self.raw_json(deleted, "files.delete")
        self.strict(FileDeleted, raw, "files.delete")
        self.check_equal("files.delete: body", raw,
                         {"id": file.id, "object": "file", "deleted": True})
        self.expect_error(openai.NotFoundError, 404, "files.retrieve(deleted)",
                          lambda: self.client.files.retrieve(file.id))
        self.expect_error(openai.NotFoundError, 404, "files.delete(deleted)",
                          lambda: self.client.files.delete(file.id))
        remaining = [item.id for item in self.client.files.list()]
        self.check("files.list: the deleted file is gone", file.id not in remaining)
        self.check_equal("batches.retrieve: a batch outlives its input file",
                         self.client.batches.retrieve(done.id).status, "completed")

    def list_batches(self, file: FileObject, done: Batch, name: str) -> None:
        listed = self.client.batches.with_raw_response.list()
        items = self.list_page(Batch, self.raw_json(listed, "batches.list"), "batches.list", False)
        self.check("batches.list: holds the batch", done.id in [item["id"] for item in items])
        created = [item["created_at"] for item in items]
        self.check("batches.list: newest first", created == sorted(created, reverse=True), created)
        paged = [batch.id for batch in self.client.batches.list(limit=1)]
        self.check("batches.list(limit=1) auto-pagination sees every batch once",
                   len(paged) == len(set(paged)) and done.id in paged, paged)

        if self.dashscope:
            def filtered(what: str, query: Dict[str, Any]) -> List[dict]:
                raw_response = self.client.batches.with_raw_response.list(extra_query=query)
                return self.list_page(Batch, self.raw_json(raw_response, what), what, False)

            by_file = filtered("batches.list(input_file_ids)",
                               {"input_file_ids": f"{file.id},file-batch-00000000000000000000000"})
            self.check_equal("batches.list(input_file_ids): exactly the batch",
                             [item["id"] for item in by_file], [done.id])
            by_name = filtered("batches.list(ds_name)", {"ds_name": name.lower()[4:]})
            self.check("batches.list(ds_name): fuzzy, case-insensitive match",
                       done.id in [item["id"] for item in by_name]
                       and all(name.lower()[4:] in item["metadata"]["ds_name"].lower()
                               for item in by_name), by_name)
            by_status = filtered("batches.list(status)", {"status": "completed,expired"})
            self.check("batches.list(status=completed,expired): only those statuses",
                       done.id in [item["id"] for item in by_status]
                       and all(item["status"] in ("completed", "expired") for item in by_status))
            combined = [batch.id for batch in self.client.batches.list(
                limit=1, extra_query={"ds_name": name, "status": "completed"})]
            self.check_equal("batches.list(limit=1, filters): pages keep the filters", combined,
                             [done.id])

            # §3.3: create_after / create_before, yyyyMMddHHmmss (and the file formats of §2.3).
            for query, present in [({"create_after": "20000101000000"}, True),
                                   ({"create_before": "2000-01-01 00:00:00"}, False),
                                   ({"create_after": "20990101"}, False),
                                   ({"create_before": "2099-01-01"}, True)]:
                found = done.id in [item["id"] for item in filtered(
                    f"batches.list({query})", query)]
                self.check_equal(f"batches.list({query}): holds the batch", found, present)
            for query, present in [({"create_after": "20000101"}, True),
                                   ({"create_after": "2099-01-01 00:00:00"}, False)]:
                found = file.id in [item.id for item in self.client.files.list(
                    purpose="batch", extra_query=query)]
                self.check_equal(f"files.list({query}): holds the upload", found, present)

            empty = self.client.batches.with_raw_response.list(
                extra_query={"input_file_ids": "file-batch-00000000000000000000000"})
            raw = self.raw_json(empty, "empty batches.list")
            # §3.3: byte for byte what DashScope sends.
            self.check_equal("empty batches.list: DashScope's exact body", raw,
                             {"object": "list", "data": None, "first_id": None, "last_id": None,
                              "has_more": False})
            self.list_page(Batch, raw, "empty batches.list", False)
            page = empty.parse()
            self.check_equal("empty batches.list: the SDK page iterates to nothing", list(page), [])
            self.check_equal("empty batches.list: no next page", page.has_next_page(), False)
            self.check_equal("empty batches.list: auto-pagination yields nothing",
                             list(self.client.batches.list(
                                 extra_query={"ds_name": f"no such name {self.run_tag}"})), [])
        else:
            oldest = [batch.id for batch in self.client.batches.list(limit=100)][-1]
            empty = self.client.batches.with_raw_response.list(after=oldest)
            raw = self.raw_json(empty, "empty batches.list")
            self.check_equal("empty batches.list: OpenAI's body", raw,
                             {"object": "list", "data": [], "first_id": None, "last_id": None,
                              "has_more": False})
            self.list_page(Batch, raw, "empty batches.list", False)
            self.check_equal("empty batches.list: the SDK page iterates to nothing",
                             list(empty.parse()), [])
            newest_first = [item.id for item in self.client.files.list()]
            oldest_first = [item.id for item in self.client.files.list(order="asc")]
            self.check_equal("files.list(order=asc) is the reverse of the default (§8.2)",
                             oldest_first, newest_first[::-1])
            # OpenAI has no DashScope filters: they are ignored, not errors.
            ignored = [batch.id for batch in self.client.batches.list(
                extra_query={"ds_name": f"no such name {self.run_tag}"})]
            self.check("batches.list: DashScope filters are ignored on OpenAI", done.id in ignored)

        last_file = [item.id for item in self.client.files.list()][-1]
        empty_files = self.client.files.with_raw_response.list(after=last_file)
        raw = self.raw_json(empty_files, "empty files.list")
        if self.dashscope:
            self.check_equal("empty files.list: DashScope's body", raw,
                             {"object": "list", "data": None, "has_more": False})
        else:
            self.check_equal("empty files.list: OpenAI's body", raw,
                             {"object": "list", "data": [], "first_id": None, "last_id": None,
                              "has_more": False})
        self.list_page(FileObject, raw, "empty files.list", True)
        self.check_equal("empty files.list: the SDK page iterates to nothing",
                         list(empty_files.parse()), [])

    def not_found(self) -> None:
        missing_batch = ("batch_00000000-0000-4000-8000-000000000000" if self.dashscope
                         else "batch_00000000000000000000000000000000")
        missing_file = ("file-batch-000000000000000000000000" if self.dashscope
                        else "file-0000000000000000000000")
        self.expect_error(openai.NotFoundError, 404, "batches.retrieve(unknown)",
                          lambda: self.client.batches.retrieve(missing_batch))
        self.expect_error(openai.NotFoundError, 404, "batches.cancel(unknown)",
                          lambda: self.client.batches.cancel(missing_batch))
        self.expect_error(openai.NotFoundError, 404, "files.retrieve(unknown)",
                          lambda: self.client.files.retrieve(missing_file))
        self.expect_error(openai.NotFoundError, 404, "files.content(unknown)",
                          lambda: self.client.files.content(missing_file))
        self.expect_error(openai.NotFoundError, 404, "files.delete(unknown)",
                          lambda: self.client.files.delete(missing_file))
        # The status of this refusal is not documented (§1.3, §12 #1): any 4xx will do.
        try:
            self.client.batches.create(input_file_id=missing_file,
                                       endpoint="/v1/chat/completions", completion_window="24h")
            self.check("batches.create(unknown file) is refused", False, "it was accepted")
        except openai.APIStatusError as error:
            self.check("batches.create(unknown file) is refused with a 4xx",
                       400 <= error.status_code < 500, error.status_code)
            self.api_error(error, error.status_code, "batches.create(unknown file)")

    def cancel_in_progress(self) -> None:
        ids = [f"cancel-{index}-{self.run_tag}" for index in range(8)]
        file = self.upload([self.chat_line(custom_id) for custom_id in ids], "cancel.jsonl")
        self.set_time_scale(0)
        try:
            batch = self.create(file.id, "to cancel", metadata={"ds_name": "to cancel"})
            # Move simulated time until some, not all, lines are done.
            running = self.retrieve(batch.id, "frozen")
            self.check_equal("frozen clock: still validating", running.status, "validating")
            for _ in range(600):
                self.advance(1)
                running = self.client.batches.retrieve(batch.id)
                counts = running.request_counts
                started = running.status != "validating" and counts is not None
                if started and 2 <= counts.completed < counts.total:
                    break
            running = self.retrieve(batch.id, "in progress")
            self.require("in progress before the cancel", running.status == "in_progress",
                         running.status)
            done_before = running.request_counts.completed
            self.check("progress is visible while in progress (§3.5)",
                       0 < done_before < len(ids), running.request_counts)

            raw_response = self.client.batches.with_raw_response.cancel(batch.id)
            raw = self.raw_json(raw_response, "batches.cancel")
            cancelling = self.batch_object(raw, "batches.cancel")
            self.check_equal("batches.cancel: status", cancelling.status, "cancelling")
            if self.dashscope:
                # §3.4: the immediate answer still has cancelling_at null.
                self.check_equal("batches.cancel: cancelling_at null at first",
                                 cancelling.cancelling_at, None)
            else:
                self.check("batches.cancel: cancelling_at set",
                           cancelling.cancelling_at is not None)
            self.advance(5)
            self.check_equal("still cancelling a moment later",
                             self.retrieve(batch.id, "cancelling").status, "cancelling")
            self.advance(600)
        finally:
            self.set_time_scale(FAST_TIME_SCALE)
        cancelled = self.poll(batch.id, "cancelled")
        self.require("cancelled", cancelled.status == "cancelled", cancelled.status)
        self.check("cancelled_at set", cancelled.cancelled_at is not None)
        if self.dashscope:
            self.check_equal("cancelling_at is filled late, == cancelled_at (§3.4)",
                             cancelled.cancelling_at, cancelled.cancelled_at)
        else:
            self.check("cancelling_at <= cancelled_at",
                       cancelled.cancelling_at is not None
                       and cancelled.cancelling_at <= cancelled.cancelled_at)
        self.check_equal("cancelled: request_counts keep the lines done before the cancel",
                         cancelled.request_counts.model_dump(),
                         {"total": len(ids), "completed": done_before,
                          "failed": len(ids) - done_before})
        output, errors = self.lines_of(cancelled, "cancelled")
        for file_id in (cancelled.output_file_id, cancelled.error_file_id):
            if file_id:
                self.files_to_delete.append(file_id)
        self.check_equal("cancelled: finished lines are in the output file", len(output),
                         done_before)
        self.check("cancelled: output lines are answers",
                   all(line.response is not None and line.response.status_code == 200
                       for line in output))
        for line in output[:1]:
            self.answer_body(line, "/v1/chat/completions", f"cancelled output {line.custom_id}")
        self.check_equal("cancelled: the rest are in the error file", len(errors),
                         len(ids) - done_before)
        self.check("cancelled: error lines say batch_cancelled, response null",
                   all(line.response is None and line.error is not None
                       and line.error.code == "batch_cancelled" for line in errors),
                   [line.error for line in errors])
        self.check_equal("cancelled: every line in exactly one file",
                         sorted(line.custom_id for line in output + errors), sorted(ids))
        try:
            self.client.batches.cancel(batch.id)
            self.check("cancel of a settled batch is refused (§3.4)", False, "it was accepted")
        except openai.APIStatusError as error:
            self.check("cancel of a settled batch is refused with a 4xx (§3.4)",
                       400 <= error.status_code < 500, error.status_code)
            self.api_error(error, error.status_code, "cancel of a settled batch")

    def cancel_while_validating(self) -> None:
        ids = [f"early-{index}-{self.run_tag}" for index in range(3)]
        file = self.upload([self.chat_line(custom_id) for custom_id in ids], "early.jsonl")
        self.set_time_scale(0)
        try:
            batch = self.create(file.id, "cancelled while validating")
            cancelling = self.client.batches.cancel(batch.id)
            self.check_equal("cancel while validating: cancelling", cancelling.status,
                             "cancelling")
            self.advance(600)
        finally:
            self.set_time_scale(FAST_TIME_SCALE)
        cancelled = self.poll(batch.id, "cancelled while validating")
        self.require("cancelled while validating", cancelled.status == "cancelled",
                     cancelled.status)
        self.check_equal("cancel while validating: never in progress", cancelled.in_progress_at,
                         None)
        self.check_equal("cancel while validating: every line failed",
                         cancelled.request_counts.model_dump(),
                         {"total": 3, "completed": 0, "failed": 3})
        # §3.4 (live): nothing finished, so no output file; the lines are in an error file.
        self.check_equal("cancel while validating: no output file", cancelled.output_file_id, None)
        output, errors = self.lines_of(cancelled, "cancelled while validating")
        if cancelled.error_file_id:
            self.files_to_delete.append(cancelled.error_file_id)
        self.check_equal("cancel while validating: error lines",
                         sorted(line.custom_id for line in errors), sorted(ids))
        self.check("cancel while validating: error lines say batch_cancelled",
                   all(line.error is not None and line.error.code == "batch_cancelled"
                       for line in errors))

    def expiration_policies(self) -> None:
        """OpenAI's `expires_after` (upload) and `output_expires_after` (create), §8.2, §8.3."""
        payload = json.dumps(self.chat_line(f"policy-{self.run_tag}")).encode() + b"\n"
        raw_response = self.client.files.with_raw_response.create(
            file=("policy.jsonl", payload), purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 3600})
        file = self.file_object(self.raw_json(raw_response, "upload with expires_after"),
                                "upload with expires_after")
        self.files_to_delete.append(file.id)
        self.check_equal("expires_after: expires_at = created_at + seconds", file.expires_at,
                         file.created_at + 3600)
        self.check_equal("expires_after: retrieve shows the same expiry",
                         self.client.files.retrieve(file.id).expires_at, file.expires_at)
        self.expect_error(openai.BadRequestError, 400, "expires_after under an hour",
                          lambda: self.client.files.create(
                              file=("short.jsonl", payload), purpose="batch",
                              expires_after={"anchor": "created_at", "seconds": 60}))
        default = self.upload([self.chat_line("d-1")], "default-expiry.jsonl")
        self.check_equal("without expires_after: 30 days", default.expires_at,
                         default.created_at + 30 * 86_400)

        raw_response = self.client.batches.with_raw_response.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 7200})
        batch = self.batch_object(self.raw_json(raw_response, "create with output_expires_after"),
                                  "create with output_expires_after")
        self.check_equal("create: the SDK's _request_id is the x-request-id header",
                         raw_response.parse()._request_id,
                         raw_response.headers.get("x-request-id"))
        self.expect_error(openai.BadRequestError, 400, "output_expires_after over 30 days",
                          lambda: self.client.batches.create(
                              input_file_id=file.id, endpoint="/v1/chat/completions",
                              completion_window="24h",
                              output_expires_after={"anchor": "created_at", "seconds": 2_592_001}))
        done = self.poll(batch.id, "output_expires_after")
        self.require("output_expires_after: completed", done.status == "completed", done.status)
        output = self.client.files.retrieve(done.output_file_id)
        self.files_to_delete.append(output.id)
        # The anchor is the output file's creation, not the batch's (§8.3).
        self.check_equal("output_expires_after: output expires_at = its created_at + seconds",
                         output.expires_at, output.created_at + 7200)

    def failed_validation(self) -> None:
        duplicate = f"dup-{self.run_tag}"
        cases = [
            ("duplicate custom ids", [self.chat_line(duplicate), self.chat_line("other"),
                                      self.chat_line(duplicate)],
             "duplicate_custom_id", 3,
             f"The custom_id '{duplicate}' for this request is a duplicate of another request. "
             "The custom_id parameter must be unique for each request in a batch."),
            ("mixed models", [self.chat_line("m-1"), self.chat_line("m-2", model=self.other_model)],
             "mismatched_model", 2,
             f"The model '{self.other_model}' for this request does not match the rest of the "
             "batch. Each batch must contain requests for a single model."),
        ]
        if self.dashscope:
            cases.append(
                ("test model on the chat url",
                 [self.chat_line("t-1", model="batch-test-model")],
                 "mismatched_test_url", 1,
                 "The provided URL '/v1/chat/completions' does not match the test model "
                 "'batch-test-model'."))
            cases.append(
                ("unsupported model", [self.chat_line("u-1", model="gpt-4o")],
                 "model_not_found", 1,
                 "The provided model 'gpt-4o' is not supported by the Batch API."))
        for what, lines, code, line_number, message in cases:
            file = self.upload(lines, f"{code}.jsonl")
            created = self.create(file.id, what)
            failed = self.poll(created.id, what)
            self.require(f"{what}: failed", failed.status == "failed", failed.status)
            errors = failed.errors.data if failed.errors and failed.errors.data else []
            self.check_equal(f"{what}: errors.object",
                             failed.errors and failed.errors.object, "list")
            self.check(f"{what}: errors.data[] has {code} at line {line_number}",
                       any(error.code == code and error.line == line_number for error in errors),
                       errors)
            self.check(f"{what}: the documented message (§3.5)",
                       any(error.message == message for error in errors), errors)
            self.check_equal(f"{what}: no result files", (failed.output_file_id,
                                                          failed.error_file_id), (None, None))
            self.check(f"{what}: failed_at set", failed.failed_at is not None)
            self.check_equal(f"{what}: never in progress (§3.5)", failed.in_progress_at, None)
            if self.dashscope:
                self.check_equal(f"{what}: request_counts all zero (§3.5)",
                                 failed.request_counts.model_dump(),
                                 {"total": 0, "completed": 0, "failed": 0})
            else:
                self.check_equal(f"{what}: nothing ran", failed.request_counts.completed, 0)

    def windows_and_endpoints(self) -> None:
        if self.dashscope:
            file = self.upload([self.chat_line("w-1")], "windows.jsonl")
            windows = []
            for window in ("48h", "7d", "336h"):
                batch = self.create(file.id, f"window {window}", window=window)
                self.check_equal(f"window {window}: echoed", batch.completion_window, window)
                windows.append(batch.id)
            # Three batches share this input: a filtered listing one per page keeps its filter.
            paged = [batch.id for batch in self.client.batches.list(
                limit=1, extra_query={"input_file_ids": file.id})]
            self.check_equal("batches.list(limit=1, input_file_ids): pages keep the filter",
                             paged, windows[::-1])
            for batch_id in windows:
                done = self.poll(batch_id, "window batch")
                self.check_equal("window batch: completed", done.status, "completed")
                self.files_to_delete.append(done.output_file_id)
            for window in ("23h", "15d", "1.5d"):
                self.expect_error(openai.BadRequestError, 400, f"window {window}",
                                  lambda window=window: self.client.batches.create(
                                      input_file_id=file.id, endpoint="/v1/chat/completions",
                                      completion_window=typing.cast(Any, window)))
            test_lines = [self.chat_line(f"t-{index}", model="batch-test-model",
                                         url="/v1/chat/ds-test") for index in range(2)]
            test_file = self.upload(test_lines, "ds-test.jsonl")
            batch = self.create(test_file.id, "test model", endpoint="/v1/chat/ds-test")
            done = self.poll(batch.id, "test model")
            self.require("test model: completed", done.status == "completed", done.status)
            output, errors = self.lines_of(done, "test model")
            self.files_to_delete.append(done.output_file_id)
            self.check_equal("test model: two answers, no errors",
                             (len(output), len(errors)), (2, 0))
            for line in output:
                self.answer_body(line, "/v1/chat/ds-test", f"test model {line.custom_id}")
                self.check_equal("test model: the fixed sentence (§4.2)",
                                 line.response.body["choices"][0]["message"]["content"],
                                 "This is a test result.")
        else:
            file = self.upload([self.chat_line("w-1")], "windows.jsonl")
            self.expect_error(openai.BadRequestError, 400, "window 48h on OpenAI (§8.3)",
                              lambda: self.client.batches.create(
                                  input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window=typing.cast(Any, "48h")))
            self.expect_error(openai.BadRequestError, 400, "endpoint /v1/chat/ds-test on OpenAI",
                              lambda: self.client.batches.create(
                                  input_file_id=file.id,
                                  endpoint=typing.cast(Any, "/v1/chat/ds-test"),
                                  completion_window="24h"))
            too_many = {f"key{index}": "value" for index in range(17)}
            self.expect_error(openai.BadRequestError, 400, "17 metadata pairs on OpenAI (§8.3)",
                              lambda: self.client.batches.create(
                                  input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata=too_many))
        embedding_model = "text-embedding-v4" if self.dashscope else "text-embedding-3-small"
        lines = [{"custom_id": f"e-{index}", "method": "POST", "url": "/v1/embeddings",
                  "body": {"model": embedding_model, "input": text, "encoding_format": "float"}}
                 for index, text in enumerate(["风急天高猿啸哀", "The quick brown fox"])]
        file = self.upload(lines, "embeddings.jsonl")
        batch = self.create(file.id, "embeddings", endpoint="/v1/embeddings")
        done = self.poll(batch.id, "embeddings")
        self.require("embeddings: completed", done.status == "completed", done.status)
        self.files_to_delete.append(done.output_file_id)
        output, _ = self.lines_of(done, "embeddings")
        self.check_equal("embeddings: two answers", len(output), 2)
        for line in output:
            self.answer_body(line, "/v1/embeddings", f"embeddings {line.custom_id}")

    def expiry(self) -> None:
        ids = [f"expire-{index}-{self.run_tag}" for index in range(6)]
        file = self.upload([self.chat_line(custom_id) for custom_id in ids], "expire.jsonl")
        self.set_fault_plan([{"batches": "all",
                              "behaviour": {"expire_with_partial": {"done_fraction": 0.5}}}])
        try:
            batch = self.create(file.id, "to expire")
        finally:
            self.set_fault_plan([])
        expired = self.poll(batch.id, "expired")
        self.require("expired", expired.status == "expired", expired.status)
        self.check("expired_at set, completed_at null",
                   expired.expired_at is not None and expired.completed_at is None)
        self.check_equal("expired: request_counts", expired.request_counts.model_dump(),
                         {"total": 6, "completed": 3, "failed": 3})
        output, errors = self.lines_of(expired, "expired")
        for file_id in (expired.output_file_id, expired.error_file_id):
            if file_id:
                self.files_to_delete.append(file_id)
        self.check_equal("expired: finished lines in the output file", len(output), 3)
        # §8.4: {"response": null, "error": {"code": "batch_expired", "message": ...}}.
        self.check_equal("expired: unprocessed lines in the error file", len(errors), 3)
        self.check("expired: error lines say batch_expired, response null",
                   all(line.response is None and line.error is not None
                       and line.error.code == "batch_expired"
                       and line.error.message == "This request could not be executed before "
                       "the completion window expired." for line in errors),
                   [line.error for line in errors])
        self.check_equal("expired: every line in exactly one file",
                         sorted(line.custom_id for line in output + errors), sorted(ids))


def main(arguments: List[str]) -> int:
    if len(arguments) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    base_url = arguments[1]
    flavour = arguments[2] if len(arguments) == 3 else (
        "dashscope" if "/compatible-mode/" in base_url else "openai")
    if flavour not in DIVERGENCES:
        print(f"unknown flavour {flavour!r}: use dashscope or openai", file=sys.stderr)
        return 2
    return Conformance(base_url, flavour).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

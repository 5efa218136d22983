"""GET /openapi.json: the endpoints this gateway serves, as an OpenAPI 3.1 document.

Built once, from the same schemas that validate requests (the chat and
embeddings requests' pydantic schemas, the admin key body), so the document cannot drift from what
the gateway accepts. Response shapes are written here, loose where OpenAI's
are open (extra fields pass), exact where clients depend on them.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin import EXPIRES_IN, KeyChange
from gateway.apis.chat.schema import ASSISTANT_ONLY, CHAT_REQUEST
from gateway.apis.completions.schema import COMPLETION_REQUEST
from gateway.apis.embeddings.schema import EMBEDDINGS_REQUEST
from gateway.apis.messages.errors import OVERLOADED
from gateway.apis.messages.schema import BLOCK_TYPES, COUNT_TOKENS_REQUEST, MESSAGES_REQUEST
from gateway.apis.responses.schema import ITEM_TYPES, RESPONSES_REQUEST
from gateway.apis.responses.surface import REFUSED

_REF = "#/components/schemas/{model}"


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


_NULLABLE_STRING = {"type": ["string", "null"]}
_DATE = {"type": "string", "format": "date"}
_ERROR = _object({"error": _object({
    "message": {"type": "string"}, "type": _NULLABLE_STRING,
    "param": _NULLABLE_STRING, "code": _NULLABLE_STRING,
}, ("message", "type"))}, ("error",))
_USAGE = _object({"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                  "total_tokens": {"type": "integer"}}, ("prompt_tokens", "completion_tokens"))
_COMPLETION = _object({
    "id": {"type": "string"}, "object": {"const": "chat.completion"},
    "created": {"type": "integer"}, "model": {"type": "string"},
    "choices": {"type": "array", "items": _object({
        "index": {"type": "integer"},
        "message": _object({"role": {"type": "string"}, "content": _NULLABLE_STRING}, ("role",)),
        "finish_reason": _NULLABLE_STRING,
    }, ("index", "message"))},
    "usage": _USAGE,
}, ("id", "object", "model", "choices"))
_EMBEDDINGS = _object({
    "object": {"const": "list"}, "model": {"type": "string"},
    "data": {"type": "array", "items": _object({
        "object": {"const": "embedding"}, "index": {"type": "integer"},
        "embedding": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                {"type": "string", "description": "base64: little-endian float32"}]},
    }, ("index", "embedding"))},
    "usage": _object({"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
                     ("prompt_tokens",)),
}, ("object", "data", "model", "usage"))
_TEXT_CHOICE = _object({"index": {"type": "integer"}, "text": {"type": "string"},
                        "logprobs": {"type": ["object", "null"]}, "finish_reason": _NULLABLE_STRING},
                       ("index", "text"))
_TEXT_COMPLETION = _object({
    "id": {"type": "string"}, "object": {"const": "text_completion"},
    "created": {"type": "integer"}, "model": {"type": "string"},
    "choices": {"type": "array", "items": _TEXT_CHOICE}, "usage": _USAGE,
}, ("object", "model", "choices", "usage"))
_TEXT_CHUNK = _object({
    "id": {"type": "string"}, "object": {"const": "text_completion"},
    "created": {"type": "integer"}, "model": {"type": "string"},
    "choices": {"type": "array", "items": _TEXT_CHOICE},
    "usage": {"anyOf": [_USAGE, {"type": "null"}]},
}, ("object", "model", "choices"))
_RESPONSE = _object({
    "id": {"type": "string"}, "object": {"const": "response"}, "created_at": {"type": "number"},
    "status": {"enum": ["completed", "incomplete", "failed", "in_progress", "queued",
                        "cancelled"]},
    "model": {"type": "string"},
    "output": {"type": "array", "items": _object({"type": {"type": "string"}}, ("type",))},
    "incomplete_details": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
    "usage": {"anyOf": [_object({"input_tokens": {"type": "integer"},
                                 "output_tokens": {"type": "integer"},
                                 "total_tokens": {"type": "integer"}},
                                ("input_tokens", "output_tokens")), {"type": "null"}]},
}, ("id", "object", "created_at", "status", "model", "output"))
_ANTHROPIC_ERROR = _object({"type": {"const": "error"}, "error": _object({
    "type": {"type": "string"}, "message": {"type": "string"}}, ("type", "message"))},
    ("type", "error"))
_MESSAGE = _object({
    "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
    "model": {"type": "string"},
    "content": {"type": "array", "items": _object({"type": {"type": "string"}}, ("type",))},
    "stop_reason": _NULLABLE_STRING, "stop_sequence": _NULLABLE_STRING,
    "usage": _object({name: {"type": "integer"} for name in (
        "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens")}, ("input_tokens", "output_tokens")),
}, ("id", "type", "role", "model", "content", "stop_reason", "usage"))
_TOKEN_COUNT = _object({"input_tokens": {"type": "integer", "minimum": 0}}, ("input_tokens",))
_MODEL = _object({"id": {"type": "string"}, "object": {"const": "model"},
                  "created": {"type": "integer"}, "owned_by": {"type": "string"},
                  "apis": {"type": "array", "items": {"type": "string"},
                           "description": "The client APIs the model serves (in the list)."}},
                 ("id", "object"))
_KEY = _object({
    "id": {"type": "string"}, "name": {"type": "string"}, "prefix": _NULLABLE_STRING,
    "models": {"type": "array", "items": {"type": "string"}}, "limits": {"type": "object"},
    "expires_at": _NULLABLE_STRING, "created_at": _NULLABLE_STRING,
    "revoked_at": _NULLABLE_STRING, "source": {"type": "string"}, "metadata": {"type": "object"},
    "last_used_at": {"type": ["number", "null"],
                     "description": "When its last request was recorded (Unix seconds)."},
    "key": {"type": "string", "description": "The secret: in the answer to POST only."},
}, ("id", "name", "models"))
_RESPONSE_DELETED = _object({"id": {"type": "string"}, "object": {"const": "response.deleted"},
                             "deleted": {"const": True}}, ("id", "object", "deleted"))
_INPUT_ITEMS = _object({
    "object": {"const": "list"},
    "data": {"type": "array", "items": _object({"id": {"type": "string"},
                                                "type": {"type": "string"}}, ("id",))},
    "first_id": _NULLABLE_STRING, "last_id": _NULLABLE_STRING, "has_more": {"type": "boolean"},
}, ("object", "data", "first_id", "last_id", "has_more"))
_TOTALS = _object({name: {"type": "integer"} for name in (
    "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "errors")}
    | {"cost": {"type": "number"}})


_NULLABLE_NUMBER = {"type": ["number", "null"]}
_RELOAD = {"anyOf": [{"type": "null"}, _object({
    "at": {"type": "number"}, "ok": {"type": "boolean"}, "reason": _NULLABLE_STRING,
    "trigger": {"type": "string"}, "file": {"type": "string"}, "path": {"type": "string"},
    "line": {"type": ["integer", "null"]}, "problems": {"type": "array", "items": _object({
        "file": {"type": "string"}, "path": {"type": "string"},
        "line": {"type": ["integer", "null"]}, "reason": {"type": "string"}})},
}, ("at", "ok", "reason"))]}
_OVERVIEW = _object({
    "today": _TOTALS, "month": _TOTALS, "in_flight": {"type": "integer"},
    "config": _object({"path": {"type": "string"}, "hash": {"type": "string"},
                       "loaded_at": {"type": "number"}, "last_reload": _RELOAD},
                      ("path", "hash", "loaded_at", "last_reload")),
}, ("today", "month", "in_flight", "config"))
_TARGET_HEALTH = _object({
    "name": {"type": "string"}, "provider": {"type": "string"}, "model": {"type": "string"},
    "apis": {"type": "array", "items": {"type": "string"}}, "weight": {"type": "number"},
    "breaker": {"enum": ["closed", "open", "half_open"]}, "latency_ms": _NULLABLE_NUMBER,
    "in_flight": {"type": "integer"}, "successes": {"type": "integer"},
    "errors": {"type": "integer"}, "retry_in_s": _NULLABLE_NUMBER,
    "load": {"anyOf": [{"type": "null"}, _object({
        "running": {"type": "number"}, "waiting": {"type": "number"},
        "kv_cache": {"type": "number"}, "age_s": {"type": "number"}},
        ("running", "waiting", "kv_cache"))]},
}, ("name", "provider", "model", "apis", "breaker", "latency_ms", "in_flight", "load"))
_ROUTES = {"type": "array", "items": _object({
    "alias": {"type": "string"}, "description": {"type": "string"},
    "wildcard": {"type": "boolean"},
    "groups": {"type": "array", "items": _object({
        "strategy": {"type": "string"},
        "targets": {"type": "array", "items": _TARGET_HEALTH}}, ("strategy", "targets"))},
}, ("alias", "groups"))}
_CONFIG_FILE = _object({"path": {"type": "string"}, "hash": {"type": "string"},
                        "text": {"type": "string"}}, ("path", "hash", "text"))


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    error = {"$ref": "#/components/responses/Error"}
    return {str(s): error for s in statuses} | {"default": error}


_IN_CONFIG = ("The key is declared in routes.yaml (code `key_in_config`): it is changed or "
              "revoked there")


def _error_doc(description: str) -> dict:
    """An error status with its own description, in the one Error shape."""
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}}


def _op(summary: str, responses: dict, *, secured: bool = True, body: dict | None = None,
        parameters: list | None = None, tag: str = "openai") -> dict:
    op: dict = {"summary": summary, "tags": [tag], "responses": responses}
    if not secured:
        op["security"] = []
    else:  # a key is looked up in the store, which may be unreachable
        responses.setdefault("503", {"$ref": "#/components/responses/Error"})
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    return op


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _chat_request() -> tuple[dict, dict]:
    """The request's JSON schema, made as strict as the validator's discriminators.

    The validator picks a message's schema by its role and a part's or tool's by its
    type; a JSON schema's `oneOf` cannot say "by this field", so the catch-all
    variants get the values they exclude spelled out, and the variant that exists
    only to word the error for a missing or unknown role is left out."""
    chat = CHAT_REQUEST.json_schema(ref_template=_REF)
    schemas = chat.pop("$defs", {})
    unknown = _REF.format(model="UnknownRoleMessage")
    messages = chat["properties"]["messages"]["items"]
    messages["oneOf"] = [v for v in messages["oneOf"] if v.get("$ref") != unknown]
    del schemas["UnknownRoleMessage"]
    # What only an assistant's turn carries is refused on the other roles (null or [] is nothing).
    nothing = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}
    for name in ("ContentMessage", "ToolMessage"):
        schemas[name]["properties"] |= {field: nothing for field in ASSISTANT_ONLY}
    schemas["OtherPart"]["properties"]["type"]["not"] = {"enum": ["text", "image_url"]}
    schemas["OtherTool"]["properties"]["type"]["not"] = {"const": "function"}
    return chat, schemas


def _responses_request() -> tuple[dict, dict]:
    """The Responses request's JSON schema, its own schemas named `Responses...` (chat has a
    `FunctionTool` of another shape), as strict as the validator's discriminators (as for
    chat: the catch-alls exclude what the others take; the variant that only words an
    unknown format's error is left out)."""
    request = RESPONSES_REQUEST.json_schema(ref_template=_REF.format(model="Responses{model}"))
    schemas = {f"Responses{name}": schema for name, schema in request.pop("$defs", {}).items()}
    unknown = _REF.format(model="ResponsesUnknownFormat")
    formats = schemas["ResponsesText"]["properties"]["format"]["anyOf"][0]
    formats["oneOf"] = [v for v in formats["oneOf"] if v.get("$ref") != unknown]
    del schemas["ResponsesUnknownFormat"]
    schemas["ResponsesOtherItem"]["properties"]["type"]["not"] = {"enum": list(ITEM_TYPES)}
    schemas["ResponsesOtherPart"]["properties"]["type"]["not"] = {
        "enum": ["input_text", "output_text", "input_image"]}
    schemas["ResponsesOtherTool"]["properties"]["type"]["not"] = {"const": "function"}
    for name, why in REFUSED.items():  # what the schema takes and the gateway refuses
        unset = [{"type": "null"}, {"const": False}] if name == "background" else [
            {"type": "null"}]
        request["properties"][name] = {"anyOf": unset,
                                       "description": f"Refused when set: the parameter {why}."}
    return request, schemas


def _messages_requests() -> tuple[dict, dict, dict]:
    """Anthropic's Messages and count_tokens requests' JSON schemas, their own schemas named
    `Anthropic...` (chat has a `CustomTool` of another shape), as strict as the validator:
    the catch-alls (another block, image source or server tool) exclude the types the
    others take; a tool_result's parts, which pick text and images only, have their own
    catch-all; and a tool_choice of type `tool` names its tool (surface.parse checks it)."""
    template = _REF.format(model="Anthropic{model}")
    messages = MESSAGES_REQUEST.json_schema(ref_template=template)
    count = COUNT_TOKENS_REQUEST.json_schema(ref_template=template)
    defined = count.pop("$defs") | messages.pop("$defs")
    schemas = {f"Anthropic{name}": schema for name, schema in defined.items()}
    part = copy.deepcopy(schemas["AnthropicOtherBlock"]) | {"title": "OtherPart"}
    schemas["AnthropicOtherPart"] = part
    result = schemas["AnthropicToolResultBlock"]["properties"]["content"]["anyOf"][1]["items"]
    result["oneOf"] = [{"$ref": _REF.format(model="AnthropicOtherPart")}
                       if v["$ref"].endswith("/AnthropicOtherBlock") else v
                       for v in result["oneOf"]]
    for name, taken in (("OtherBlock", BLOCK_TYPES), ("OtherPart", ("text", "image")),
                        ("OtherSource", ("base64", "url")), ("ServerTool", ("custom",))):
        schemas[f"Anthropic{name}"]["properties"]["type"]["not"] = {"enum": list(taken)}
    schemas["AnthropicToolChoice"]["anyOf"] = [
        {"properties": {"type": {"enum": ["auto", "any", "none"]}}},
        {"properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"]}]
    return messages, count, schemas


def _anthropic_errors(*statuses: int) -> dict:
    error = {"$ref": "#/components/responses/AnthropicError"}
    return {str(s): error for s in statuses} | {"default": error}


_ANTHROPIC_HEADERS = [
    {"name": name, "in": "header", "required": False, "description": description,
     "schema": {"type": "string"}}
    for name, description in (("anthropic-version", "Accepted; the gateway speaks 2023-06-01."),
                              ("anthropic-beta", "Accepted; a native target's business."))]


def _events(which: str) -> dict:
    """A text/event-stream answer of named events (Responses', Anthropic's)."""
    return {"text/event-stream": {"schema": {"type": "string", "description": (
        f"Server-sent events, each `event: <type>` and its `data:` {which}.")}}}


def _stream(chunk: str) -> dict:
    """A text/event-stream answer: its events' schema is named, as OpenAPI 3.1 cannot say it."""
    return {"text/event-stream": {"schema": {
        "type": "string", "description": f"Server-sent events: each `data:` one {chunk} "
        f"({_REF.format(model=chunk)}), a usage-only one last when "
        "`stream_options.include_usage` is true, then `data: [DONE]`."}}}


_SESSION = _object({"csrf": {"type": "string", "description": "Send it as X-CSRF-Token with "
                                                     "every change made with the cookie."},
                     "expires_at": {"type": "integer", "description": "Unix seconds."}},
                    ("csrf", "expires_at"))
_SIGN_IN = _object({"key": {"type": "string", "minLength": 1, "maxLength": 4096}}, ("key",))
_SIGN_IN["additionalProperties"] = False
_CONSOLE_SESSION: list[dict[str, list]] = [{"consoleSession": []}]
_STATIC = {"200": {"description": "The file, with a strict Content-Security-Policy.",
                   "content": {"text/html": {"schema": {"type": "string"}},
                               "text/javascript": {"schema": {"type": "string"}},
                               "text/css": {"schema": {"type": "string"}}}},
           "304": {"description": "Not modified (If-None-Match)."}}


def _console_paths() -> dict:
    """The console's page and files, and its session: the master key exchanged for a cookie."""
    session = _op("Sign in with the master key: sets the HttpOnly, SameSite=Strict "
                  "`gateway_console` cookie.", {"200": _json(_SESSION)}
                  | _errors(400, 401, 415, 429, 503), secured=False, body=_SIGN_IN,
                  tag="console")
    show = _op("The session of the cookie, with its CSRF token.", {"200": _json(_SESSION)}
               | _errors(401, 503), secured=False, tag="console")
    show["security"] = _CONSOLE_SESSION
    out = _op("Sign out: the session ends on every replica, the cookie is cleared. Needs "
              "X-CSRF-Token (403 `csrf_failed` without it).",
              {"204": {"description": "Signed out."}} | _errors(401, 403, 503), secured=False,
              parameters=[{"name": "x-csrf-token", "in": "header", "required": True,
                           "schema": {"type": "string"}}], tag="console")
    out["security"] = _CONSOLE_SESSION
    page = _op("The console's page (signed in or not).", dict(_STATIC), secured=False,
               tag="console")
    asset = _op("One of the console's files.", dict(_STATIC) | _errors(404), secured=False,
                parameters=[_path_param("name", "The file's name.")], tag="console")
    return {"/console/session": {"post": session, "get": show, "delete": out},
            "/console": {"get": page}, "/console/assets/{name}": {"get": asset}}


def _admin_takes_the_session(paths: dict) -> None:
    """/admin takes the console's cookie in place of the master key (a change with it needs
    X-CSRF-Token and the gateway's own Origin, else 403 `csrf_failed`)."""
    for path, operations in paths.items():
        if path.startswith("/admin/"):
            for op in operations.values():
                op["security"] = [{"bearer": []}, {"apiKey": []}, *_CONSOLE_SESSION]


def build() -> dict:
    chat, schemas = _chat_request()
    completions = COMPLETION_REQUEST.json_schema(ref_template=_REF)
    schemas |= completions.pop("$defs", {})
    key_change = KeyChange.model_json_schema(ref_template=_REF)
    schemas |= key_change.pop("$defs", {})
    key_change["properties"] |= {
        "expires_at": {"anyOf": [{"type": "string", "format": "date"},
                                 {"type": "number", "minimum": 0, "maximum": 253402300799},
                                 {"type": "null"}],
                       "description": "An ISO date or time, or a Unix timestamp."},
        "expires_in": {"anyOf": [{"type": "string", "pattern": EXPIRES_IN},
                                 {"type": "null"}],
                       "description": "A duration: 90m, 12h, 30d, 2w."}}
    name = key_change["properties"]["name"]["anyOf"][0]  # POST needs a name, and not null
    key_create = key_change | {"required": ["name"], "title": "KeyCreate",
                               "properties": key_change["properties"] | {"name": name}}
    schemas |= {"ChatRequest": chat, "KeyChange": key_change, "KeyCreate": key_create, "Error": _ERROR,
                "ChatCompletion": _COMPLETION, "Model": _MODEL, "Key": _KEY,
                "CompletionRequest": completions, "TextCompletion": _TEXT_COMPLETION,
                "TextCompletionChunk": _TEXT_CHUNK}
    schemas |= {"EmbeddingsRequest": EMBEDDINGS_REQUEST.json_schema(ref_template=_REF),
                "Embeddings": _EMBEDDINGS}
    responses, responses_schemas = _responses_request()
    schemas |= responses_schemas | {"ResponsesRequest": responses, "Response": _RESPONSE,
                                    "ResponseDeleted": _RESPONSE_DELETED,
                                    "ResponseItemList": _INPUT_ITEMS}
    messages, count, messages_schemas = _messages_requests()
    schemas |= messages_schemas | {"MessagesRequest": messages, "CountTokensRequest": count,
                                   "AnthropicErrorBody": _ANTHROPIC_ERROR,
                                   # The answer: "AnthropicMessage" is the request's turn.
                                   "AnthropicMessageObject": _MESSAGE,
                                   "TokenCount": _TOKEN_COUNT}
    ref = {name: {"$ref": _REF.format(model=name)} for name in schemas}
    admin: dict[str, Any] = {"tag": "admin"}  # keyword arguments of _op
    key = [_path_param("key", "The key's id or name.")]
    stored = _path_param("response_id", "The response's id (`resp_...`).")
    paths = {
        "/v1/chat/completions": {"post": _op(
            "Create a chat completion on the model the request names.",
            {"200": {"description": "The completion, or a stream of chunks when `stream` is true.",
                     "content": {"application/json": {"schema": ref["ChatCompletion"]},
                                 "text/event-stream": {"schema": {"type": "string"}}}}}
            | _errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504),
            body=ref["ChatRequest"])},
        "/v1/embeddings": {"post": _op(
            "Create embeddings of the input on the model the request names.",
            {"200": _json(ref["Embeddings"], "One embedding an input, in the input's order.")}
            | _errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504),
            body=ref["EmbeddingsRequest"])},
        "/v1/completions": {"post": _op(
            "Create a text completion (OpenAI's legacy completions) of the prompt; a target "
            "that speaks chat only gets it as one user message.",
            {"200": {"description": "The completion, or a stream of chunks when `stream` is true.",
                     "content": {"application/json": {"schema": ref["TextCompletion"]}}
                     | _stream("TextCompletionChunk")}}
            | _errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504),
            body=ref["CompletionRequest"])},
        "/v1/responses": {"post": _op(
            "Create a response (OpenAI's Responses API) on the model the request names; a "
            "target that speaks chat only gets it converted to chat completions.",
            {"200": {"description": "The response, or its events when `stream` is true.",
                     "content": {"application/json": {"schema": ref["Response"]}} | _events(
                         "(with a `sequence_number`), from response.created to "
                         "response.completed, response.incomplete or response.failed, which "
                         "carries the response")}}
            | _errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504),
            body=ref["ResponsesRequest"])},
        "/v1/messages": {"post": _op(
            "Create a message (Anthropic's Messages API) on the model the request names; a "
            "target that does not speak Messages gets it converted to chat completions. "
            "Errors are Anthropic's, each with a `request-id` header.",
            {"200": {"description": "The message, or its events when `stream` is true.",
                     "content": {"application/json": {"schema": ref["AnthropicMessageObject"]}}
                     | _events("message_start, then each content block's content_block_start, "
                               "content_block_delta events and content_block_stop, "
                               "message_delta (the stop reason and usage), message_stop; or "
                               "an `error` event that ends it")}}
            | _anthropic_errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504, OVERLOADED),
            body=ref["MessagesRequest"], parameters=_ANTHROPIC_HEADERS, tag="anthropic")},
        "/v1/messages/count_tokens": {"post": _op(
            "Count the input tokens of a Messages request: the model's first target counts "
            "them where it can (vllm, anthropic), else the gateway estimates them (header "
            "`x-gateway-estimated: true`). No limit counts this request.",
            {"200": _json(ref["TokenCount"], "The count.")}
            | _anthropic_errors(400, 401, 403, 404, 413, 415, 503),
            body=ref["CountTokensRequest"], parameters=_ANTHROPIC_HEADERS, tag="anthropic")},
        "/v1/models": {"get": _op("The models this key may use.", {"200": _json(_object({
            "object": {"const": "list"}, "data": {"type": "array", "items": ref["Model"]}},
            ("object", "data")))} | _errors(401))},
        "/v1/models/{model}": {"get": _op(
            "One model.", {"200": _json(ref["Model"])} | _errors(401, 404),
            parameters=[_path_param("model", "The model id, as clients send it.")])},
        "/v1/responses/{response_id}": {
            "get": _op("A stored response (made with `store` true, by this key), as it was sent.",
                       {"200": _json(ref["Response"])} | _errors(400, 401, 404),
                       parameters=[stored, _query("stream", "Not supported: a stored response "
                                                  "is not replayed as a stream.")]),
            "delete": _op("Delete a stored response.",
                          {"200": _json(ref["ResponseDeleted"])} | _errors(401, 404),
                          parameters=[stored])},
        "/v1/responses/{response_id}/input_items": {"get": _op(
            "The input items that led to a stored response: the whole conversation, with "
            "earlier turns' outputs; newest first unless `order` is asc.",
            {"200": _json(ref["ResponseItemList"])} | _errors(400, 401, 404),
            parameters=[stored,
                        _query("order", "asc or desc (the default).",
                               {"type": "string", "enum": ["asc", "desc"]}),
                        _query("after", "An item id: the page starts after it."),
                        _query("limit", "Items a page, 1 to 100 (default 20).",
                               {"type": "integer", "minimum": 1, "maximum": 100}),
                        _query("include", "Accepted; every stored field is returned.")])},
        "/healthz": {"get": _op("The process is up.", {"200": _json({"type": "object"})},
                                secured=False, tag="operations")},
        "/readyz": {"get": _op("Ready for traffic: 503 while starting or draining.",
                               {"200": _json({"type": "object"}),
                                "503": _json({"type": "object"}, "Not ready")},
                               secured=False, tag="operations")},
        "/metrics": {"get": _op("Prometheus metrics; with `server.metrics_key` set, that key "
                                "(or the master key) is needed as a bearer token.", {"200": {
            "description": "The Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}
            | {"401": _error_doc("server.metrics_key is set and was not sent.")},
            secured=False, tag="operations")},
        "/openapi.json": {"get": _op("This document.", {"200": _json({"type": "object"})},
                                     secured=False, tag="operations")},
        "/admin/reload": {"post": _op(
            "Read the config again; a bad one is refused (400 `invalid_config`, its message "
            "naming each problem as `file:line: path: reason`; the overview's "
            "`config.last_reload` has them structured).",
            {"200": _json({"type": "object"})} | _errors(400, 401, 403), **admin)},
        "/admin/overview": {"get": _op(
            "Usage today and this month (UTC), requests in flight in this process, the config "
            "in force and the last reload.", {"200": _json(_OVERVIEW)} | _errors(401, 403),
            **admin)},
        "/admin/routes": {"get": _op(
            "Each model alias's groups and targets, with this process's view of their health: "
            "breaker, latency (moving average of time to first byte), attempts in flight, "
            "the APIs each speaks, a vLLM server's load.",
            {"200": _json(_ROUTES)} | _errors(401, 403), **admin)},
        "/admin/config": {"get": _op(
            "The config file in force, literal secrets masked.",
            {"200": _json(_CONFIG_FILE)} | _errors(401, 403), **admin)},
        "/admin/keys": {
            "post": _op("Create a key; its secret is in this answer only.",
                        {"201": _json(ref["Key"], "Created")} | _errors(400, 401, 403, 409, 415),
                        body=ref["KeyCreate"], **admin),
            "get": _op("List the keys, by name, a page at a time.", {"200": _json(_object({
                "object": {"const": "list"}, "data": {"type": "array", "items": ref["Key"]},
                "has_more": {"type": "boolean"}, "next_after": _NULLABLE_STRING},
                ("object", "data", "has_more", "next_after")))} | _errors(400, 401, 403),
                parameters=[_query("revoked", "1 to list revoked keys too."),
                            _query("limit", "Keys a page, 1 to 1000 (default 100).",
                                   {"type": "integer", "minimum": 1, "maximum": 1000}),
                            _query("after", "A key name: the page starts after it "
                                   "(`next_after` of the page before).")], **admin)},
        "/admin/keys/{key}": {
            "get": _op("One key.", {"200": _json(ref["Key"])} | _errors(401, 403, 404),
                       parameters=key, **admin),
            "patch": _op("Change a key's name, models, limits, expiry or metadata.",
                         {"200": _json(ref["Key"])} | _errors(400, 401, 403, 404, 415)
                         | {"409": _error_doc(f"{_IN_CONFIG}, or the new name is taken.")},
                         body=ref["KeyChange"], parameters=key, **admin),
            "delete": _op("Revoke a key; its record and usage stay.",
                          {"200": _json(ref["Key"])} | _errors(401, 403, 404)
                          | {"409": _error_doc(f"{_IN_CONFIG}.")},
                          parameters=key, **admin)},
        "/admin/usage": {"get": _op("Usage, filtered and grouped.", {"200": {
            "description": "The groups and totals; with `format=csv`, the groups as CSV.",
            "content": {"application/json": {"schema": _object({
                "object": {"const": "list"}, "since": {"type": "string"},
                "until": {"type": "string"}, "by": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "object"}}, "totals": _TOTALS,
                "total_groups": {"type": "integer", "description": "Groups before the page."},
                "has_more": {"type": "boolean"}},
                ("object", "data", "totals", "total_groups", "has_more"))},
                "text/csv": {"schema": {"type": "string", "description": (
                    "A header row (the `by` labels, then requests, prompt_tokens, "
                    "completion_tokens, reasoning_tokens, cost, errors), then a row a group.")}}}}}
            | _errors(400, 401, 403),
            parameters=[_query("key", "A key's id or name."), _query("model", "A model alias."),
                        _query("since", "First day, YYYY-MM-DD.", _DATE),
                        _query("until", "Last day, YYYY-MM-DD.", _DATE),
                        _query("by", "Any of day, key, model, comma-separated.",
                               {"type": "string", "pattern": "^(day|key|model)(,(day|key|model))*$"}),
                        _query("sort", "Largest first by this amount (default: by label).",
                               {"type": "string", "enum": ["requests", "tokens", "cost",
                                                           "errors"]}),
                        _query("limit", "At most this many groups (totals stay whole).",
                               {"type": "integer", "minimum": 1, "maximum": 10_000}),
                        _query("offset", "Groups to skip before the page.",
                               {"type": "integer", "minimum": 0, "maximum": 10**9}),
                        _query("format", "json (the default) or csv.",
                               {"type": "string", "enum": ["json", "csv"]})],
            **admin)},
    }
    paths |= _console_paths()
    _admin_takes_the_session(paths)
    error = {"description": "An OpenAI-shaped error.",
             "content": {"application/json": {"schema": ref["Error"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM gateway", "version": "1",
                 "description": "One OpenAI-compatible endpoint in front of many models."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {"Error": error, "AnthropicError": {
                "description": "An Anthropic-shaped error (Anthropic's Messages API).",
                "headers": {"request-id": {"description": "The request's id.", "required": True,
                                           "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": ref["AnthropicErrorBody"]}}}},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "consoleSession": {"type": "apiKey", "in": "cookie", "name": "gateway_console"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


@functools.cache
def document() -> bytes:
    return orjson.dumps(build())


async def serve(request: Request) -> Response:
    return Response(document(), media_type="application/json")

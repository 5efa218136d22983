"""Validate a chat-completions request against the OpenAI schema, naming the field that is wrong.

Only the shape is checked here, the same for every upstream. Ranges and
support differ by provider and belong to the provider's profile.
Parameters the gateway does not know are passed on untouched: providers
accept extras (`top_k`, `min_p`, `chat_template_kwargs`...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_CONTENT_REQUIRED = frozenset({"system", "developer", "user", "tool"})

Check = Callable[[Any, str], None]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param, code="invalid_type")


def invalid_value(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {message}", param=param, code="invalid_value")


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                          code="missing_required_parameter")


def number(value: Any, param: str) -> None:
    if type(value) not in (int, float):
        raise invalid_type(param, "a decimal", value)


def integer(minimum: int | None = None) -> Check:
    def check(value: Any, param: str) -> None:
        if type(value) is not int:
            raise invalid_type(param, "an integer", value)
        if minimum is not None and value < minimum:
            raise invalid_value(param, f"expected a value >= {minimum}, but got {value} instead.")
    return check


def boolean(value: Any, param: str) -> None:
    if type(value) is not bool:
        raise invalid_type(param, "a boolean", value)


def string(value: Any, param: str) -> None:
    if type(value) is not str:
        raise invalid_type(param, "a string", value)


def obj(value: Any, param: str) -> None:
    if type(value) is not dict:
        raise invalid_type(param, "an object", value)


def string_or_object(value: Any, param: str) -> None:
    if type(value) not in (str, dict):
        raise invalid_type(param, "a string or an object", value)


def stop(value: Any, param: str) -> None:
    if type(value) is str:
        return
    if type(value) is not list:
        raise invalid_type(param, "a string or an array of strings", value)
    for i, item in enumerate(value):
        string(item, f"{param}[{i}]")


def logit_bias(value: Any, param: str) -> None:
    obj(value, param)
    for token, bias in value.items():
        number(bias, f"{param}.{token}")


def tools(value: Any, param: str) -> None:
    if type(value) is not list:
        raise invalid_type(param, "an array", value)
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        obj(tool, where)
        if "type" not in tool:
            raise missing(f"{where}.type")
        string(tool["type"], f"{where}.type")
        if tool["type"] == "function":
            function = tool.get("function")
            if function is None:
                raise missing(f"{where}.function")
            obj(function, f"{where}.function")
            if "name" not in function:
                raise missing(f"{where}.function.name")
            string(function["name"], f"{where}.function.name")


def response_format(value: Any, param: str) -> None:
    obj(value, param)
    if "type" not in value:
        raise missing(f"{param}.type")
    string(value["type"], f"{param}.type")


def stream_options(value: Any, param: str) -> None:
    obj(value, param)
    if value.get("include_usage") is not None:
        boolean(value["include_usage"], f"{param}.include_usage")


# Known parameters and their checks. `None` means "not set" for every one of them.
PARAMS: dict[str, Check] = {
    "frequency_penalty": number,
    "logit_bias": logit_bias,
    "logprobs": boolean,
    "max_completion_tokens": integer(1),
    "max_tokens": integer(1),
    "metadata": obj,
    "n": integer(1),
    "parallel_tool_calls": boolean,
    "presence_penalty": number,
    "reasoning_effort": string,
    "response_format": response_format,
    "seed": integer(),
    "stop": stop,
    "store": boolean,
    "stream": boolean,
    "stream_options": stream_options,
    "temperature": number,
    "tool_choice": string_or_object,
    "tools": tools,
    "top_logprobs": integer(0),
    "top_p": number,
    "user": string,
}


def validate_chat(body: Any) -> dict:
    """`body` if it is a well-formed chat-completions request; else InvalidRequest naming the field."""
    if type(body) is not dict:
        raise InvalidRequest(
            f"The request body must be a JSON object, but got {_kind(body)} instead.",
            code="invalid_type")
    if "model" not in body or body["model"] is None:
        raise missing("model")
    model = body["model"]
    if type(model) is not str:
        raise invalid_type("model", "a string", model)
    if not model:
        raise invalid_value("model", "expected a model name, but got an empty string.")
    if "messages" not in body or body["messages"] is None:
        raise missing("messages")
    messages = body["messages"]
    if type(messages) is not list:
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.", param="messages", code="empty_array")
    for i, message in enumerate(messages):
        _message(message, i)
    for name, value in body.items():
        check = PARAMS.get(name)
        if check is not None and value is not None:
            check(value, name)
    return body


def _message(message: Any, i: int) -> None:
    where = f"messages[{i}]"
    if type(message) is not dict:
        raise invalid_type(where, "an object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{where}.role")
    if type(role) is not str:
        raise invalid_type(f"{where}.role", "a string", role)
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        raise invalid_value(f"{where}.role", f"'{role[:64]}'. Supported values are: {supported}.")
    content = message.get("content")
    if content is None:
        if role in _CONTENT_REQUIRED:
            raise missing(f"{where}.content")
    elif type(content) is list:
        for j, part in enumerate(content):
            _content_part(part, f"{where}.content[{j}]")
    elif type(content) is not str:
        raise invalid_type(f"{where}.content", "a string or an array of content parts", content)
    name = message.get("name")
    if name is not None:
        string(name, f"{where}.name")
    if role == "tool":
        if message.get("tool_call_id") is None:
            raise missing(f"{where}.tool_call_id")
        string(message["tool_call_id"], f"{where}.tool_call_id")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if type(tool_calls) is not list:
            raise invalid_type(f"{where}.tool_calls", "an array", tool_calls)
        for j, call in enumerate(tool_calls):
            obj(call, f"{where}.tool_calls[{j}]")


def _content_part(part: Any, where: str) -> None:
    if type(part) is not dict:
        raise invalid_type(where, "an object", part)
    kind = part.get("type")
    if kind is None:
        raise missing(f"{where}.type")
    if type(kind) is not str:
        raise invalid_type(f"{where}.type", "a string", kind)
    if kind == "text":
        if "text" not in part:
            raise missing(f"{where}.text")
        string(part["text"], f"{where}.text")
    elif kind == "image_url":
        image = part.get("image_url")
        if image is None:
            raise missing(f"{where}.image_url")
        if type(image) is dict:
            if "url" not in image:
                raise missing(f"{where}.image_url.url")
            string(image["url"], f"{where}.image_url.url")
        elif type(image) is not str:
            raise invalid_type(f"{where}.image_url", "an object with a 'url'", image)

"""routes.yaml: what loads, and how a bad file is refused (file, path, line, reason; exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from gateway.config import ConfigError, digest_key, load_config
from gateway.store import open_store
from tests.conftest import REPO
from tests.gateway_process import GatewayProcess, free_port
from tests.profiles import PROFILES
from tests.upstream import Upstream

ISSUE_EXAMPLE = """
providers:
  local-vllm: {profile: vllm, base_url: "http://127.0.0.1:8000/v1"}
  generalcompute: {profile: generalcompute, base_url: "https://api.generalcompute.com/v1", api_key: "${GENERALCOMPUTE_API_KEY}"}
models:
  deepseek-v3.2:
    targets:
      - {provider: generalcompute, model: deepseek-v3.2}
      - {provider: local-vllm, model: deepseek-ai/DeepSeek-V3.2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def refused(tmp_path: Path, text: str, env: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env or {})
    return caught.value


def test_the_example_config_loads_as_written(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), {"GENERALCOMPUTE_API_KEY": "gc-secret"})

    targets = list(config.routes["deepseek-v3.2"].attempts())
    assert [(t.provider.name, t.model) for t in targets] == [
        ("generalcompute", "deepseek-v3.2"), ("local-vllm", "deepseek-ai/DeepSeek-V3.2")]
    generalcompute = config.providers["generalcompute"]
    assert generalcompute.chat_url == "https://api.generalcompute.com/v1/chat/completions"
    assert generalcompute.headers["authorization"] == "Bearer gc-secret"
    assert "gc-secret" not in repr(config)  # secrets stay out of reprs and logs


def test_missing_env_var_names_the_variable_and_the_place(tmp_path):
    error = refused(tmp_path, ISSUE_EXAMPLE)

    assert str(error) == (f"{tmp_path / 'routes.yaml'}:4: providers.generalcompute.api_key: "
                          "environment variable GENERALCOMPUTE_API_KEY is not set")


def test_env_defaults(tmp_path):
    config = load_config(write(tmp_path, """
        providers:
          local: {profile: vllm, base_url: "${VLLM_URL:-http://127.0.0.1:9/v1}"}
        models:
          m: {targets: [{provider: local, model: m}]}
        keys:
          app: {key: "${APP_KEY:-sk-default-app-key}"}
    """), {})
    assert config.providers["local"].base_url == "http://127.0.0.1:9/v1"
    assert digest_key("sk-default-app-key") in config.keys


def test_unknown_provider_points_at_the_target(tmp_path):
    error = refused(tmp_path, """
        providers:
          local: {profile: vllm, base_url: "http://127.0.0.1:8000/v1"}
        models:
          gpt-x:
            targets:
              - {provider: local, model: a}
              - {provider: locla, model: b}
    """)
    assert "routes.yaml:8: models.gpt-x.targets[1].provider: unknown provider 'locla'" in str(error)
    assert "known providers: local" in str(error)


@pytest.mark.parametrize("text, expected", [
    ("""
     models:
       m:
         target: []
     """, "models.m.target: unknown key 'target' (did you mean 'targets'?)"),
    ("""
     providers:
       p: {profile: vllm, base_url: "http://x/v1", timeouts: {connect: "soon"}}
     """, "providers.p.timeouts.connect: input should be a valid number"),
    ("""
     providers:
       p: {profile: nope, base_url: "http://x/v1"}
     """, "providers.p.profile: unknown profile 'nope'"),
    ("""
     providers:
       p: {profile: vllm}
     """, "providers.p.base_url: required for profile 'vllm'"),
    ("""
     models:
       m: {targets: []}
     """, "models.m.targets: list should have at least 1 item"),
    ("""
     models:
       m: {targets: [{provider: p, model: a}]}
       m: {targets: [{provider: p, model: b}]}
     """, "models.m: duplicate key 'm' (first at line 3)"),
    ("""
     server: {max_body_bytes: lots}
     """, "server.max_body_bytes: expected a size"),
    ("""
     store:
       pool_size: 0
     """, "routes.yaml:3: store.pool_size: input should be greater than 0"),
    ("""
     store: {pool_size: many}
     """, "store.pool_size: input should be a valid integer"),
    ("""
     keys:
       k: {models: [demo]}
     """, "keys.k: give exactly one of 'key'"),
    ("models: [\n", "not valid YAML"),
    ("""
     responses: {ttl: forever}
     """, "routes.yaml:2: responses.ttl: expected a duration such as 30d"),
    ("""
     responses:
       max_bytes: 0
     """, "routes.yaml:3: responses.max_bytes: input should be greater than 0"),
    ("""
     responses: {max_bytes: huge}
     """, "responses.max_bytes: expected a size"),
    ("""
     responses: {keep: 30d}
     """, "responses.keep: unknown key 'keep'"),
    ("""
     messages:
       thinking_efforts: {medium: 20000, high: 8000}
     """, "routes.yaml:2: messages: each effort's floor must be above the one before it"),
    ("""
     messages: {thinking_efforts: {medium: 10}}
     """, "messages.thinking_efforts.medium: input should be greater than or equal to 1024"),
    ("""
     messages: {thinking_efforts: {max: 30000}}
     """, "messages.thinking_efforts.max"),
    ("""
     providers:
       p: {profile: vllm, base_url: "http://x/v1", headers: {x-team: "a\\r\\nx-admin: 1"}}
     """, "routes.yaml:3: providers.p.headers.x-team: a header value cannot hold a line break"),
    ("""
     providers:
       p: {profile: vllm, base_url: "http://x/v1", headers: {"x team": a}}
     """, "routes.yaml:3: providers.p.headers.x team: not a header name"),
])
def test_bad_configs_are_refused_with_the_place(tmp_path, text, expected):
    assert expected in str(refused(tmp_path, text))


def test_the_store_pool_size_reaches_the_redis_pool(tmp_path):
    config = load_config(write(tmp_path, """
        store: {url: "redis://127.0.0.1:9/0", pool_size: 8}
    """), {})
    store = open_store(config.store)  # opens no connection until a call
    assert store.redis.connection_pool.max_connections == 8
    assert load_config(write(tmp_path, "models: {}\n"), {}).store.pool_size == 50


def test_stored_responses_settings_and_their_defaults(tmp_path):
    config = load_config(write(tmp_path, """
        responses: {ttl: 12h, max_bytes: 1MiB, memory_bytes: 64MiB}
    """), {})
    assert (config.responses.ttl, config.responses.max_bytes) == (12 * 3600, 2**20)
    assert open_store(config.store, config.responses.memory_bytes).max_response_bytes == 2**26
    defaults = load_config(write(tmp_path, "responses: {ttl: 90}\n"), {}).responses
    assert (defaults.ttl, defaults.max_bytes, defaults.memory_bytes) == (90, 4 * 2**20, 2**28)
    assert load_config(write(tmp_path, "models: {}\n"), {}).responses.ttl == 30 * 86400


def test_every_problem_is_reported_at_once(tmp_path):
    error = refused(tmp_path, """
        providers:
          p: {profile: vllm, base_url: "http://x/v1", weight: 2}
        models:
          m: {targets: [{provider: p}]}
    """)
    assert len(error.problems) == 2
    assert {p.line for p in error.problems} == {3, 5}


def test_a_profile_that_reads_metrics_must_say_which_series(tmp_path):
    """Load series and weights are the profile's data: a metrics_path alone reads nothing."""
    profile = tmp_path / "providers" / "gauges.yaml"
    profile.parent.mkdir()
    profile.write_text("base: openai\nmetrics_path: /metrics\n")
    error = refused(tmp_path, "models: {}\n")
    assert str(error) == (f"{profile.resolve()}:2: load_metrics: required with metrics_path: "
                          "which series there say how busy the server is")

    profile.write_text("base: openai\nmetrics_path: /metrics\n"
                       "load_metrics: {running: 'srv:running', waiting: 'srv queue', weights: {}}\n")
    problems = {(p.path, p.reason) for p in refused(tmp_path, "models: {}\n").problems}
    assert (("load_metrics", "waiting", 0), "string should match pattern "
            "'^[a-zA-Z_:][a-zA-Z0-9_:]*$'") in problems
    assert (("load_metrics", "weights", "running"), "required key is missing") in problems


def test_a_profile_rules_only_the_apis_it_speaks(tmp_path):
    profile = tmp_path / "providers" / "chat-only.yaml"
    profile.parent.mkdir()
    profile.write_text("apis: {chat: /chat/completions}\n"
                       "api_params:\n  embeddings: {dimensions: true}\n")
    error = refused(tmp_path, "models: {}\n")
    assert str(error) == (f"{profile.resolve()}:3: api_params.embeddings: 'embeddings' is not in "
                          "this profile's apis (chat)")

    profile.write_text("apis: {chat: /chat/completions, embeddings: /embeddings}\n"
                       "api_params:\n  embeddings: {input: true}\n")
    error = refused(tmp_path, "models: {}\n")
    assert "api_params.embeddings.input: the gateway handles this parameter itself" in str(error)


def test_a_profile_counts_messages_tokens_only_beside_messages(tmp_path):
    """count_tokens has no rules of its own: those of messages rule it, so it needs them."""
    profile = tmp_path / "providers" / "counter.yaml"
    profile.parent.mkdir()
    profile.write_text("apis:\n  chat: /chat/completions\n"
                       "  messages_count_tokens: /messages/count_tokens\n")
    assert str(refused(tmp_path, "models: {}\n")) == (
        f"{profile.resolve()}:3: apis.messages_count_tokens: needs `messages` in apis too: a "
        "count is ruled by api_params.messages")

    profile.write_text("apis: {messages: /messages, messages_count_tokens: /count}\n"
                       "api_params:\n  messages_count_tokens: {system: true}\n")
    assert "api_params.messages_count_tokens" in str(refused(tmp_path, "models: {}\n"))
    assert PROFILES["vllm"].apis["messages_count_tokens"] == "/messages/count_tokens"
    assert PROFILES["anthropic"].apis["messages_count_tokens"] == "/messages/count_tokens"


def test_a_profiles_context_overflow_phrasings_must_be_regular_expressions(tmp_path):
    profile = tmp_path / "providers" / "odd.yaml"
    profile.parent.mkdir()
    profile.write_text("errors:\n  context_overflow: ['too (long']\n")
    error = refused(tmp_path, "models: {}\n")
    assert str(error).startswith(f"{profile.resolve()}:2: errors.context_overflow: not a regular "
                                 "expression: missing )")
def test_a_derived_profile_takes_no_rules_for_an_api_it_does_not_speak(tmp_path):
    """openai rules completions; a profile based on it that speaks chat only is not refused
    for those rules (demo is one), but its own rules for an API it does not speak are."""
    profile = tmp_path / "providers" / "chat-only.yaml"
    profile.parent.mkdir()
    profile.write_text("base: openai\napis: {chat: /chat/completions}\n")
    config = load_config(write(tmp_path, "providers:\n  p: {profile: chat-only, base_url: "
                                         "'http://x/v1'}\nmodels: {}\n"), {})
    assert config.providers["p"].profile.api_rules == {}
    assert "completions" not in PROFILES["demo"].api_rules  # demo speaks chat and embeddings
    assert "completions" in PROFILES["openai"].api_rules

    profile.write_text("base: openai\napis: {chat: /chat/completions}\n"
                       "api_params:\n  completions: {echo: true}\n")
    error = refused(tmp_path, "models: {}\n")
    assert "api_params.completions: 'completions' is not in this profile's apis (chat)" in str(error)


@pytest.mark.parametrize("headers, expected", [
    ("{anthropic-version: 2023-06-01}",  # unquoted, YAML reads a date
     "headers.anthropic-version: input should be a valid string, got date"),
    ('{"api version": "1"}', "headers.api version: not a header name"),
    ('{x-version: "1\\r\\nx-injected: 1"}',
     "headers.x-version: a header value cannot hold a line break or NUL"),
    ("{Content-Type: text/plain}", "headers.Content-Type: the gateway writes this header itself"),
    ('{authorization: "Bearer sk-x"}', "headers.authorization: the provider's key goes in this header"),
])
def test_a_profiles_headers_are_refused_at_start_with_the_place(tmp_path, headers, expected):
    profile = tmp_path / "providers" / "versioned.yaml"
    profile.parent.mkdir()
    profile.write_text(f"base: openai\nheaders: {headers}\n")
    assert f"{profile.resolve()}:2: {expected}" in str(refused(tmp_path, "models: {}\n"))


def test_the_anthropic_profile_sends_the_bare_key_and_its_version(tmp_path):
    """x-api-key with no scheme; anthropic-version from the profile, unless the provider
    sets its own (names in any case)."""
    config = load_config(write(tmp_path, """
        providers:
          claude: {profile: anthropic, base_url: "https://api.anthropic.com/v1", api_key: sk-ant-1}
          pinned:
            profile: anthropic
            base_url: "https://api.anthropic.com/v1"
            api_key: sk-ant-1
            headers: {Anthropic-Version: "2099-01-01", anthropic-beta: "context-1m-2025-08-07"}
        models: {}
    """), {})
    claude, pinned = config.providers["claude"], config.providers["pinned"]
    assert claude.urls == {"messages": "https://api.anthropic.com/v1/messages",
                           "messages_count_tokens": "https://api.anthropic.com/v1/messages/"
                                                    "count_tokens"}
    assert claude.headers["x-api-key"] == "sk-ant-1" and "authorization" not in claude.headers
    assert claude.headers["anthropic-version"] == "2023-06-01"
    assert pinned.headers["anthropic-version"] == "2099-01-01"
    assert pinned.headers["anthropic-beta"] == "context-1m-2025-08-07"
    anthropic = PROFILES["anthropic"]
    assert anthropic.rules == {}  # it takes no chat: its rules are the Messages API's
    temperature = anthropic.api_rules["messages"]["temperature"]
    assert (temperature.low, temperature.high) == (0, 1)


def test_a_profiles_headers_and_a_bare_key_reach_the_upstream(tmp_path):
    """Through a running gateway. A profile based on anthropic that also speaks chat carries
    its key (no scheme) and version header on a chat request; a provider's own header wins;
    a profile without them sends neither."""
    profile = tmp_path / "providers" / "anthropic-chat.yaml"
    profile.parent.mkdir()
    profile.write_text("base: anthropic\napis: {chat: /chat/completions}\n")
    upstream = Upstream(apis=("chat",)).start()
    path = write(tmp_path, f"""
        providers:
          claude: {{profile: anthropic-chat, base_url: "{upstream.url}", api_key: sk-ant-1}}
          pinned:
            profile: anthropic-chat
            base_url: "{upstream.url}"
            api_key: sk-ant-1
            headers: {{anthropic-version: "2099-01-01"}}
          plain: {{profile: openai, base_url: "{upstream.url}", api_key: sk-openai-1}}
        models:
          claude: {{targets: [{{provider: claude, model: c}}]}}
          pinned: {{targets: [{{provider: pinned, model: p}}]}}
          plain: {{targets: [{{provider: plain, model: o}}]}}
        keys:
          app: {{key: sk-app-0123456789}}
    """)
    sent = {}
    try:
        with GatewayProcess(path) as gateway:
            for model in ("claude", "pinned", "plain"):
                response = httpx.post(gateway.url + "/v1/chat/completions", timeout=10,
                                      headers={"Authorization": "Bearer sk-app-0123456789"},
                                      json={"model": model, "messages": [
                                          {"role": "user", "content": "hi"}]})
                assert response.status_code == 200, response.text
                sent[model] = upstream.last.headers
    finally:
        upstream.stop()
    assert sent["claude"]["x-api-key"] == "sk-ant-1" and "authorization" not in sent["claude"]
    assert sent["claude"]["anthropic-version"] == "2023-06-01"
    assert sent["pinned"]["anthropic-version"] == "2099-01-01"
    assert sent["plain"]["authorization"] == "Bearer sk-openai-1"
    assert "anthropic-version" not in sent["plain"] and "x-api-key" not in sent["plain"]


def test_shipped_routes_yaml_is_valid():
    config = load_config(REPO / "routes.yaml", {})
    assert list(config.routes) == ["demo"]
    assert config.providers["demo"].profile.transport == "demo"


def gateway_cli(*args: str, env: dict | None = None, timeout: float = 30):
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_check_prints_the_model_table(tmp_path):
    path = write(tmp_path, ISSUE_EXAMPLE)
    result = gateway_cli("check", "--config", str(path),
                         env={"GENERALCOMPUTE_API_KEY": "gc-secret", "PATH": ""})

    assert result.returncode == 0, result.stderr
    assert "  deepseek-v3.2\n    1. primary: generalcompute -> deepseek-v3.2\n" in result.stdout
    assert "    2. fallback 1: local-vllm -> deepseek-ai/DeepSeek-V3.2\n" in result.stdout
    assert "up to 2 attempts a request" in result.stdout
    assert "gc-secret" not in result.stdout


def test_check_refuses_a_bad_config_with_exit_2(tmp_path):
    result = gateway_cli("check", "--config", str(write(tmp_path, ISSUE_EXAMPLE)), env={"PATH": ""})

    assert result.returncode == 2
    assert "providers.generalcompute.api_key: environment variable GENERALCOMPUTE_API_KEY" in result.stderr


def test_check_refuses_a_missing_file(tmp_path):
    result = gateway_cli("check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: (top level): no such file" in result.stderr


def test_serve_refuses_a_bad_config_before_binding(tmp_path):
    port = free_port()
    result = gateway_cli("serve", "--config", str(write(tmp_path, ISSUE_EXAMPLE)),
                         "--port", str(port), env={"PATH": ""})

    assert result.returncode == 2
    assert "GENERALCOMPUTE_API_KEY is not set" in result.stderr
    with socket.socket() as s:  # nobody is listening there
        assert s.connect_ex(("127.0.0.1", port)) != 0

# -*- coding: utf-8 -*-
"""The Dify Agent services' contract (1.16 on): agent_backend, local_sandbox,
agent_ssrf_proxy and api_websocket, as extracted from the release tree, and
dify_schema refusing what the agent backend refuses at start."""

from __future__ import annotations

import base64
import importlib.util
import os
import secrets

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_13_3 as r1133
from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_16_1 as r1161
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds

R1133 = r1133.RELEASE
R1161 = r1161.RELEASE
AGENT_FAMILIES = ("agent_backend", "local_sandbox", "agent_ssrf_proxy")
COMMIT_1161 = "6f8ed69ee15f9a2e7189ca066275e973d091d1e9"

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SPEC = importlib.util.spec_from_file_location("dify_contract_extract_agent",
                                              os.path.join(TOP, "scripts", "dify-contract", "extract.py"))
EXTRACT = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(EXTRACT)


def b64url(n):
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()


# A working agent backend environment on a fleet (no compose host names).
GOOD = {
    "DIFY_AGENT_REDIS_URL": "redis://:pw@10.0.0.3:6379/2",
    "DIFY_AGENT_PLUGIN_DAEMON_URL": "http://10.0.0.4:5002",
    "DIFY_AGENT_INNER_API_URL": "http://10.0.0.2:5001",
    "DIFY_AGENT_SHELLCTL_ENTRYPOINT": "http://10.0.0.6:5004",
    "DIFY_AGENT_STUB_API_BASE_URL": "http://10.0.0.5:5050/agent-stub",
    "DIFY_AGENT_SERVER_SECRET_KEY": b64url(32),
    "DIFY_AGENT_API_TOKEN": secrets.token_urlsafe(32),
}


def agent_errors(**changes):
    env = dict(GOOD)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return ds.validate_env(R1161, "agent_backend", env)


# ---------------------------------------------------------------- which release has what

@pytest.mark.parametrize("family", AGENT_FAMILIES)
def test_agent_families_are_in_1_16_1_and_not_in_1_13_3(family):
    assert ds.has_family(R1161, family)
    assert R1161[family]["names"]
    assert not ds.has_family(R1133, family)
    assert family not in R1133
    assert ds.known_names(R1133, family) == frozenset()
    assert ds.validate_env(R1133, family, {}) == ["Dify 1.13.3 has no %s (not in this release)" % family]


def test_api_websocket_is_a_compose_service_of_the_api_image_in_1_16_1_only():
    assert "api_websocket" not in R1133["api"]["compose"]
    assert "api_websocket" not in R1133["images"]
    ws = R1161["api"]["compose"]["api_websocket"]
    assert R1161["images"]["api_websocket"] == R1161["images"]["api"] == "langgenius/dify-api:1.16.1"
    assert ws["profiles"] == ["collaboration"]
    assert ws["environment"]["MODE"] == "api"
    assert ws["environment"]["SERVER_WORKER_CLASS"].endswith(
        ":-geventwebsocket.gunicorn.workers.GeventWebSocketWorker}")
    assert ws["environment"]["SERVER_WORKER_CONNECTIONS"] == "${API_WEBSOCKET_WORKER_CONNECTIONS:-1000}"
    assert "healthcheck" not in ws and "volumes" not in ws
    assert set(ws["depends_on"]) == {"db_postgres", "db_mysql", "redis"}
    assert ws["networks"] == ["ssrf_proxy_network", "default"]
    assert ws["env_file"] == R1161["api"]["compose"]["api"]["env_file"]


def test_the_api_side_of_the_agent_backend_is_in_dify_config_from_1_16_1():
    settings = R1161["api"]["settings"]
    assert settings["AGENT_BACKEND_BASE_URL"]["type"] == {"t": "optional", "of": {"t": "str"}}
    assert settings["AGENT_BACKEND_API_TOKEN"]["default"] is None
    assert settings["AGENT_BACKEND_BASE_URL"]["src"] == "api/configs/extra/agent_backend_config.py"
    assert "AGENT_BACKEND_BASE_URL" not in R1133["api"]["settings"]
    api_env = R1161["api"]["compose"]["api"]["environment"]
    # one token, two names: the api sends AGENT_BACKEND_API_TOKEN, the agent backend checks DIFY_AGENT_API_TOKEN
    assert api_env["AGENT_BACKEND_API_TOKEN"].startswith("${DIFY_AGENT_API_TOKEN:-")
    assert R1161["agent_backend"]["compose"]["agent_backend"]["environment"]["DIFY_AGENT_API_TOKEN"].startswith(
        "${DIFY_AGENT_API_TOKEN:-")
    assert api_env["AGENT_BACKEND_BASE_URL"] == "${AGENT_BACKEND_BASE_URL:-http://agent_backend:5050}"
    assert R1161["api"]["compose"]["api"]["depends_on"]["agent_backend"] == {"condition": "service_started"}


# ---------------------------------------------------------------- the data names its sources

def test_agent_data_names_its_sources_in_the_release_tree():
    assert R1161["sources"]["dify"]["commit"] == COMMIT_1161
    agent = R1161["agent_backend"]
    assert agent["src"] == "dify-agent/src/dify_agent/server/settings.py"
    assert agent["settings_class"] == "ServerSettings"
    assert agent["dockerfile"]["src"] == "dify-agent/Dockerfile"
    assert {s["src"] for s in agent["settings"].values()} == {agent["src"]}
    assert {r["src"].split(":", maxsplit=1)[0] for r in agent["rules"]} == {
        "dify-agent/src/dify_agent/server/settings.py", "dify-agent/src/dify_agent/adapters/shell/config.py"}
    sandbox = R1161["local_sandbox"]
    assert sandbox["dockerfile"]["src"] == "dify-agent-runtime/docker/Dockerfile"
    for name, entry in sandbox["reads"].items():
        assert entry["reads"], name
        for read in entry["reads"]:
            assert read["src"].startswith("dify-agent-runtime/") and read["src"].split(":")[1].isdigit()
    proxy = R1161["agent_ssrf_proxy"]
    assert proxy["squid"]["src"] == "docker/ssrf_proxy/squid-agent.conf.template"
    assert proxy["entrypoint"]["src"] == "docker/ssrf_proxy/docker-agent-entrypoint.sh"
    # the agent's own lock, not the api's: pydantic-settings differs
    assert agent["pins"]["pydantic-settings"] == "2.14.0"
    assert R1161["client_libraries"]["pydantic-settings"] == "2.14.2"


# ---------------------------------------------------------------- facts read in the tree

def test_agent_backend_port_command_and_settings_class():
    agent = R1161["agent_backend"]
    assert agent["image"] == "langgenius/dify-agent-backend:1.16.1"
    assert agent["dockerfile"]["expose"] == [5050]
    assert agent["dockerfile"]["cmd"] == ["uvicorn", "dify_agent.server.app:app", "--host", "0.0.0.0",
                                          "--port", "5050"]
    assert agent["dockerfile"]["user"] == "dify"
    assert agent["env_prefix"] == "DIFY_AGENT_"
    assert "healthcheck" not in agent["compose"]["agent_backend"]
    assert set(agent["compose"]["agent_backend"]["depends_on"]) == {"redis", "plugin_daemon", "local_sandbox"}
    assert agent["compose"]["agent_backend"]["networks"] == ["default", "agent_sandbox_network"]


def test_agent_backend_defaults_and_constraints_as_declared():
    s = R1161["agent_backend"]["settings"]
    assert s["DIFY_AGENT_REDIS_URL"]["default"] == "redis://localhost:6379/0"
    assert s["DIFY_AGENT_REDIS_PREFIX"]["default"] == "dify-agent"
    assert s["DIFY_AGENT_RUN_RETENTION_SECONDS"] == dict(s["DIFY_AGENT_RUN_RETENTION_SECONDS"],
                                                         type={"t": "int", "ge": 1}, default=259200)
    assert s["DIFY_AGENT_SHELL_PROVIDER"]["type"] == {"t": "literal", "values": ["shellctl", "enterprise"]}
    assert s["DIFY_AGENT_OUTBOUND_HTTP_MAX_CONNECTIONS"]["type"] == {"t": "int", "ge": 1}
    assert s["DIFY_AGENT_OUTBOUND_HTTP_READ_TIMEOUT"]["default"] == 600.0
    assert s["DIFY_AGENT_INNER_API_URL"]["default"] == "http://localhost:5001"
    assert s["DIFY_AGENT_API_TOKEN"]["default"] is None
    # the secret key: optional, stripped, blank is None, base64url text of 32 bytes
    key = s["DIFY_AGENT_SERVER_SECRET_KEY"]
    assert key["validators"] == ["after:validate_server_secret_key"]
    assert (key["strip"], key["blank"], key["check"]) == (True, "none", "base64url_32")
    # validation_alias with populate_by_name: the alias first, then prefix + field name
    assert s["DIFY_AGENT_STUB_API_BASE_URL"]["env"] == ["DIFY_AGENT_STUB_API_BASE_URL",
                                                        "DIFY_AGENT_AGENT_STUB_API_BASE_URL"]


def test_agent_compose_uses_redis_db_2_and_the_daemon_and_inner_api_keys():
    env = R1161["agent_backend"]["compose"]["agent_backend"]["environment"]
    assert env["DIFY_AGENT_REDIS_URL"].endswith("@redis:6379/2}")
    assert env["DIFY_AGENT_PLUGIN_DAEMON_API_KEY"].startswith("${DIFY_AGENT_PLUGIN_DAEMON_API_KEY:-${PLUGIN_DAEMON_KEY:-")
    assert env["DIFY_AGENT_INNER_API_KEY"].startswith("${DIFY_AGENT_INNER_API_KEY:-${PLUGIN_DIFY_INNER_API_KEY:-")
    assert env["DIFY_AGENT_SHELLCTL_ENTRYPOINT"] == "${DIFY_AGENT_SHELLCTL_ENTRYPOINT:-http://local_sandbox:5004}"
    # .env.example leaves these empty; compose's ${X:-default} fills them in
    example = R1161["agent_backend"]["env_example"]
    assert example["DIFY_AGENT_REDIS_URL"] == example["DIFY_AGENT_INNER_API_URL"] == ""


def test_no_local_sandbox_auth_token_name_shellctl_token_instead():
    # 1.16.1 has no DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN: the agent backend sends DIFY_AGENT_SHELLCTL_AUTH_TOKEN,
    # the local sandbox reads SHELLCTL_AUTH_TOKEN (compose maps one onto the other)
    assert "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN" not in R1161["agent_backend"]["names"]
    assert "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" in R1161["agent_backend"]["names"]
    sandbox = R1161["local_sandbox"]
    assert sandbox["compose"]["local_sandbox"]["environment"]["SHELLCTL_AUTH_TOKEN"] == \
        "${DIFY_AGENT_SHELLCTL_AUTH_TOKEN:-}"
    assert sandbox["reads"]["SHELLCTL_AUTH_TOKEN"]["reads"][0]["src"].startswith(
        "dify-agent-runtime/internal/server/config.go:")


def test_local_sandbox_port_health_and_reads():
    sandbox = R1161["local_sandbox"]
    assert sandbox["image"] == "langgenius/dify-agent-local-sandbox:1.16.1"
    assert sandbox["dockerfile"]["expose"] == [5004]
    assert sandbox["dockerfile"]["cmd"] == ["shellctl", "serve", "--listen", "0.0.0.0:5004"]
    assert sandbox["server"]["listen_default"] == "127.0.0.1:8765"
    assert sandbox["server"]["health"] == "/healthz"
    assert sandbox["server"]["unauthenticated"] == ["GET /healthz"]
    compose = sandbox["compose"]["local_sandbox"]
    assert compose["healthcheck"] == ["CMD", "curl", "-f", "http://localhost:5004/healthz"]
    assert compose["environment"]["HTTP_PROXY"] == "http://agent_ssrf_proxy:3128"
    assert compose["networks"] == ["agent_sandbox_network", "local_sandbox_proxy_network"]
    assert "volumes" not in compose  # no volumes at 1.16.1
    isolation = sandbox["reads"]["SHELLCTL_ENABLE_PATH_ISOLATION"]
    assert (isolation["parse"], isolation["unset"]) == ("eq_true", "true")
    assert isolation["reads"][0]["how"] == "LookupEnv"
    assert sandbox["reads"]["SHELLCTL_LANDLOCK_RW_DEV_PATHS"]["default"][0] == "/dev/null"
    for network in ("agent_sandbox_network", "local_sandbox_proxy_network", "ssrf_proxy_network"):
        assert R1161["compose_networks"][network]["internal"] is True


def test_agent_ssrf_proxy_allows_the_stub_and_files_paths_and_the_public_internet():
    proxy = R1161["agent_ssrf_proxy"]
    squid = proxy["squid"]
    assert squid["http_access"] == [
        ["deny", "!Safe_ports"], ["deny", "CONNECT", "!SSL_ports"],
        ["allow", "dst_agent_backend", "path_agent_stub"], ["allow", "dst_dify_api", "path_files"],
        ["deny", "to_private_networks"], ["allow", "all"]]
    acls = squid["acls"]
    assert acls["dst_agent_backend"]["values"] == ["agent_backend"]
    assert acls["dst_dify_api"]["values"] == ["api"]
    assert acls["path_agent_stub"] == dict(acls["path_agent_stub"], kind="urlpath_regex", values=["-i", "^/agent-stub/"])
    assert acls["path_files"]["values"] == ["-i", "^/files/"]
    assert "169.254.0.0/16" in acls["to_private_networks"]["values"]
    assert acls["to_private_networks"]["src"] == "docker/ssrf_proxy/squid-common.conf.template"
    assert squid["http_port"] == ["${HTTP_PORT}"]
    assert proxy["mounts"]["/etc/squid/squid.conf.template"] == "docker/ssrf_proxy/squid-agent.conf.template"
    assert proxy["names"] == ["COREDUMP_DIR", "HTTP_PORT"]
    assert proxy["compose"]["agent_ssrf_proxy"]["environment"]["HTTP_PORT"] == "${SSRF_HTTP_PORT:-3128}"
    assert proxy["compose"]["agent_ssrf_proxy"]["networks"] == ["default", "local_sandbox_proxy_network"]


# ---------------------------------------------------------------- refused as the agent backend refuses

def test_a_working_environment_passes():
    assert agent_errors() == []


@pytest.mark.parametrize("size", [16, 30, 31, 33, 48])
def test_secret_key_must_decode_to_exactly_32_bytes(size):
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=b64url(size))
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=b64url(32)) == []


def test_secret_key_is_unpadded_base64url_text_stripped():
    key = secrets.token_urlsafe(32)  # what upstream tells operators to run
    assert len(key) == 43
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=" %s\n" % key) == []
    padded = base64.urlsafe_b64encode(os.urandom(32)).decode()
    assert padded.endswith("=") and agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=padded)
    standard = base64.b64encode(bytes([0xfb, 0xff] * 16)).decode().rstrip("=")  # '+' and '/', not base64url
    assert len(standard) == 43 and agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=standard)
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=standard.replace("+", "-").replace("/", "_")) == []


def test_refused_secret_values_are_never_shown():
    key = b64url(31)
    errors = agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=key)
    assert errors and "32 bytes" in errors[0]
    assert key not in "\n".join(errors)


def test_stub_url_needs_the_secret_key():
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=None) == [
        "DIFY_AGENT_SERVER_SECRET_KEY is required when DIFY_AGENT_STUB_API_BASE_URL is set "
        "(dify-agent/src/dify_agent/server/settings.py:ServerSettings.validate_agent_stub_requirements)"]
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY="   ")  # blank is None
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=None, DIFY_AGENT_STUB_API_BASE_URL=None) == []
    assert agent_errors(DIFY_AGENT_SERVER_SECRET_KEY=None, DIFY_AGENT_STUB_API_BASE_URL="") == []


@pytest.mark.parametrize("url, good", [
    ("http://10.0.0.5:5050", True), ("https://agent.example.org/agent-stub/", True), ("grpc://10.0.0.5:7000", True),
    ("http://10.0.0.5:5050/runs", False), ("grpc://10.0.0.5", False), ("grpc://10.0.0.5:7000/x", False),
    ("ftp://10.0.0.5/agent-stub", False), ("http://u:p@10.0.0.5/agent-stub", False),
    ("http://10.0.0.5/agent-stub?x=1", False), ("10.0.0.5:5050", False), ("http://10.0.0.5:99999/", False),
])
def test_stub_url_forms(url, good):
    assert (agent_errors(DIFY_AGENT_STUB_API_BASE_URL=url) == []) is good


def test_grpc_bind_address_needs_a_grpc_stub_url():
    assert agent_errors(DIFY_AGENT_STUB_GRPC_BIND_ADDRESS="0.0.0.0:7000")
    assert agent_errors(DIFY_AGENT_STUB_GRPC_BIND_ADDRESS="0.0.0.0:7000",
                        DIFY_AGENT_STUB_API_BASE_URL="grpc://10.0.0.5:7000") == []
    assert agent_errors(DIFY_AGENT_STUB_GRPC_BIND_ADDRESS="0.0.0.0",
                        DIFY_AGENT_STUB_API_BASE_URL="grpc://10.0.0.5:7000")


@pytest.mark.parametrize("name, value", [
    ("DIFY_AGENT_INNER_API_URL", ""), ("DIFY_AGENT_INNER_API_URL", "http://10.0.0.2:5001/?a=1"),
    ("DIFY_AGENT_INNER_API_URL", "api:5001"), ("DIFY_AGENT_SHELL_HOME_ROOT", "/"),
    ("DIFY_AGENT_SHELL_HOME_ROOT", "home"), ("DIFY_AGENT_RUN_RETENTION_SECONDS", "0"),
    ("DIFY_AGENT_OUTBOUND_HTTP_MAX_CONNECTIONS", "0"), ("DIFY_AGENT_SHELL_PROVIDER", "docker"),
    ("DIFY_AGENT_SHUTDOWN_GRACE_SECONDS", "30s"), ("DIFY_AGENT_SHELL_REDACT_PATTERNS", '{"a": 1}'),
    ("DIFY_AGENT_SHELL_REDACT_PATTERNS", "[oops"), ("DIFY_AGENT_SHELLCTL_ENTRYPOINT", "local_sandbox:5004"),
    ("DIFY_AGENT_SHELLCTL_ENTRYPOINT", "  "), ("DIFY_AGENT_REDIS_URL", ""),
    ("DIFY_AGENT_REDIS_URL", "sentinel://10.0.0.3:26379/2"), ("DIFY_AGENT_REDIS_URL", "redis://10.0.0.3:port/2"),
])
def test_values_the_agent_backend_does_not_start_with(name, value):
    assert agent_errors(**{name: value})


@pytest.mark.parametrize("name, value", [
    ("DIFY_AGENT_INNER_API_URL", " http://10.0.0.2:5001/ "), ("DIFY_AGENT_SHELL_HOME_ROOT", "/home/"),
    ("DIFY_AGENT_SHELL_REDACT_PATTERNS", '["sk-[a-z]+"]'), ("DIFY_AGENT_SHELL_REDACT_PATTERNS", " "),
    ("DIFY_AGENT_SHELLCTL_ENTRYPOINT", ""), ("DIFY_AGENT_INNER_API_KEY", ""),
    ("DIFY_AGENT_RUN_RETENTION_SECONDS", "1_000"), ("DIFY_AGENT_REDIS_URL", "rediss://:pw@10.0.0.3:6380/2"),
])
def test_values_the_agent_backend_accepts(name, value):
    assert agent_errors(**{name: value}) == []


def test_shellctl_entrypoint_is_checked_only_for_the_shellctl_provider():
    assert agent_errors(DIFY_AGENT_SHELLCTL_ENTRYPOINT="nonsense", DIFY_AGENT_SHELL_PROVIDER="enterprise") == []
    assert agent_errors(DIFY_AGENT_SHELL_PROVIDER="enterprise", DIFY_AGENT_ENTERPRISE_SANDBOX_GATEWAY_ENDPOINT="gw")


def test_unknown_names_are_refused_per_family():
    assert ds.validate_env(R1161, "agent_backend", {"DIFY_AGENT_REDIS_DB": "2"}) == [
        "DIFY_AGENT_REDIS_DB is not a variable Dify 1.16.1's agent_backend image reads"]
    # the .example.env of dify-agent/ lists plugin-daemon timeouts ServerSettings does not read
    assert ds.validate_env(R1161, "agent_backend", {"DIFY_AGENT_PLUGIN_DAEMON_READ_TIMEOUT": "600"})
    assert ds.validate_env(R1161, "agent_backend", {"LOGFIRE_TOKEN": "x"}) == []  # a prefix logfire reads
    assert ds.validate_env(R1161, "local_sandbox", {"SHELLCTL_ENABLE_PATH_ISOLATION": "1",
                                                    "SHELLCTL_AUTH_TOKEN": ""}) == []
    assert ds.validate_env(R1161, "local_sandbox", {"DIFY_AGENT_SHELLCTL_AUTH_TOKEN": "x"})
    assert ds.validate_env(R1161, "agent_ssrf_proxy", {"HTTP_PORT": "3128", "SANDBOX_HOST": "x"}) == [
        "SANDBOX_HOST is not a variable Dify 1.16.1's agent_ssrf_proxy image reads"]


# ---------------------------------------------------------------- the extractor's parsing (no mirror needed)

def test_settings_class_is_built_from_its_fields_only():
    pytest.importorskip("pydantic_settings")
    source = '''
import heavy_dependency_never_imported
LIMIT = 2 * 3
class S(BaseSettings):
    """doc"""
    url: str = "http://x"
    n: int = Field(default=LIMIT, ge=1)
    alias_me: str | None = Field(default=None, validation_alias="OTHER_NAME")
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(env_prefix="P_", populate_by_name=True)

    @field_validator("url")
    @classmethod
    def check_url(cls, value):
        return heavy_dependency_never_imported.f(value)

    @model_validator(mode="after")
    def rules(self):
        return self
'''
    cls, field_validators, model_validators = EXTRACT._settings_class(source, "S", "x.py")
    assert cls.model_fields["n"].default == 6
    assert field_validators == {"url": ["after:check_url"]}
    assert model_validators == ["after:S.rules"]
    assert EXTRACT.type_node(cls.model_fields["n"].annotation, cls.model_fields["n"].metadata) == {"t": "int", "ge": 1}
    assert cls.model_config["env_prefix"] == "P_"


def test_dockerfile_runtime_reads_the_final_stage():
    text = "FROM a AS b\nEXPOSE 1\nCMD [\"x\"]\nFROM c AS d\nWORKDIR /w\nEXPOSE 5050/tcp\nUSER dify\n" \
           "CMD [\"uvicorn\", \"m:app\"]\n"
    assert EXTRACT.dockerfile_runtime(text) == {"cmd": ["uvicorn", "m:app"], "expose": [5050], "user": "dify",
                                                "workdir": "/w"}

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dify_env
short_description: Build, validate and write the environment file of one Dify service
description:
  - Builds the environment of every Dify service (api, worker, beat, web, sandbox,
    plugin_daemon, migration) from one context (fleet addresses, the capacity plan,
    the fleet's secrets), validates it against the pinned Dify release's contract and
    writes the env file of the service asked for.
  - The contract of each release is data extracted from Dify's own source at the
    release commit (scripts/dify-contract/extract.py, docs/CONTRACT.md). Every value
    must parse as the service's image parses it, an empty value included - the api
    family (api, worker, beat, migration) with pydantic-settings' lax mode on
    C(DifyConfig) (types, bounds, C(Literal)s, aliases, the entrypoint's and the code's
    direct reads), the plugin daemon with envconfig and its required settings, the
    sandbox with its Go parsing. For example C(REDIS_PORT=) (empty) is refused for the
    api family and the plugin daemon, as both would fail at start.
  - Validation also refuses names the service's image does not read (unless listed
    in O(allow_unknown)), values outside the fleet's choices (C(DB_TYPE),
    C(PLUGIN_STORAGE_TYPE), C(CELERY_BACKEND), C(MIGRATION_ENABLED)), docker-compose
    host names (C(db_postgres), C(redis), C(sandbox), C(plugin_daemon), C(api),
    C(ssrf_proxy), C(weaviate), C(qdrant)) in address variables, empty or public sample
    secrets, secrets that differ between services that must share them, and
    C(MIGRATION_ENABLED) other than C(false) on long-running services. Nothing is
    written when validation fails.
  - Supports check mode and diff; every secret is masked in the diff and in the
    returned environment.
version_added: "0.1.0"
author: difyops.fleet contributors (@difyops)
options:
  service:
    description: The service whose env file is written.
    type: str
    required: true
    choices: [api, worker, beat, migration, web, sandbox, plugin_daemon, api_websocket, agent_backend, local_sandbox]
  version:
    description: The Dify release whose contract applies (C(1.13.3) or C(1.16.1)).
    type: str
    default: "1.13.3"
  context:
    description:
      - Non-secret inputs. Keys C(db) (type, host, port, username, database,
        plugin_database, ssl_mode C(disable) or C(require), extras appended to the api's
        C(DB_EXTRAS)), C(redis) (sentinels as C(host:port) list, master_name, host, port, db,
        broker_db), C(redis_env) (ready REDIS_*/CELERY_* variables, win over C(redis); names
        the release's images do not read and empty values are left out), C(event_bus) (url,
        C(redis://host:port) of an endpoint that reaches the current Redis master, required
        with Sentinels; credentials and database are added when missing), C(public_url)
        (C(scheme://name[:port]) users reach Dify at; every public URL defaults from it),
        C(urls) (api, web, sandbox, plugin_daemon, ssrf_proxy, and overrides of console_api,
        console_web, service_api, app_api, app_web, files, internal_files, trigger,
        endpoint_template), C(plugin_remote_install_host) (default the plugin daemon's host),
        C(sizing) (gunicorn_workers, celery_concurrency, celery_autoscale,
        celery_use_autoscale, sqlalchemy_pool_size, sqlalchemy_max_overflow,
        plugin_db_max_open_conns, plugin_db_max_idle_conns), C(storage) (the storage role's
        settings without the C(storage_) prefix - backend, path, s3_interface, s3_bucket,
        s3_endpoint, s3_region, s3_root, s3_access_key, s3_secret_key, s3_use_iam_role,
        s3_path_style, plugin_backend, plugin_s3_bucket), C(storage_env) and
        C(plugin_storage_env) (replace the storage variables computed from C(storage)),
        C(vector_store) (default C(pgvector)), C(pgvector) (host, port, user, database,
        min_connection, max_connection; default Dify's own database), C(weaviate) (endpoint,
        grpc_endpoint, tokenization), C(qdrant) (url, client_timeout, grpc_enabled,
        grpc_port, replication_factor), C(vector_env) (any other vector store's variables,
        applied last), C(collaboration) (ENABLE_COLLABORATION_MODE where the release reads
        it; default false), C(log_format), C(log_level), C(sentry), C(otel_env), C(ports)
        (the ports api_websocket and agent_backend listen on).
      - "Dify 1.16+ services: C(optional_services) (which of api_websocket, agent_backend,
        local_sandbox the fleet runs; only those are built, and only where the release has
        them), C(agent) (redis: C(host:port) of the Redis master the agent backend uses, DB from
        upstream's compose; self_url: this agent backend's C(http://address:port), its stub base
        URL), C(urls.agent_backend) (api and worker's AGENT_BACKEND_BASE_URL where the release reads
        it), C(urls.local_sandbox) (the shellctl entrypoint), C(urls.agent_ssrf_proxy) (the local
        sandbox's HTTP(S)_PROXY)."
      - Names a release's image no longer reads are not rendered for it (e.g. C(EDITION)
        for the 1.16.1 web image), and names it reads only from some release on are
        rendered only there (C(CONSOLE_WEB_URL) for web, C(ENABLE_COLLABORATION_MODE)).
      - With C(vector_store=weaviate) the api and worker need C(WEAVIATE_ENDPOINT) and
        C(WEAVIATE_API_KEY); with C(qdrant), C(QDRANT_URL) and C(QDRANT_API_KEY); with
        C(milvus), C(chroma), C(opensearch) or C(elasticsearch) their address variable.
        Endpoints must start with C(http://) or C(https://) (C(grpc://) or C(grpcs://) for
        C(WEAVIATE_GRPC_ENDPOINT)).
    type: dict
    required: true
  secrets:
    description:
      - "The fleet's secrets (keys of C(difyops_secrets)) used here: C(secret_key), C(db_password), C(redis_password), C(redis_sentinel_password),
        C(sandbox_api_key), C(plugin_daemon_key), C(plugin_inner_api_key), on a fleet with an agent
        backend C(agent_api_token), C(agent_server_secret_key) and C(agent_shellctl_token), and
        optionally C(pgvector_password), C(weaviate_api_key) (C(WEAVIATE_API_KEY) when
        C(vector_store=weaviate)) and C(qdrant_api_key) (C(QDRANT_API_KEY) when
        C(vector_store=qdrant)). Dify's public sample keys are refused."
    type: dict
    required: true
  extra_env:
    description:
      - Extra or overriding variables, keyed by C(all) or a service name. They are
        validated like the built ones.
    type: dict
    default: {}
  allow_unknown:
    description: Variable names accepted although the pinned release's contract does not list them.
    type: list
    elements: str
    default: []
  container_env:
    description:
      - Variables the containers get outside the env file (keys C(all) or a service name), e.g. a stand-in
        image's own settings. Only checked here - a name Dify's image reads is refused, as it belongs in the
        validated env file (O(extra_env)).
    type: dict
    default: {}
  mask_secrets:
    description:
      - Write every secret as C(********) instead of its value (an env file for review, not for a service).
    type: bool
    default: false
  dest:
    description: Path of the env file. Not needed when O(validate_only=true).
    type: path
  owner:
    description: Owner of the env file; empty leaves it as created (the user running the module).
    type: str
    default: root
  group:
    description: Group of the env file (Dify's containers run as gid 1001); empty leaves it as created.
    type: str
    default: "1001"
  mode:
    description: Mode of the env file.
    type: str
    default: "0640"
  validate_only:
    description: Only build and validate every service; write nothing.
    type: bool
    default: false
notes:
  - O(secrets) is declared C(no_log), every secret-named value of O(context) and
    O(extra_env) is scrubbed from the output, and every secret in the returned
    environment and the diff is masked, so the task can run without C(no_log) and
    still show its diff.
"""

EXAMPLES = r"""
- name: Write the api env file
  difyops.fleet.dify_env:
    service: api
    version: "1.13.3"
    dest: /etc/dify/api.env
    context:
      db: {host: 10.0.0.11, port: 5432, username: dify, database: dify, plugin_database: dify_plugin}
      redis:
        sentinels: [10.0.0.21:26379, 10.0.0.22:26379, 10.0.0.23:26379]
        master_name: dify
      # the current master (the dify role asks the Sentinels at converge time)
      event_bus: {url: "redis://10.0.0.21:6379"}
      public_url: https://dify.example.com
      urls:
        api: http://10.0.0.31:5001
        sandbox: http://10.0.0.41:8194
        plugin_daemon: http://10.0.0.42:5002
        ssrf_proxy: http://10.0.0.51:3128
      sizing: {gunicorn_workers: 5, sqlalchemy_pool_size: 10, sqlalchemy_max_overflow: 5}
    secrets: "{{ difyops_secrets }}"

- name: Write the worker env file, vectors in an external Weaviate (key in difyops_secrets.weaviate_api_key)
  difyops.fleet.dify_env:
    service: worker
    dest: /etc/dify/worker.env
    context:
      db: {host: 10.0.0.11}
      redis: {host: 10.0.0.21}
      public_url: https://dify.example.com
      urls: {api: "http://10.0.0.31:5001", sandbox: "http://10.0.0.41:8194", plugin_daemon: "http://10.0.0.42:5002"}
      vector_store: weaviate
      weaviate: {endpoint: "http://10.0.0.61:8080", grpc_endpoint: "grpc://10.0.0.61:50051"}
    secrets: "{{ difyops_secrets }}"
"""

RETURN = r"""
env:
  description: The environment written (or that would be written), secrets masked.
  returned: always
  type: dict
  sample: {MODE: api, DB_HOST: 10.0.0.11, SECRET_KEY: "********"}
path:
  description: The env file.
  returned: when O(dest) is set
  type: str
image_family:
  description: Which image reads this env (api for api, worker, beat and migration).
  returned: always
  type: str
images:
  description:
    - The images the contract pins for O(version), by image family (api, web, sandbox, plugin_daemon, and
      agent_backend, local_sandbox where the release has them).
  returned: always
  type: dict
  sample: {api: "langgenius/dify-api:1.13.3", sandbox: "langgenius/dify-sandbox:0.2.14"}
api_files:
  description:
    - The files at the top of C(api/) and in C(api/docker/) of the release's tree, to choose
      what the api image can run (e.g. C(api/celery_healthcheck.py) exists from 1.14 on, not in 1.13.3).
  returned: always
  type: list
  elements: str
  sample: ["api/app.py", "api/celery_entrypoint.py", "api/docker/entrypoint.sh", "api/gunicorn.conf.py"]
source_commit:
  description: The Dify commit the release's contract data was extracted from.
  returned: always
  type: str
  sample: 59639ca9b2ba2ba4b32b5feff5149cfc1ad0ba74
healthchecks:
  description:
    - Per long-running service, its healthcheck in M(community.docker.docker_container)'s form, from the
      release's data - the check upstream's compose file of that release gives the service, or a request to
      the service's own port, or C(test=[NONE]). A check running C(celery_healthcheck) only where the release's
      tree has C(api/celery_healthcheck.py) (1.14 on).
  returned: always
  type: dict
  sample: {worker: {test: [NONE]}, api: {test: [CMD, curl, -fsS, "http://127.0.0.1:5001/health"], interval: 30s}}
commands:
  description:
    - The command of a host-network service whose port moved (C(context.ports)), from the release's
      Dockerfile CMD (the agent backend's uvicorn C(--port), 1.16 on); other services keep their image's.
  returned: always
  type: dict
  sample: {agent_backend: [uvicorn, "dify_agent.server.app:app", --host, 0.0.0.0, --port, "5050"]}
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.difyops.fleet.plugins.module_utils.dify_contract import (
    SERVICES,
    VERSIONS,
    ContractError,
    build_all,
    container_env_problems,
    family,
    commands,
    has_service,
    healthchecks,
    is_secret,
    masked,
    masked_diff_text,
    parse,
    render,
    validate_all,
)


def _scrub(module, value, name=""):
    if isinstance(value, dict):
        for key, item in value.items():
            _scrub(module, item, str(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _scrub(module, item, name)
    elif name and is_secret(name.upper()) and value not in (None, "") and len(str(value)) > 3:
        module.no_log_values.add(str(value))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True, choices=list(SERVICES)),
            version=dict(type="str", default="1.13.3"),
            context=dict(type="dict", required=True),
            secrets=dict(type="dict", required=True, no_log=True),
            extra_env=dict(type="dict", default={}),
            allow_unknown=dict(type="list", elements="str", default=[]),
            container_env=dict(type="dict", default={}),
            mask_secrets=dict(type="bool", default=False),
            dest=dict(type="path"),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="1001"),
            mode=dict(type="str", default="0640"),
            validate_only=dict(type="bool", default=False),
        ),
        required_if=[("validate_only", False, ("dest",))],
        supports_check_mode=True,
    )
    p = module.params
    service = p["service"]
    # Secret-named values that arrive in the context (e.g. REDIS_PASSWORD and the
    # broker URL in redis_env) are scrubbed from every output like no_log ones.
    _scrub(module, p["context"])
    _scrub(module, p["extra_env"])
    ctx = dict(p["context"])
    ctx["secrets"] = p["secrets"]
    try:
        envs = build_all(ctx, p["extra_env"], p["version"])
        errors = validate_all(envs, p["version"], p["allow_unknown"])
        errors.extend(container_env_problems(p["container_env"], p["version"]))
    except ContractError as exc:
        module.fail_json(msg="Dify env contract: %s" % exc)
    if errors:
        module.fail_json(msg="Dify env contract (%s) refused: %s" % (p["version"], "; ".join(errors)),
                         errors=errors)
    if service not in envs:
        module.fail_json(msg="Dify env contract (%s): there is no %s service to write: %s" % (
            p["version"], service,
            "the release has none" if not has_service(p["version"], service)
            else "context.optional_services does not list it (the fleet has no host in its group)"))
    env = envs[service]
    release = VERSIONS[p["version"]]["release"]
    result = dict(changed=False, env=masked(env), image_family=family(service),
                  images=dict(VERSIONS[p["version"]]["images"]), api_files=list(release["api"]["files"]),
                  source_commit=release["sources"]["dify"]["commit"],
                  healthchecks=healthchecks(p["version"], ctx.get("ports")),
                  commands=commands(p["version"], ctx.get("ports")))
    if p["validate_only"]:
        module.exit_json(**result)

    dest = p["dest"]
    result["path"] = dest
    header = ("Managed by difyops.fleet (dify_env): Dify %s, service %s.\nLocal edits are overwritten."
              % (p["version"], service))
    content = render(masked(env) if p["mask_secrets"] else env, header)
    before_text = ""
    if os.path.exists(dest):
        with open(dest, "rb") as fh:
            before_text = to_text(fh.read(), errors="surrogate_or_strict")
    changed = before_text != content
    if changed and module._diff:
        b, a = masked_diff_text(parse(before_text), parse(content))
        result["diff"] = dict(before=b if before_text else "", after=a,
                              before_header=dest, after_header=dest)
    if changed and not module.check_mode:
        dirname = os.path.dirname(dest) or "."
        if not os.path.isdir(dirname):
            module.fail_json(msg="directory %s of dest does not exist" % dirname)
        fd, tmp = tempfile.mkstemp(dir=dirname, prefix=".dify_env.")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, to_bytes(content))
        finally:
            os.close(fd)
        module.atomic_move(tmp, dest)
    file_args = dict(path=dest, owner=p["owner"] or None, group=p["group"] or None, mode=p["mode"],
                     secontext=[None, None, None], attributes=None)
    if os.path.exists(dest):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    result["changed"] = changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()

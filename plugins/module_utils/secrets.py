# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""The fleet's secrets: key names, generation, validation and the file on the controller.

Shared by the ``fleet_secrets`` module (which generates and stores them) and
by preflight checks (which refuse Dify's public sample values wherever a
user put them), so the list of refused values lives in one place.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import re
import secrets as _secrets
import string
import tempfile

# Keys every fleet needs (docs/DEVELOPING.md, "Secrets").
REQUIRED_KEYS = (
    "secret_key",
    "db_password",
    "db_replication_password",
    "redis_password",
    "redis_sentinel_password",
    "sandbox_api_key",
    "plugin_daemon_key",
    "plugin_inner_api_key",
    "pgbackrest_cipher_pass",
)

# Keys generated only when asked for (the fleet uses that feature).
OPTIONAL_KEYS = (
    "weaviate_api_key",
    "qdrant_api_key",
    "init_password",
    # Dify 1.16+ with an agent backend (group dify_agent_backend): api/worker's
    # AGENT_BACKEND_API_TOKEN = DIFY_AGENT_API_TOKEN, the agent stub's
    # DIFY_AGENT_SERVER_SECRET_KEY, and DIFY_AGENT_SHELLCTL_AUTH_TOKEN = the
    # local sandbox's SHELLCTL_AUTH_TOKEN.
    "agent_api_token",
    "agent_server_secret_key",
    "agent_shellctl_token",
)
# Keys the fleet generates when it runs an agent backend.
AGENT_KEYS = ("agent_api_token", "agent_server_secret_key", "agent_shellctl_token")

# Keys with a format of their own: unpadded base64url text of 32 random bytes
# (the agent backend decodes DIFY_AGENT_SERVER_SECRET_KEY so and refuses any
# other length).
BASE64URL_32_KEYS = ("agent_server_secret_key",)

KNOWN_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

# Length of generated values. Alphanumeric only: these values end up in
# URLs (CELERY_BROKER_URL, sentinel://), redis.conf, env files and SQL, where
# punctuation needs quoting that not every consumer does.
GENERATED_LENGTH = {
    "secret_key": 50,
    "pgbackrest_cipher_pass": 64,
    "init_password": 24,  # Dify accepts at most 30 characters
}
DEFAULT_GENERATED_LENGTH = 32

# Shortest value accepted for a key a user supplied.
MIN_LENGTH = {
    "init_password": 12,
    # an S3-compatible store's secret key (MinIO accepts 8 characters)
    "storage_s3_secret_key": 8,
}
DEFAULT_MIN_LENGTH = 16
INIT_PASSWORD_MAX_LENGTH = 30

# Values published in Dify's repository (.env.example, compose files, config
# defaults, docs) or in its ecosystem's samples. Anyone can read them, so a
# fleet using one of them has no secret at all. Compared case-insensitively.
SAMPLE_SECRETS = frozenset(
    v.lower()
    for v in (
        "difyai123456",  # DB_PASSWORD, REDIS_PASSWORD, PGVECTOR_PASSWORD, QDRANT_API_KEY...
        "Difyai123456",  # INIT_PASSWORD examples
        "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",  # SECRET_KEY (<= 1.14)
        "dify-sandbox",  # SANDBOX_API_KEY / CODE_EXECUTION_API_KEY / sandbox app.key
        "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",  # PLUGIN_DAEMON_KEY
        "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",  # PLUGIN_DIFY_INNER_API_KEY
        "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",  # WEAVIATE_API_KEY
        "dify-agent-run-token-for-dev-only",  # DIFY_AGENT_API_TOKEN / AGENT_BACKEND_API_TOKEN (1.16)
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",  # DIFY_AGENT_SERVER_SECRET_KEY (1.16)
        "plugin-api-key",  # PluginConfig.PLUGIN_DAEMON_KEY code default
        "inner-api-key",  # PluginConfig.INNER_API_KEY_FOR_PLUGIN code default
        "difyai",  # AZURE_BLOB_ACCOUNT_KEY sample
        "dify",
        "your-secret-key",
        "your-access-key",
        "your-secret-id",
        "changeme",
        "password",
        "postgres",
    )
)

# Rotating these needs a coordinated re-deploy of the tiers that use them
# (the tags of playbooks/site.yml to run after rotate-secrets.yml).
ROTATION_TIERS = {
    "secret_key": ("dify",),
    "db_password": ("postgresql", "dify"),
    "db_replication_password": ("postgresql",),
    # The Redis exporter (tier exporters, when enabled) logs in with it too.
    "redis_password": ("redis", "dify", "exporters"),
    "redis_sentinel_password": ("redis", "dify"),
    "sandbox_api_key": ("dify",),
    "plugin_daemon_key": ("dify",),
    "plugin_inner_api_key": ("dify",),
    # The fleet's own Weaviate/Qdrant (group dify_vector) and Dify switch together.
    "weaviate_api_key": ("vector_store", "dify"),
    "qdrant_api_key": ("vector_store", "dify"),
    "init_password": (),
    "agent_api_token": ("dify",),
    "agent_server_secret_key": ("dify",),
    "agent_shellctl_token": ("dify",),
}

# Never rotated by the tooling: data already written depends on the value.
NOT_ROTATABLE = {
    "pgbackrest_cipher_pass": (
        "the pgBackRest repository is encrypted with it; a new value cannot read "
        "the existing backups. Create a new repository (new stanza/path) with a new "
        "cipher pass by hand, take a full backup, then edit the secrets file."
    ),
}

VAULT_HEADER = b"$ANSIBLE_VAULT;"
FILE_TOP_KEY = "difyops_secrets"
MASK = "********"

_ALPHABET = string.ascii_letters + string.digits


class SecretsError(Exception):
    """Bad secrets or a bad secrets file: the message names the key and the fix."""


def generate(key, length=None):
    """A new random value for ``key`` (alphanumeric, from the OS CSPRNG; base64url for BASE64URL_32_KEYS)."""
    if key in BASE64URL_32_KEYS:
        return base64.urlsafe_b64encode(_secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    n = length or GENERATED_LENGTH.get(key, DEFAULT_GENERATED_LENGTH)
    while True:
        value = "".join(_secrets.choice(_ALPHABET) for dummy in range(n))
        # Dify's password rule wants a letter and a digit; apply it to all
        # keys, it costs nothing and keeps every value acceptable to it.
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def is_sample_value(value):
    return isinstance(value, str) and value.strip().lower() in SAMPLE_SECRETS


def check_secret(key, value):
    """The problem with ``value`` for ``key`` (a sentence), or None when it is acceptable."""
    if value is None or (isinstance(value, str) and value == ""):
        return "%s is empty; remove the key so it is generated, or set a random value" % key
    if not isinstance(value, str):
        return (
            "%s must be a string, got %s; quote it in YAML or remove it so it is generated"
            % (key, type(value).__name__)
        )
    if is_sample_value(value):
        return (
            "%s is one of Dify's public sample values; anyone can read it in Dify's "
            "repository. Remove the key from the secrets file so a random value is "
            "generated, or set your own random value (e.g. openssl rand -hex 24)" % key
        )
    if any(c.isspace() for c in value):
        return "%s contains whitespace; use a value without spaces or line breaks" % key
    if key in BASE64URL_32_KEYS:
        return _base64url_32_problem(key, value)
    minimum = MIN_LENGTH.get(key, DEFAULT_MIN_LENGTH)
    if len(value) < minimum:
        return (
            "%s is too short (%d characters, at least %d needed); remove the key so a "
            "random value is generated, or set a longer one" % (key, len(value), minimum)
        )
    if key == "init_password":
        if len(value) > INIT_PASSWORD_MAX_LENGTH:
            return "init_password is longer than Dify's limit of %d characters" % INIT_PASSWORD_MAX_LENGTH
        if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
            return "init_password needs at least one letter and one digit (Dify's password rule)"
    return None


_BASE64URL = re.compile(r"\A[A-Za-z0-9_-]+\Z")


def _base64url_32_problem(key, value):
    fix = "remove the key so it is generated, or set one (e.g. openssl rand 32 | basenc --base64url | tr -d =)"
    if not _BASE64URL.match(value):
        return "%s must be unpadded base64url text (A-Z a-z 0-9 - _, no '='); %s" % (key, fix)
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return "%s is not valid base64url text; %s" % (key, fix)
    if len(decoded) != 32:
        return "%s must decode to exactly 32 bytes (it decodes to %d); %s" % (key, len(decoded), fix)
    return None


def find_sample_secrets(mapping):
    """Keys of ``mapping`` whose value is one of Dify's public sample values.

    Works on any flat mapping (the secrets dict, a role's variables, an env
    dict such as {"SECRET_KEY": ...}); returns a sorted list of key names.
    """
    if not isinstance(mapping, dict):
        return []
    return sorted(str(k) for k, v in mapping.items() if is_sample_value(v))


def find_problems(mapping, keys=None):
    """Every problem of the secrets dict: a list of sentences, one per bad key."""
    problems = []
    for key in sorted(mapping):
        if keys is not None and key not in keys:
            continue
        problem = check_secret(key, mapping[key])
        if problem:
            problems.append(problem)
    return problems


def missing_keys(existing, wanted):
    return [k for k in wanted if k not in existing]


def is_vault_file(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError:
        return False


def parse_file(text, path):
    """The secrets dict held in a plain YAML secrets file's text."""
    import yaml  # controller side only

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SecretsError("%s is not valid YAML (%s); fix it by hand, nothing was changed" % (path, exc))
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) != {FILE_TOP_KEY} or not isinstance(data[FILE_TOP_KEY], (dict, type(None))):
        raise SecretsError(
            "%s must hold one mapping named %s (\"%s:\" followed by indented key: value "
            "lines); fix the file by hand, nothing was changed" % (path, FILE_TOP_KEY, FILE_TOP_KEY)
        )
    return dict(data[FILE_TOP_KEY] or {})


def render_file(mapping):
    """The text of a plain secrets file for ``mapping`` (keys sorted, values quoted)."""
    import yaml

    body = yaml.safe_dump(
        {FILE_TOP_KEY: {k: mapping[k] for k in sorted(mapping)}},
        default_flow_style=False,
        default_style=None,
        sort_keys=True,
        width=1000,
    )
    return (
        "# Secrets of one Dify fleet, generated by difyops.fleet.fleet_secrets.\n"
        "# Never regenerated: a key is only added when missing. Keep this file\n"
        "# private (mode 0600) or encrypt it: ansible-vault encrypt <this file>.\n"
        "---\n" + body
    )


def redact(text, secrets, min_length=6):
    """``text`` with every secret value of ``secrets`` replaced by MASK.

    ``secrets`` is a mapping (its values count), or a list of values. Values
    shorter than ``min_length`` are left alone: they would mask ordinary words
    and no fleet secret is that short. Longer values go first, so a secret that
    contains another is masked whole.
    """
    if text is None:
        return ""
    text = str(text)
    values = secrets.values() if isinstance(secrets, dict) else (secrets or ())
    wanted = sorted(set(str(v) for v in values
                        if isinstance(v, (str, int)) and not isinstance(v, bool) and len(str(v)) >= min_length),
                    key=len, reverse=True)
    for value in wanted:
        text = text.replace(value, MASK)
    return text


def failure_summary(result, secrets):
    """One line per failed item of a task result whose output was hidden (no_log).

    ``result`` is a registered result or ``ansible_failed_result``: a loop's
    ``results`` list or one result. Each line names the item, the module's
    message and, for a container that reported health, its last health check
    output; every value of ``secrets`` is masked (see redact).
    """
    result = result or {}
    items = result.get("results") if isinstance(result, dict) and "results" in result else [result]
    lines = []
    for res in items or ():
        if not isinstance(res, dict) or not res.get("failed"):
            continue
        line = str(res.get("msg") or "failed")
        state = ((res.get("container") or {}).get("State") or {}) if isinstance(res.get("container"), dict) else {}
        health = state.get("Health") or {}
        log = health.get("Log") or []
        if health.get("Status"):
            line += "; health %s" % health["Status"]
            if log and isinstance(log[-1], dict) and log[-1].get("Output"):
                line += ": %s" % str(log[-1]["Output"]).strip()[-400:]
        output = (res.get("container") or {}).get("Output") if isinstance(res.get("container"), dict) else None
        if output:
            line += "; last output: %s" % str(output).strip()[-800:]
        if "item" in res:
            line = "%s: %s" % (res.get("_ansible_item_label", res["item"]), line)
        lines.append(redact(line, secrets))
    return lines


def masked_view(mapping, generated=(), rotated=()):
    """Diff text of the secrets dict with every value hidden."""
    lines = []
    for key in sorted(mapping):
        if key in rotated:
            tag = "<rotated>"
        elif key in generated:
            tag = "<generated>"
        else:
            tag = MASK
        lines.append("  %s: %s\n" % (key, tag))
    return "%s:\n%s" % (FILE_TOP_KEY, "".join(lines))


def plan(existing, wanted, rotate=()):
    """Decide what changes: (new mapping, generated keys, rotated keys).

    ``existing`` is never modified; keys present there keep their value unless
    listed in ``rotate``.
    """
    for key in rotate:
        if key in NOT_ROTATABLE:
            raise SecretsError("%s cannot be rotated: %s" % (key, NOT_ROTATABLE[key]))
        if key not in KNOWN_KEYS:
            raise SecretsError(
                "rotate names %r, which is not a fleet secret; known keys: %s" % (key, ", ".join(KNOWN_KEYS))
            )
        if key not in existing:
            raise SecretsError("rotate names %s, which does not exist yet; run without rotate to generate it" % key)
    new = dict(existing)
    generated = []
    for key in wanted:
        if key not in new:
            new[key] = generate(key)
            generated.append(key)
    rotated = []
    for key in rotate:
        value = generate(key)
        while value == existing[key]:  # pragma: no cover - astronomically unlikely
            value = generate(key)
        new[key] = value
        rotated.append(key)
    return new, generated, rotated


def backup_path(path, now=None):
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    return "%s.%s.bak" % (path, stamp)


def write_private(path, text):
    """Write ``text`` to ``path`` atomically with mode 0600 (directory 0700 if created)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".difyops-secrets-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def copy_private(src, dest):
    """Copy ``src`` to a new file ``dest`` with mode 0600 (never overwrites)."""
    with open(src, "rb") as fh:
        data = fh.read()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return dest


_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(text):
    return _NAME_UNSAFE.sub("-", text).strip("-.") or "inventory"


def secrets_file_location(sources, base, inventory_name=None, secrets_file=None, isdir=os.path.isdir):
    """Where the fleet's secrets file is: ``{path, name, source, legacy_path, problem}``.

    One secrets file per inventory source, so two inventories never share
    their secrets. ``sources`` is ``ansible_inventory_sources``; ``base`` the
    directory a relative path is resolved against (that of ansible.cfg).

    - ``secrets_file`` (``difyops_secrets_file``) wins; else the name is
      ``inventory_name`` (``difyops_inventory_name``); else it comes from
      the one inventory source: a directory gives its own name
      (``inventories/lab`` -> ``lab``, the name fleets always had), a file
      its directory's name and its own without extension
      (``inventories/prod/staging.yml`` -> ``prod-staging``).
    - Several sources, or a source that is not a path (``-i host1,host2,``),
      name no file: ``problem`` says so and how to fix it (``path`` is '').
    - ``legacy_path``: the file earlier releases used for a file source
      (named after its directory only), else ''; shown when the new file is
      missing on a deployed fleet.
    """
    out = {"path": "", "name": "", "source": "", "legacy_path": "", "problem": ""}

    def resolve(name):
        return os.path.normpath(name if os.path.isabs(name) else os.path.join(base or ".", name))

    if secrets_file:
        out["path"] = resolve(str(secrets_file))
        return out
    if isinstance(sources, str):
        sources = [sources]
    unique = []
    for source in sources or []:
        source = str(source)
        norm = os.path.normpath(source) if source and "," not in source else source
        if norm and norm not in unique:
            unique.append(norm)
    if inventory_name:
        name = str(inventory_name)
    elif len(unique) != 1:
        out["problem"] = (
            "%s inventory sources were given (%s), and the secrets file is named after the inventory: "
            "each inventory has its own secrets. Give one inventory (-i DIRECTORY or -i FILE), or say "
            "which secrets this fleet uses: difyops_inventory_name (secrets/<name>.yml) or "
            "difyops_secrets_file (a path)." % (len(unique) or "No", ", ".join(unique) or "none"))
        return out
    else:
        source = unique[0]
        out["source"] = source
        if "," in source:
            out["problem"] = (
                "The inventory %s is a host list, not a file or directory, so it names no secrets file. "
                "Set difyops_inventory_name (secrets/<name>.yml) or difyops_secrets_file (a path)." % source)
            return out
        if isdir(source):
            name = _safe_name(os.path.basename(source))
        else:
            directory = _safe_name(os.path.basename(os.path.dirname(source)))
            stem = _safe_name(os.path.splitext(os.path.basename(source))[0])
            name = "%s-%s" % (directory, stem)
            out["legacy_path"] = resolve("secrets/%s.yml" % directory)
    if "/" in name or name in (".", ".."):
        out["problem"] = ("difyops_inventory_name=%r: give a plain name (letters, digits, . _ -); the secrets "
                          "file is secrets/<name>.yml. For another place set difyops_secrets_file." % name)
        return out
    out["name"] = name
    out["path"] = resolve("secrets/%s.yml" % name)
    return out

# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fleet preflight: every rule a fleet must meet before any host is changed.

Pure functions over the inventory (groups, per-host variables and facts) and
the roles' argument specs. Each problem is one sentence naming the host(s),
the variable, the value and the fix; all problems are returned together.
The capacity rules (one beat host, sentinel count, connection budget,
memory) belong to the capacity plan (capacity_plan.py); the preflight module
merges its errors so the user sees everything at once.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import difflib
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.six import string_types

from ansible_collections.difyops.fleet.plugins.module_utils.fleet import FLEET_GROUPS
from ansible_collections.difyops.fleet.plugins.module_utils.secrets import is_sample_value

SUPPORTED_RELEASES = ("bookworm", "trixie")
SUPPORTED_VERSIONS = {"bookworm": "12", "trixie": "13"}

# Groups a working Dify fleet cannot do without. dify_beat (exactly one) and
# dify_sentinel (odd, >= 3 with HA) are counted by the capacity plan.
REQUIRED_GROUPS = (
    "dify_postgres",
    "dify_redis",
    "dify_api",
    "dify_worker",
    "dify_web",
    "dify_sandbox",
    "dify_plugin_daemon",
    "dify_ssrf_proxy",
    "dify_edge",
)

# What each group runs, for messages.
GROUP_PURPOSE = {
    "dify_postgres": "PostgreSQL (Dify's database)",
    "dify_redis": "Redis (cache and Celery broker)",
    "dify_api": "the Dify api",
    "dify_worker": "the Celery workers",
    "dify_web": "the Dify web front end",
    "dify_sandbox": "dify-sandbox (code execution)",
    "dify_plugin_daemon": "the plugin daemon",
    "dify_ssrf_proxy": "the squid SSRF proxy",
    "dify_edge": "nginx (the public entry point)",
}

# Variable names that hold a credential: their values are checked against
# Dify's public sample secrets (everything under difyops_secrets is too).
SECRET_NAME_RE = re.compile(r"(pass|secret|key|token|cipher|credential|auth)", re.IGNORECASE)

# Variables Ansible itself puts in hostvars; never inventory input.
MAGIC_VARS = frozenset((
    "groups", "group_names", "hostvars", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "inventory_file", "omit", "playbook_dir", "play_hosts", "role_names",
    "ansible_play_hosts", "ansible_play_batch", "ansible_play_hosts_all", "ansible_play_role_names",
    "ansible_role_names", "ansible_version", "ansible_check_mode", "ansible_diff_mode",
    "ansible_forks", "ansible_inventory_sources", "ansible_run_tags", "ansible_skip_tags",
    "ansible_verbosity", "ansible_config_file", "ansible_playbook_python", "ansible_facts",
    "ansible_local", "module_setup", "difyops_plan",
))

# Variables not in any role's argument spec that the fleet still reads
# (the capacity plan's inputs); never reported as misspelt.
FLEET_VARIABLES = frozenset((
    "difyops_memory_mb", "difyops_cpus", "difyops_memory_weights", "difyops_ha",
    "difyops_address", "difyops_secrets", "difyops_secrets_file", "difyops_fleet_hosts",
    "difyops_pg_admin_connections", "difyops_pg_superuser_reserved_connections",
))


def _is_template(value):
    return isinstance(value, string_types) and ("{{" in value or "{%" in value)


def _host_facts(hv):
    facts = hv.get("ansible_facts") if isinstance(hv, dict) else None
    return facts if isinstance(facts, dict) else {}


def _fact(hv, name):
    facts = _host_facts(hv)
    if name in facts:
        return facts[name]
    return hv.get("ansible_" + name) if isinstance(hv, dict) else None


def fleet_hosts(groups):
    """Hosts of the fleet groups, in inventory order, each once."""
    seen = []
    for group in FLEET_GROUPS:
        for host in groups.get(group) or []:
            if host not in seen:
                seen.append(host)
    return seen


def _hosts_text(hosts):
    hosts = list(hosts)
    if len(hosts) <= 4:
        return ", ".join(hosts)
    return "%s and %d more" % (", ".join(hosts[:3]), len(hosts) - 3)


def check_groups(groups, required=REQUIRED_GROUPS):
    errors = []
    for group in required:
        if group == "dify_postgres" and groups.get("dify_mysql"):
            continue  # Dify's database is MySQL (DB_TYPE=mysql)
        if not (groups.get(group) or []):
            errors.append(
                "group %s is empty: no host runs %s. Add at least one host to [%s] in the inventory "
                "(one host may sit in several groups)." % (group, GROUP_PURPOSE.get(group, group), group)
            )
    return errors


def check_facts(groups, hostvars, unreachable=()):
    """Every fleet host answers, has facts, and runs a supported Debian."""
    errors = []
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        if host in unreachable:
            errors.append(
                "%s: cannot be reached (ansible_host=%s, ansible_connection=%s), so nothing may be "
                "changed on the fleet. Fix the address or SSH access (ansible %s -m ansible.builtin.ping) "
                "or remove it from the inventory." % (host, hv.get("ansible_host", host),
                                                      hv.get("ansible_connection", "ssh"), host)
            )
            continue
        distribution = _fact(hv, "distribution")
        if not distribution:
            errors.append(
                "%s: no facts could be gathered (ansible_facts is empty), so it cannot be checked or "
                "sized. Make it reachable (ansible %s -m ansible.builtin.ping) or remove it from the "
                "inventory." % (host, host)
            )
            continue
        release = _fact(hv, "distribution_release")
        version = _fact(hv, "distribution_major_version")
        if distribution != "Debian" or release not in SUPPORTED_RELEASES:
            errors.append(
                "%s: runs %s %s (%s); difyops.fleet supports Debian 12 (bookworm) and 13 (trixie). "
                "Reinstall the host with Debian 12 or 13, or remove it from the inventory."
                % (host, distribution, version, release)
            )
    return errors


def check_tls(groups, hostvars):
    """An edge host serving HTTPS needs its public name."""
    errors = []
    for host in groups.get("dify_edge") or []:
        hv = hostvars.get(host) or {}
        tls = hv.get("nginx_tls_enabled", True)
        if isinstance(tls, string_types):
            tls = tls.strip().lower() in ("1", "true", "yes", "on")
        name = hv.get("nginx_server_name", "")
        if tls and not (isinstance(name, string_types) and name.strip()):
            errors.append(
                "%s: nginx_tls_enabled is true but nginx_server_name is %r; certbot needs the public "
                "DNS name. Set nginx_server_name: dify.example.com (group_vars/dify_edge), or set "
                "nginx_tls_enabled: false to serve plain HTTP." % (host, name)
            )
    return errors


STORAGE_SHARED_BACKENDS = ("nfs", "shared", "s3")


def _literal(hv, name, default):
    """A variable's value, or None when it is a template preflight cannot render."""
    value = hv.get(name, default)
    return None if _is_template(value) else value


def check_storage(groups, hostvars):
    """Several api/worker hosts need one shared file storage; several plugin daemons need S3."""
    errors = []
    app_hosts = []
    for group in ("dify_api", "dify_worker"):
        for host in groups.get(group) or []:
            if host not in app_hosts:
                app_hosts.append(host)
    local = [h for h in app_hosts if _literal(hostvars.get(h) or {}, "storage_backend", "local") == "local"]
    if len(app_hosts) > 1 and local:
        errors.append(
            "%s: storage_backend is 'local' but the fleet has %d api/worker hosts (%s); each would keep "
            "its own uploads and the others would not find them. Set storage_backend: nfs with "
            "storage_nfs_src: <server>:/<export>, storage_backend: shared with storage_path on a filesystem "
            "you already mount on every api/worker host, or storage_backend: s3 with storage_s3_bucket "
            "(group_vars/all)." % (_hosts_text(local), len(app_hosts), _hosts_text(app_hosts))
        )
    daemons = list(groups.get("dify_plugin_daemon") or [])
    if len(daemons) > 1:
        local_plugin = []
        for host in daemons:
            hv = hostvars.get(host) or {}
            backend = _literal(hv, "storage_backend", "local")
            plugin = _literal(hv, "storage_plugin_backend", "aws_s3" if backend == "s3" else "local")
            if plugin == "local":
                local_plugin.append(host)
        if local_plugin:
            errors.append(
                "%s: storage_plugin_backend is 'local' but there are %d dify_plugin_daemon hosts (%s); "
                "installed plugins would exist on one of them only. Keep one plugin daemon host, or set "
                "storage_plugin_backend: aws_s3 with storage_plugin_s3_bucket."
                % (_hosts_text(local_plugin), len(daemons), _hosts_text(daemons))
            )
    return errors


def check_database(groups, hostvars):
    """One MySQL host at most; DB_TYPE=mysql with pgvector needs a PostgreSQL host."""
    errors = []
    mysql = list(groups.get("dify_mysql") or [])
    postgres = list(groups.get("dify_postgres") or [])
    if len(mysql) > 1:
        errors.append(
            "group dify_mysql has %d hosts (%s); the mysql role runs one MariaDB server and separate servers "
            "would hold different data. Keep one host in [dify_mysql]." % (len(mysql), _hosts_text(mysql)))
    app = []
    for group in ("dify_api", "dify_worker", "dify_beat"):
        for host in groups.get(group) or []:
            if host not in app:
                app.append(host)
    default_type = "mysql" if (mysql and not postgres) else "postgresql"
    for host in app:
        hv = hostvars.get(host) or {}
        db_type = _literal(hv, "dify_db_type", default_type)
        store = _literal(hv, "dify_vector_store", "pgvector")
        pgv_host = _literal(hv, "dify_pgvector_host", "")
        if db_type == "mysql" and not mysql and not _literal(hv, "dify_db_host", ""):
            errors.append(
                "%s: dify_db_type is 'mysql' but group dify_mysql is empty and dify_db_host is not set; add the "
                "MariaDB host to [dify_mysql] (role mysql) or set dify_db_host to your MySQL server." % host)
            break
        if db_type == "mysql" and store == "pgvector" and not postgres and not pgv_host:
            errors.append(
                "%s: dify_db_type is 'mysql' and dify_vector_store is 'pgvector', but there is no PostgreSQL for "
                "the vectors (group dify_postgres is empty, dify_pgvector_host unset). Set dify_vector_store: "
                "weaviate or qdrant (with a dify_vector host or an external endpoint), or add a dify_postgres "
                "host for pgvector." % host)
            break
    return errors


def _walk(value, path):
    """(path, leaf) for every leaf of nested dicts/lists."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, "%s.%s" % (path, k) if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, "%s[%d]" % (path, i))
    else:
        yield path, value


def _is_inventory_var(name):
    return (isinstance(name, string_types) and name not in MAGIC_VARS
            and not name.startswith("ansible_") and not name.startswith("__"))


# ansible_* variables the checks read (facts and connection settings).
CHECKED_ANSIBLE_VARS = frozenset((
    "ansible_facts", "ansible_host", "ansible_connection", "ansible_distribution",
    "ansible_distribution_release", "ansible_distribution_major_version",
))


def is_checked_var(name):
    """Whether preflight reads this host variable (inventory variables and a few facts)."""
    return _is_inventory_var(name) or name in CHECKED_ANSIBLE_VARS


def _inventory_vars(groups, hostvars):
    """(host, name, value) for every inventory variable of every fleet host."""
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        for name in sorted(hv):
            if _is_inventory_var(name):
                yield host, name, hv[name]


def check_sample_secrets(groups, hostvars):
    """No variable that holds a credential carries one of Dify's public sample values."""
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        for path, leaf in _walk(value, name):
            if not is_sample_value(leaf):
                continue
            last = re.split(r"[.\[]", path)[-1]
            if not (name == "difyops_secrets" or SECRET_NAME_RE.search(last) or SECRET_NAME_RE.search(path)):
                continue
            found.setdefault((path, leaf), []).append(host)
    errors = []
    for (path, leaf), hosts in sorted(found.items()):
        errors.append(
            "%s: %s is %r, one of Dify's public sample secrets that anyone can read in Dify's "
            "repository. Remove it from the inventory so difyops_secrets supplies a generated value, "
            "or set your own random value (e.g. openssl rand -hex 24), ideally in an ansible-vault file."
            % (_hosts_text(hosts), path, leaf)
        )
    return errors


def _role_options(argument_specs):
    """role -> options of its main entry point."""
    out = {}
    for role, spec in (argument_specs or {}).items():
        if not isinstance(spec, dict):
            continue
        entry = spec.get("argument_specs", spec)
        main = entry.get("main") if isinstance(entry, dict) else None
        options = (main or {}).get("options") if isinstance(main, dict) else None
        if isinstance(options, dict):
            out[role] = options
    return out


def _owner(name, roles):
    """The role whose prefix the variable carries (longest prefix wins)."""
    best = None
    for role in roles:
        if name.startswith(role + "_") and (best is None or len(role) > len(best)):
            best = role
    return best


def _strip_required(spec):
    """A copy of an option spec that validates a value given alone."""
    spec = dict(spec)
    for key in ("required", "default", "description", "version_added", "aliases"):
        spec.pop(key, None)
    if isinstance(spec.get("options"), dict):
        spec["options"] = dict((k, _strip_required(v)) for k, v in spec["options"].items()
                               if isinstance(v, dict))
    return spec


def _first_sentence(text):
    text = " ".join(str(text).split())
    return text.split("; ", maxsplit=1)[0]


def check_argument_specs(groups, hostvars, argument_specs):
    """Variables set in the inventory against the roles' argument specs.

    A variable carrying a role's prefix is validated with that role's spec
    (type, choices, elements); one that is not in the spec but is close to a
    name that is, is reported as a likely misspelling.
    """
    options_by_role = _role_options(argument_specs)
    known = set(FLEET_VARIABLES)
    for options in options_by_role.values():
        known.update(options)
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        role = _owner(name, options_by_role)
        if role is None or _is_template(value):
            continue
        options = options_by_role[role]
        if name not in options:
            if name in known:
                continue
            close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.8)
            if close:
                msg = ("%s is not a variable of role %s (did you mean %s?); the role would ignore it. "
                       "Rename it in the inventory." % (name, role, close[0]))
                found.setdefault(msg, []).append(host)
            continue
        spec = _strip_required(options[name])
        validator = ArgumentSpecValidator({name: spec})
        result = validator.validate({name: value})
        for err in result.error_messages:
            msg = ("%s = %r is refused by role %s's argument spec: %s. Fix the value in the "
                   "inventory (expected %s%s)." % (
                       name, value, role, _first_sentence(err), spec.get("type", "str"),
                       (", one of %s" % ", ".join(str(c) for c in spec["choices"]))
                       if spec.get("choices") else ""))
            found.setdefault(msg, []).append(host)
    return ["%s: %s" % (_hosts_text(hosts), msg) for msg, hosts in sorted(found.items())]


def check_fleet(groups, hostvars, argument_specs=None, plan_errors=(), required_groups=REQUIRED_GROUPS,
                unreachable=()):
    """Every problem of the fleet, in a stable order (empty list: the fleet may be converged)."""
    groups = groups or {}
    hostvars = hostvars or {}
    errors = []
    errors.extend(check_groups(groups, required_groups))
    errors.extend(check_facts(groups, hostvars, unreachable or ()))
    errors.extend(check_argument_specs(groups, hostvars, argument_specs))
    errors.extend(check_tls(groups, hostvars))
    errors.extend(check_storage(groups, hostvars))
    errors.extend(check_database(groups, hostvars))
    errors.extend(check_sample_secrets(groups, hostvars))
    for err in plan_errors or ():
        if err not in errors:
            errors.append("capacity plan: %s" % err)
    return errors


def format_errors(errors):
    """One message listing every problem."""
    lines = ["Preflight refused the fleet; nothing was changed. %d problem%s:"
             % (len(errors), "" if len(errors) == 1 else "s")]
    for i, err in enumerate(errors, 1):
        lines.append("%d. %s" % (i, err))
    return "\n".join(lines)

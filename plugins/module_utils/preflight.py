# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fleet preflight: every rule a fleet must meet before any host is changed.

Pure functions over the inventory (groups, per-host variables and facts) and
the roles' argument specs. Each problem is one sentence naming the host(s),
the variable, the value and the fix; all problems are returned together.
Host counts (a required group is empty, exactly one beat, at most one plugin
daemon or MySQL host, odd Sentinels >= 3 for HA) come from the catalog
(catalog.py); the capacity rules (connection budget, memory) belong to the
capacity plan (capacity_plan.py), whose errors the preflight module merges
so the user sees everything at once.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import difflib
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.six import string_types

from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import knobs
from ansible_collections.difyops.fleet.plugins.module_utils.secrets import is_sample_value, redact

SUPPORTED_RELEASES = catalog.SUPPORTED_RELEASES

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

# Variables not in any role's argument spec that the fleet still reads (the
# capacity plan's knobs, knobs.py, and the playbooks' own); never reported as
# misspelt.
FLEET_VARIABLES = frozenset(knobs.NAMES + (
    "difyops_ha", "difyops_address", "difyops_secrets", "difyops_secrets_file", "difyops_fleet_hosts",
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


fleet_hosts = catalog.fleet_hosts


def ha_wanted(groups, hostvars):
    """Whether the fleet asks for high availability: ``difyops_ha`` (read on the
    first Sentinel or Redis host; group_vars/all reaches every host), else yes
    when there is something to fail over to (2+ Redis hosts)."""
    hosts = catalog.members(groups, "dify_sentinel") or catalog.members(groups, "dify_redis")
    value = (hostvars.get(hosts[0]) or {}).get("difyops_ha") if hosts else None
    if value is None or value == "" or _is_template(value):
        return len(catalog.members(groups, "dify_redis")) > 1
    return str(value).strip().lower() not in ("false", "no", "0", "off")


def check_groups(groups, hostvars=None):
    """Every group holds as many hosts as the catalog says (required, at most, exactly, odd for HA)."""
    return catalog.count_problems(groups, ha=ha_wanted(groups, hostvars or {}))


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
                "%s: runs %s %s (%s); difyops.fleet supports %s. Reinstall the host with one of those, or "
                "remove it from the inventory." % (host, distribution, version, release, _supported_text())
            )
    return errors


def _supported_text():
    return "Debian " + " and ".join("%s (%s)" % (catalog.PLATFORMS[r]["major"], r) for r in sorted(
        SUPPORTED_RELEASES, key=lambda r: int(catalog.PLATFORMS[r]["major"])))


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
    """Several api/worker hosts need one shared file storage (one plugin daemon host: the catalog)."""
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
            "(group_vars/all)." % (catalog.hosts_text(local), len(app_hosts), catalog.hosts_text(app_hosts))
        )
    return errors


def check_database(groups, hostvars):
    """DB_TYPE=mysql needs a MySQL server; with pgvector, a PostgreSQL host too (one
    dify_mysql host at most: the catalog)."""
    errors = []
    mysql = list(groups.get("dify_mysql") or [])
    postgres = list(groups.get("dify_postgres") or [])
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


# Dify releases whose api splits every REDIS_SENTINELS entry on ':'
# (api/extensions/ext_redis.py: host = node.split(":")[0]), so an IPv6
# Sentinel address cannot work; module_utils/dify_contract.py refuses the
# rendered value too.
SENTINELS_SPLIT_ON_COLON = ("1.13.3", "1.16.1")
DEFAULT_DIFY_VERSION = "1.13.3"


def _is_ipv6_endpoint(entry):
    text = str(entry).strip()
    return text.startswith("[") or text.count(":") > 1


def check_sentinel_addresses(groups, hostvars):
    """Dify 1.13.3 and 1.16.1 cannot reach a Sentinel at an IPv6 address.

    The Sentinels Dify is given are ``dify_redis_sentinels`` where the
    inventory sets it for an app host, else the addresses of the
    dify_sentinel hosts (difyops_address, the default IPv4 fact, ansible_host).
    """
    sentinels = list(groups.get("dify_sentinel") or [])
    if not sentinels:
        return []
    addresses = {}
    for host in sentinels:
        hv = hostvars.get(host) or {}
        explicit = hv.get("difyops_address")
        facts = _host_facts(hv)
        ipv4 = (facts.get("default_ipv4") or hv.get("ansible_default_ipv4") or {}) if isinstance(hv, dict) else {}
        addr = explicit or (ipv4.get("address") if isinstance(ipv4, dict) else None) or hv.get("ansible_host") or host
        addresses[host] = addr
    found = {}
    for group in ("dify_api", "dify_worker", "dify_beat", "dify_plugin_daemon"):
        for host in groups.get(group) or []:
            hv = hostvars.get(host) or {}
            version = _literal(hv, "dify_version", DEFAULT_DIFY_VERSION)
            if version is not None and str(version) not in SENTINELS_SPLIT_ON_COLON:
                continue
            given = _literal(hv, "dify_redis_sentinels", None)
            if isinstance(given, (list, tuple)):
                bad = [str(e) for e in given if _is_ipv6_endpoint(e)]
                where = "dify_redis_sentinels"
            elif given is None and "dify_redis_sentinels" not in hv:
                bad = ["%s (%s)" % (addresses[s], s) for s in sentinels if _is_ipv6_endpoint(addresses[s])]
                where = "the addresses of the dify_sentinel hosts"
            else:
                continue
            if bad:
                found.setdefault((where, tuple(bad), str(version or DEFAULT_DIFY_VERSION)), []).append(host)
    errors = []
    for (where, bad, version), hosts in sorted(found.items()):
        errors.append(
            "%s: %s include IPv6 addresses (%s), but Dify %s splits every REDIS_SENTINELS entry on ':' "
            "(api/extensions/ext_redis.py), so it cannot reach those Sentinels. Give Dify the Sentinels by "
            "host name: set dify_redis_sentinels: [sentinel-1.example.net:26379, ...] (names the app hosts "
            "resolve; group_vars/all), or give the Sentinel hosts IPv4 addresses (difyops_address)."
            % (catalog.hosts_text(sorted(set(hosts), key=hosts.index)), where, ", ".join(bad), version))
    return errors


def check_vector(groups, hostvars):
    """With hosts in dify_vector, Dify's store is the one its first host runs."""
    vec = catalog.members(groups, "dify_vector")
    if not vec:
        return []
    first = hostvars.get(vec[0]) or {}
    engine = _literal(first, "vector_store_engine", None) or _literal(first, "dify_vector_store", "weaviate")
    wrong = []
    for host in catalog.members(groups, "dify_api") + catalog.members(groups, "dify_worker"):
        store = _literal(hostvars.get(host) or {}, "dify_vector_store", "pgvector")
        if engine and store and store != engine and host not in wrong:
            wrong.append(host)
    if not wrong:
        return []
    store = _literal(hostvars.get(wrong[0]) or {}, "dify_vector_store", "pgvector")
    return ["%s: dify_vector_store is %r but group dify_vector has hosts (%s) whose first host, %s, runs %s "
            "(vector_store_engine, else dify_vector_store there). Set dify_vector_store: %s in group_vars/all so "
            "both sides agree, or empty [dify_vector] to use %s (pgvector, or an external endpoint)."
            % (catalog.hosts_text(wrong), store, catalog.hosts_text(vec), vec[0], engine, engine, store)]


def _leaves(value):
    """Every scalar inside a value, as strings (what a refusal must not print when it is secret)."""
    return [str(leaf) for _path, leaf in _walk(value, "") if leaf is not None]


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


# Names whose value a refusal must not print (narrower than SECRET_NAME_RE:
# certbot_key_type or nginx_tls_ciphers are shown).
SECRET_VALUE_RE = re.compile(r"(password|passwd|_pass|secret|api_key|access_key|_s3_key|_token|_dsn)(_|$)",
                             re.IGNORECASE)


def _is_secret(name, spec=None):
    """Whether a variable holds a credential (by its name, or no_log in its argument spec)."""
    return bool(SECRET_VALUE_RE.search(name) or (spec or {}).get("no_log"))


def shown(name, value, spec=None):
    """How a refusal shows a variable's value: as written, or only its shape when it is a secret."""
    if not _is_secret(name, spec):
        return repr(value)
    if isinstance(value, string_types):
        return "a string of %d characters (not shown: %s holds a credential)" % (len(value), name)
    return "a %s (not shown: %s holds a credential)" % (type(value).__name__, name)


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
            % (catalog.hosts_text(hosts), path, leaf)
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
            names = list(options) + [k for k in knobs.NAMES if _owner(k, options_by_role) == role]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
            if close:
                msg = ("%s is not a variable of role %s (did you mean %s?); the role would ignore it. "
                       "Rename it in the inventory." % (name, role, close[0]))
                found.setdefault(msg, []).append(host)
            continue
        spec = _strip_required(options[name])
        validator = ArgumentSpecValidator({name: spec})
        result = validator.validate({name: value})
        secret = _is_secret(name, spec)
        for err in result.error_messages:
            reason = _first_sentence(redact(err, _leaves(value), min_length=3) if secret else err)
            msg = ("%s = %s is refused by role %s's argument spec: %s. Fix the value in the "
                   "inventory (expected %s%s)." % (
                       name, shown(name, value, spec), role, reason, spec.get("type", "str"),
                       (", one of %s" % ", ".join(str(c) for c in spec["choices"]))
                       if spec.get("choices") else ""))
            found.setdefault(msg, []).append(host)
    return ["%s: %s" % (catalog.hosts_text(hosts), msg) for msg, hosts in sorted(found.items())]


def check_fleet(groups, hostvars, argument_specs=None, plan_errors=(), unreachable=()):
    """Every problem of the fleet, in a stable order (empty list: the fleet may be converged)."""
    groups = groups or {}
    hostvars = hostvars or {}
    errors = []
    errors.extend(check_groups(groups, hostvars))
    errors.extend(check_facts(groups, hostvars, unreachable or ()))
    errors.extend(check_argument_specs(groups, hostvars, argument_specs))
    errors.extend(check_tls(groups, hostvars))
    errors.extend(check_storage(groups, hostvars))
    errors.extend(check_database(groups, hostvars))
    errors.extend(check_sentinel_addresses(groups, hostvars))
    errors.extend(check_vector(groups, hostvars))
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

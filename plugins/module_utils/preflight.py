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
so the user sees everything at once. The mistakes operators make copying
from docs (addresses, public names, allow-lists, versions, URLs, values that
must be one for the fleet, sizes in the wrong unit) are MISTAKE_RULES.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import difflib
import ipaddress
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.six import string_types

from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import knobs
from ansible_collections.difyops.fleet.plugins.module_utils.secrets import check_secret, is_sample_value, redact

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
    "difyops_allow_public_addresses",
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
            version = _literal(hv, "dify_version", _dify_versions()[1])
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
                found.setdefault((where, tuple(bad), str(version or _dify_versions()[1])), []).append(host)
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
    "ansible_distribution_release", "ansible_distribution_major_version", "ansible_port",
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


# --------------------------------------------------------------------------
# Mistakes operators make copying from docs (issue 14). Each rule is one
# function returning sentences that name the host(s), the variable, the value
# (its shape only when it is a credential: shown()) and the fix. Templates are
# never judged. Group names, ports and releases come from the catalog, sizes
# from knobs/capacity, Dify releases from dify_contract, secret rules from
# secrets.check_secret: no list of names of its own.

def _found_lines(found):
    """{message: [hosts]} as sorted 'hosts: message' lines."""
    return ["%s: %s" % (catalog.hosts_text(hosts), msg) for msg, hosts in sorted(found.items())]


def _add(found, msg, host):
    hosts = found.setdefault(msg, [])
    if host not in hosts:
        hosts.append(host)


def _truthy(value, default=False):
    if value is None or _is_template(value):
        return default
    if isinstance(value, string_types):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _text(hv, name):
    """A literal, non-empty string variable (stripped of nothing), else None."""
    value = _literal(hv, name, None)
    return value if isinstance(value, string_types) and value != "" else None


def _ip(text):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        return None


def _net(text):
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None


def _members(groups, *names):
    out = []
    for name in names:
        for host in catalog.members(groups, name):
            if host not in out:
                out.append(host)
    return out


APP_GROUPS = ("dify_api", "dify_worker", "dify_beat")
# Groups Ansible or the fleet play make themselves.
BUILTIN_GROUPS = ("all", "ungrouped", "dify_fleet")


def _group_key(name):
    return str(name).strip().lower().replace("-", "_").replace(".", "_")


def check_group_names(groups, hostvars):
    """An inventory group that is a catalog group written differently, misspelt, or a bare service name."""
    errors = []
    by_service = dict((s.name, s.group) for s in catalog.SERVICES)
    fleet = set(fleet_hosts(groups))
    for group in sorted(groups):
        hosts = catalog.members(groups, group)
        if group in catalog.FLEET_GROUPS or group in BUILTIN_GROUPS or not hosts:
            continue
        key = _group_key(group)
        close = difflib.get_close_matches(key, catalog.FLEET_GROUPS, n=1, cutoff=0.8)
        if key in catalog.FLEET_GROUPS:
            errors.append("group %s (hosts %s) is not a fleet group: group names are lower case with '_' "
                          "(did you mean %s?). Rename it to [%s] in the inventory."
                          % (group, catalog.hosts_text(hosts), key, key))
        elif close:
            errors.append("group %s (hosts %s) is not a fleet group (did you mean %s?); no role runs on it. "
                          "Rename it to [%s] in the inventory (the groups are listed in docs/DEVELOPING.md)."
                          % (group, catalog.hosts_text(hosts), close[0], close[0]))
        elif by_service.get(key) and not set(hosts) & fleet:
            errors.append("group %s (hosts %s) is named after a service but fleet groups carry the dify_ prefix; "
                          "those hosts are in no fleet group, so nothing would run on them. Rename it to [%s]."
                          % (group, catalog.hosts_text(hosts), by_service[key]))
    return errors


def _port_entries(groups, hostvars, host):
    """(port name, variable, value) of every catalog port this host opens."""
    hv = hostvars.get(host) or {}
    out = []
    exporters = _truthy(hv.get("difyops_exporters_enabled"), False)
    for svc, p in catalog.all_ports():
        if svc.group is None and not exporters:
            continue
        if not any(host in catalog.members(groups, g) for g in (p.on or (svc.group,))):
            continue
        if p.var and _is_template(hv.get(p.var)):
            continue
        try:
            out.append((p.name, p.var, catalog.port_value(p.name, host, groups, hostvars)))
        except catalog.CatalogError:
            out.append((p.name, p.var, None))
    return out


def check_ports(groups, hostvars):
    """Port variables within 1..65535, and no two ports of a host on one number."""
    found = {}
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        seen = {}
        for name, var, port in _port_entries(groups, hostvars, host):
            if port is None:
                _add(found, "%s = %s is not a port; a port is a number from 1 to 65535. Fix it in the inventory "
                            "or remove it for the default." % (var, shown(var, hv.get(var))), host)
                continue
            if port in seen:
                other = seen[port]
                _add(found, "two services would listen on port %d: %s (%s) and %s (%s). Move one of them (set "
                            "its port variable in host_vars) or put the services on different hosts."
                     % (port, other[0], other[1] or "fixed", name, var or "fixed"), host)
            seen.setdefault(port, (name, var))
    return _found_lines(found)


# ---- addresses

def _fleet_address(hv, host):
    """(address, where it comes from) as fleet.host_address computes it."""
    if hv.get("difyops_address"):
        return str(hv["difyops_address"]), "difyops_address"
    ipv4 = _host_facts(hv).get("default_ipv4") or {}
    if isinstance(ipv4, dict) and ipv4.get("address"):
        return str(ipv4["address"]), "fact"
    if hv.get("ansible_host"):
        return str(hv["ansible_host"]), "ansible_host"
    return host, "name"


ADDRESS_VARS = ("difyops_address", "ansible_host")
_DNS_NAME_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")


def _address_form(value):
    """What is wrong with the form of an address (scheme, port, prefix, characters), else None."""
    text = str(value).strip()
    if "://" in text:
        return ("is a URL; give the bare address or host name (%s)"
                % re.sub(r"^[a-z]+://|[:/].*$", "", text, flags=re.I))
    if "/" in text:
        return "carries a prefix length (from `ip addr`?); give the address alone (%s)" % text.split("/", 1)[0]
    if re.match(r"^\[.*\]:\d+$", text) or (text.count(":") == 1 and re.match(r"^[^:]+:\d+$", text)):
        return ("carries a port; give the address alone (%s) and the SSH port as ansible_port"
                % re.sub(r"^\[?([^\]]*?)\]?:\d+$", r"\1", text))
    if _ip(text) is None and not _DNS_NAME_RE.match(text):
        return "is neither an IP address nor a DNS name (letters, digits, '-' and '.'; no '_' or spaces)"
    return None


def check_address_forms(groups, hostvars):
    """difyops_address and ansible_host hold an address or a DNS name, nothing more."""
    found = {}
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        for name in ADDRESS_VARS:
            value = _text(hv, name)
            problem = _address_form(value) if value else None
            if problem:
                _add(found, "%s = %r %s. Fix it in the inventory." % (name, value, problem), host)
    return _found_lines(found)


def _judged_addresses(groups, hostvars):
    """host -> (ip or None, address, source) for hosts whose address says something about the fleet.

    With ansible_connection local every fact is the controller's own (test
    harnesses run a whole fleet that way), so a fact-derived address is not judged.
    """
    out = {}
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        address, source = _fleet_address(hv, host)
        if source == "name" or _is_template(address) or _address_form(address):
            continue
        if source == "fact" and hv.get("ansible_connection") == "local":
            continue
        out[host] = (_ip(address), address, source)
    return out


def _where(source):
    return {"fact": "its default IPv4 address (facts)", "difyops_address": "difyops_address",
            "ansible_host": "ansible_host"}[source]


def check_address_scopes(groups, hostvars):
    """Fleet addresses are private: not public (unless allowed), loopback only alone, never unroutable."""
    found = {}
    judged = _judged_addresses(groups, hostvars)
    several = len(fleet_hosts(groups)) > 1
    for host, (ip, address, source) in judged.items():
        hv = hostvars.get(host) or {}
        if ip is None:
            continue
        if ip.is_loopback:
            if several:
                _add(found, "the fleet address (%s) is %s, a loopback address: the other hosts cannot reach it. "
                            "Set difyops_address to its private address." % (_where(source), address), host)
        elif ip.is_unspecified or ip.is_link_local or ip.is_multicast or str(ip) == "255.255.255.255":
            _add(found, "the fleet address (%s) is %s, which no host can connect to (unspecified, link-local, "
                        "multicast or broadcast). Set difyops_address to its private address."
                 % (_where(source), address), host)
        elif ip.is_global and not _truthy(hv.get("difyops_allow_public_addresses")):
            _add(found, "the fleet address (%s) is %s, a public address: PostgreSQL, Redis and the Dify services "
                        "would listen on it, fenced only by the firewall. Set difyops_address to the host's private "
                        "address (RFC 1918, fd00::/8, 100.64.0.0/10), or difyops_allow_public_addresses: true if the "
                        "fleet really talks over public addresses." % (_where(source), address), host)
    return _found_lines(found)


def check_duplicate_addresses(groups, hostvars):
    """Two fleet hosts never share an address (cloned VMs, NAT addresses, copy-paste)."""
    by_address = {}
    for host, (ip, address, source) in _judged_addresses(groups, hostvars).items():
        by_address.setdefault(str(ip) if ip else address.lower().rstrip("."), []).append((host, source))
    errors = []
    for address, entries in sorted(by_address.items()):
        if len(entries) > 1:
            hosts = [h for h, _s in entries]
            errors.append(
                "%s: all have the fleet address %s (%s), so the others would reach the first of them instead. "
                "Set difyops_address to each host's own private address (NAT'd VMs all report the NAT address, "
                "e.g. 10.0.2.15)." % (catalog.hosts_text(hosts), address,
                                      ", ".join(sorted(set(_where(s) for _h, s in entries)))))
    return errors


# ---- public names (nginx, certbot)

NAME_VARS = ("nginx_server_name", "nginx_server_aliases", "certbot_domains", "certbot_extra_domains")
LETS_ENCRYPT = "letsencrypt.org"


def _public_acme(hv):
    """Whether certificates come from Let's Encrypt (the default ACME server), not a private CA (pebble)."""
    server = _literal(hv, "certbot_acme_server", "")
    return server is not None and (not server or LETS_ENCRYPT in str(server))


def _name_problem(name, tls, public_acme):
    """What is wrong with one public DNS name, or None."""
    text = str(name)
    if "://" in text:
        return "is a URL; give the bare name (%s)" % re.sub(r"^[a-z]+://|[:/].*$", "", text, flags=re.I)
    if "/" in text:
        return "carries a path; give the bare name (%s)" % text.split("/", 1)[0]
    if text.strip() != text or " " in text or "," in text:
        return "holds spaces or several names; give one name here and the others in nginx_server_aliases"
    if re.match(r"^[^:]+:\d+$", text):
        return "carries a port; give the bare name (%s) and the port as nginx_https_port/nginx_http_port" \
            % text.split(":", 1)[0]
    if "*" in text:
        return "is a wildcard; certbot's HTTP challenge cannot issue one. Name the host Dify is served at"
    if text.endswith("."):
        return "ends with a dot; nginx and certbot take the name without it (%s)" % text.rstrip(".")
    if text != text.lower():
        return "has upper-case letters; certbot stores and nginx matches lower case (%s)" % text.lower()
    if tls and _ip(text) is not None:
        return "is an IP address; a certificate needs a DNS name (or set nginx_tls_enabled: false)"
    if tls and public_acme and "." not in text:
        return ("is not a public DNS name (%s); Let's Encrypt only issues for names under a public domain, "
                "e.g. dify.example.com" % ("localhost" if text == "localhost" else "one label"))
    return None


def check_public_names(groups, hostvars):
    """nginx_server_name, its aliases and certbot's domains are bare lower-case DNS names."""
    found = {}
    for host in catalog.members(groups, "dify_edge"):
        hv = hostvars.get(host) or {}
        tls = _truthy(hv.get("nginx_tls_enabled", True), True)
        public_acme = _public_acme(hv)
        for var in NAME_VARS:
            value = _literal(hv, var, None)
            names = value if isinstance(value, list) else ([value] if isinstance(value, string_types) else [])
            for name in names:
                if not name or _is_template(name):
                    continue
                problem = _name_problem(name, tls, public_acme)
                if problem:
                    _add(found, "%s: %r %s. Fix it in the inventory (group_vars/dify_edge)." % (var, name, problem),
                         host)
    return _found_lines(found)


def check_one_server_name(groups, hostvars):
    """Every edge host serves the same public name (users, cookies and Dify's URLs have one)."""
    names = {}
    for host in catalog.members(groups, "dify_edge"):
        name = _text(hostvars.get(host) or {}, "nginx_server_name")
        if name is not None:
            names.setdefault(name, []).append(host)
    if len(names) < 2:
        return []
    text = "; ".join("%r on %s" % (n, catalog.hosts_text(h)) for n, h in sorted(names.items()))
    return ["%s: nginx_server_name differs between the edge hosts (%s), but Dify has one public URL. Set one "
            "nginx_server_name in group_vars/dify_edge (other names go in nginx_server_aliases)."
            % (catalog.hosts_text(_members(groups, "dify_edge")), text)]


PLACEHOLDER_MAIL_RE = re.compile(r"@(example\.(com|net|org)|localhost)$", re.IGNORECASE)


def check_certbot_email(groups, hostvars):
    """certbot_email is an address Let's Encrypt accepts (not the docs' placeholder)."""
    found = {}
    for host in catalog.members(groups, "dify_edge"):
        hv = hostvars.get(host) or {}
        email = _text(hv, "certbot_email")
        if email is None or not _truthy(hv.get("nginx_tls_enabled", True), True):
            continue
        if not re.match(r"^[^@\s:/]+@[^@\s]+\.[^@\s]+$", email) and not PLACEHOLDER_MAIL_RE.search(email):
            _add(found, "certbot_email = %r is not an e-mail address (write it as ops@your-domain, no "
                        "mailto: or name). Fix it in group_vars/dify_edge." % email, host)
        elif PLACEHOLDER_MAIL_RE.search(email) and _public_acme(hv):
            _add(found, "certbot_email = %r is the documentation's placeholder; Let's Encrypt refuses to register "
                        "an account for it. Set your operations address." % email, host)
    return _found_lines(found)


# ---- values that are not what their type says

def _spec_options(argument_specs):
    """name -> option spec, every role."""
    out = {}
    for options in _role_options(argument_specs).values():
        out.update(options)
    return out


def check_path_values(groups, hostvars, argument_specs):
    """A `type: path` variable holds an absolute path on the host: not PEM content, not relative, not ~."""
    options = _spec_options(argument_specs)
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        spec = options.get(name) or {}
        if spec.get("type") != "path" or not isinstance(value, string_types) or not value or _is_template(value):
            continue
        if "-----BEGIN" in value:
            _add(found, "%s holds PEM content (%d characters, not shown), but it takes the path of a file on "
                        "the host. Put the PEM in a file there (a private key in an ansible-vault file, copied "
                        "0600) and set %s to its absolute path." % (name, len(value), name), host)
        elif value.startswith("~"):
            _add(found, "%s = %r: a path option expands ~ on the controller, not on the host. Give the absolute "
                        "path on the host." % (name, value), host)
        elif not value.startswith("/"):
            _add(found, "%s = %r is a relative path; the roles need the absolute path on the host (e.g. /%s)."
                 % (name, value, value.lstrip("./")), host)
    return _found_lines(found)


def check_scalar_for_list(groups, hostvars, argument_specs):
    """A `type: list` variable holds a YAML list: not a string, a yes/no, a number or nothing."""
    options = _spec_options(argument_specs)
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        spec = options.get(name) or {}
        if spec.get("type") != "list" or _is_template(value) or isinstance(value, list):
            continue
        if isinstance(value, string_types):
            _add(found, "%s = %r is a string, but it takes a list; the roles would walk it character by "
                        "character. Write it as a YAML list: %s: [%s]."
                 % (name, value, name, ", ".join(v.strip() for v in value.split(",") if v.strip())), host)
        elif isinstance(value, (bool, int, float)):
            _add(found, "%s = %r is a %s (YAML reads yes/no/true/false/on/off as booleans), but it takes a "
                        "list. Write a list ([] for none)." % (name, value, type(value).__name__), host)
    return _found_lines(found)


def check_null_values(groups, hostvars, argument_specs):
    """A list, dict or bool variable written with no value (`name:`) replaces its default with null."""
    options = _spec_options(argument_specs)
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        spec = options.get(name) or {}
        if value is None and spec.get("type") in ("list", "dict", "bool") and name not in knobs.NAMES:
            _add(found, "%s is set to nothing (null: `%s:` with no value), which replaces its default. Give "
                        "it a value (%s) or delete the line." % (
                            name, name, {"list": "[] for none", "dict": "{} for none", "bool": "true or false"}
                            [spec["type"]]), host)
    return _found_lines(found)


# ---- allow-lists (ssrf_proxy, firewall)

METADATA_NETS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fd00:ec2::/64"))
WIDEST_PREFIX = {4: 8, 6: 32}
SSRF_FORCE = "ssrf_proxy_allow_wide"


def _wide_problem(net):
    """Why a destination/client network is too wide, or None."""
    if net.prefixlen == 0:
        return "is every address"
    if any(net.version == m.version and net.overlaps(m) for m in METADATA_NETS):
        return ("covers the link-local metadata service (169.254.169.254: the cloud's instance credentials)")
    if net.prefixlen < WIDEST_PREFIX[net.version]:
        return "is wider than /%d" % WIDEST_PREFIX[net.version]
    return None


def _ssrf_ip_problem(entry):
    text = str(entry).strip()
    net = _net(text)
    if net is None:
        return ("is not an address or CIDR; a name belongs in ssrf_proxy_allow_private_domains", False)
    if "/" in text and _ip(text.split("/", 1)[0]) != net.network_address:
        return ("has host bits set; write the network (%s) or the single address (%s/%d)"
                % (net, text.split("/", 1)[0], net.max_prefixlen), False)
    wide = _wide_problem(net)
    return (wide, True) if wide else (None, False)


def check_ssrf_allow_lists(groups, hostvars):
    """What the SSRF proxy lets tenants reach, and who may use it, stay narrow."""
    found = {}
    for host in catalog.members(groups, "dify_ssrf_proxy"):
        hv = hostvars.get(host) or {}
        force = _truthy(hv.get(SSRF_FORCE))
        for var in ("ssrf_proxy_allow_private_ips", "ssrf_proxy_clients_extra"):
            entries = _literal(hv, var, [])
            for entry in entries if isinstance(entries, list) else []:
                if _is_template(entry):
                    continue
                problem, forceable = _ssrf_ip_problem(entry)
                if var == "ssrf_proxy_clients_extra" and problem and problem.startswith("is not an"):
                    problem = None  # clients may be names
                if problem and not (forceable and force):
                    fix = ("list the addresses you mean, or set %s: true to accept it" % SSRF_FORCE) if forceable \
                        else "fix the entry"
                    what = "tenants' requests could reach it" if var.endswith("_ips") else \
                        "anyone there could use the proxy"
                    _add(found, "%s entry %r %s; %s. In the inventory, %s." % (var, entry, problem, what, fix), host)
    return _found_lines(found) + _ssrf_domain_problems(groups, hostvars)


# The fenced networks of the sandboxes (catalog entry, the group whose hosts
# create it, what the message calls it): the sandbox's, and Dify 1.16's local
# sandbox's, which must not overlap the sandbox's on the same host.
SANDBOX_NETWORKS = ((catalog.SANDBOX_NETWORK, "dify_sandbox", "The sandbox's own Docker network"),
                    (catalog.LOCAL_SANDBOX_NETWORK, "dify_local_sandbox", "The local sandbox's own Docker network"))


def _sandbox_subnet(hv, entry):
    """(the subnet's text or None for a template, where it comes from) of one network on one host."""
    var = entry["var"]
    value = _literal(hv, var, entry["subnet"])
    where = "%s = %r" % (var, value) if var in hv else "%s (unset: the catalog's %s)" % (var, entry["subnet"])
    return (None if value is None else str(value).strip()), where


def check_sandbox_network(groups, hostvars):
    """The sandboxes' own Docker networks: private IPv4 networks that hold no fleet address; the local
    sandbox's does not overlap the sandbox's on a host that runs both."""
    found = {}
    fleet = [(h, ip) for h, (ip, _a, _s) in _judged_addresses(groups, hostvars).items() if ip is not None]
    sandbox_hosts = catalog.members(groups, "dify_sandbox")
    for entry, group, what in SANDBOX_NETWORKS:
        net_default, var = entry["subnet"], entry["var"]
        for host in catalog.members(groups, group):
            hv = hostvars.get(host) or {}
            text, where = _sandbox_subnet(hv, entry)
            if text is None:
                continue
            net = _net(text)
            if net is None or net.version != 4 or "/" not in text:
                problem = "is not an IPv4 network in CIDR form (e.g. %s)" % net_default
            elif _ip(text.split("/", 1)[0]) != net.network_address:
                problem = "has host bits set; write the network (%s)" % net
            elif not 16 <= net.prefixlen <= 29:
                problem = "is /%d; give a /16 to /29 (the gateway and the sandbox need addresses)" % net.prefixlen
            elif not net.is_private or net.is_loopback or net.is_link_local or any(
                    net.overlaps(m) for m in METADATA_NETS if m.version == 4):
                problem = "is not a private range (RFC 1918, e.g. %s)" % net_default
            else:
                inside = ["%s (%s)" % (h, ip) for h, ip in fleet if ip.version == 4 and ip in net]
                problem = ("holds the fleet address of %s: the sandbox's network would hide those hosts from this "
                           "one" % ", ".join(inside)) if inside else None
            if problem is None and entry is catalog.LOCAL_SANDBOX_NETWORK and host in sandbox_hosts:
                other, other_where = _sandbox_subnet(hv, catalog.SANDBOX_NETWORK)
                other_net = _net(other) if other else None
                if other_net is not None and other_net.version == 4 and net.overlaps(other_net):
                    problem = ("overlaps the sandbox's network, %s: the two fenced networks need subnets of their "
                               "own" % other_where)
            if problem:
                _add(found, "%s %s. %s needs a private IPv4 subnet no fleet host uses; set %s in the inventory."
                     % (where, problem, what, var), host)
    return _found_lines(found)


def _ssrf_domain_problems(groups, hostvars):
    found = {}
    for host in catalog.members(groups, "dify_ssrf_proxy"):
        entries = _literal(hostvars.get(host) or {}, "ssrf_proxy_allow_private_domains", [])
        for entry in entries if isinstance(entries, list) else []:
            text = str(entry)
            if _is_template(text):
                continue
            if "://" in text or "/" in text or re.search(r":\d+$", text):
                _add(found, "ssrf_proxy_allow_private_domains entry %r is a URL or has a port or path; squid "
                            "matches names only. Write %r." % (text, re.sub(r"^[a-z]+://|[:/].*$", "", text)), host)
            elif text.startswith("*"):
                _add(found, "ssrf_proxy_allow_private_domains entry %r is a wildcard; squid's dstdomain writes a "
                            "whole domain with a leading dot: %r." % (text, text.lstrip("*")), host)
    return _found_lines(found)


FIREWALL_SOURCE_VARS = ("firewall_ssh_sources", "firewall_monitoring_sources", "difyops_monitoring_sources")


def _firewall_sources(hv):
    """(variable text, port name or None, entries) of every firewall source list on a host."""
    out = []
    for var in FIREWALL_SOURCE_VARS:
        value = _literal(hv, var, None)
        if isinstance(value, list):
            out.append((var, None, value))
    extra = _literal(hv, "firewall_extra_sources", None)
    if isinstance(extra, dict):
        for port, value in sorted(extra.items()):
            if isinstance(value, list):
                out.append(("firewall_extra_sources.%s" % port, port, value))
    return out


def check_firewall_sources(groups, hostvars):
    """Firewall sources are addresses, CIDRs or groups; internal ports are never opened to everyone."""
    found = {}
    anywhere = set(p.name for _s, p in catalog.all_ports() if p.anywhere)
    for host in fleet_hosts(groups):
        for var, port, entries in _firewall_sources(hostvars.get(host) or {}):
            for entry in entries:
                text = str(entry).strip()
                if _is_template(text) or text in groups:
                    continue
                net = _net(text)
                if net is not None and net.prefixlen == 0 and var != "firewall_ssh_sources" and port not in anywhere:
                    _add(found, "%s contains %s: that opens an internal port to the whole Internet. List the "
                                "addresses that need it (or, deliberately, a firewall_extra_rules entry without "
                                "sources)." % (var, text), host)
                elif net is None and "_" in text:
                    close = difflib.get_close_matches(text, [g for g in groups if g not in BUILTIN_GROUPS], n=1)
                    _add(found, "%s entry %r is no inventory group%s and not an address, so the firewall cannot "
                                "load it. Fix the name." % (
                                    var, text, (" (did you mean %s?)" % close[0]) if close else ""), host)
    return _found_lines(found)


def check_firewall_extra_keys(groups, hostvars):
    """firewall_extra_sources keys are catalog port names (the firewall tier would stop half way)."""
    known = sorted(set(p.name for _s, p in catalog.all_ports()))
    found = {}
    for host in fleet_hosts(groups):
        extra = _literal(hostvars.get(host) or {}, "firewall_extra_sources", None)
        for key in sorted(extra) if isinstance(extra, dict) else []:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                _add(found, "firewall_extra_sources has the key %r, which is no port of the catalog%s; known: %s."
                     % (key, (" (did you mean %s?)" % close[0]) if close else "", ", ".join(known)), host)
    return _found_lines(found)


def check_ssh_port_open(groups, hostvars):
    """The firewall keeps open the port Ansible itself connects to."""
    found = {}
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        ports = _literal(hv, "firewall_ssh_ports", None)
        connection = hv.get("ansible_connection") or "ssh"
        if not isinstance(ports, list) or connection not in ("ssh", "paramiko", "smart") or \
                not _truthy(hv.get("firewall_enabled", True), True):
            continue
        port = _literal(hv, "ansible_port", 22)
        if port is None or any(str(p).strip() == str(port).strip() for p in ports):
            continue
        _add(found, "firewall_ssh_ports is %r but Ansible connects on port %s (ansible_port); the firewall "
                    "tier would lock Ansible out half way. Add %s to firewall_ssh_ports." % (ports, port, port),
             host)
    return _found_lines(found)


def _let_in(entries, groups, issuer, address):
    """Whether a firewall source list lets ``address`` (of host ``issuer``) in; None when it cannot be told."""
    ip = _ip(address)
    if ip is None:
        return None
    for entry in entries:
        text = str(entry).strip()
        if text in groups:
            if issuer in catalog.members(groups, text):
                return True
            continue
        net = _net(text)
        if net is not None and net.version == ip.version and ip in net:
            return True
    return False


def check_cert_push_ssh(groups, hostvars):
    """Several edge hosts: each receiving edge's SSH firewall lets in the issuer, which pushes the certificate."""
    found = {}
    edges = catalog.members(groups, "dify_edge")
    for host in edges if len(edges) > 1 else []:
        hv = hostvars.get(host) or {}
        if not all(_truthy(hv.get(var, True), True) for var in
                   ("certbot_sync_push", "certbot_enabled", "nginx_tls_enabled", "firewall_enabled")):
            continue
        issuer = _literal(hv, "certbot_issuer", edges[0])
        sources = _literal(hv, "firewall_ssh_sources", None)
        if issuer == host or issuer not in hostvars or not isinstance(sources, list) or \
                any(_is_template(entry) for entry in sources):
            continue
        pushed_from = _literal(hv, "certbot_sync_sources", None)
        if not isinstance(pushed_from, list) or not pushed_from or any(_is_template(a) for a in pushed_from):
            pushed_from = [_fleet_address(hostvars.get(issuer) or {}, issuer)[0]]
        for address in pushed_from:
            if _let_in(sources, groups, issuer, address) is False:
                _add(found, "firewall_ssh_sources %r does not let in %s, the address %s (certbot_issuer) pushes "
                            "the renewed certificate from, so this edge would keep serving the old one. Add it "
                            "(or the group dify_edge), or set certbot_sync_push: false." % (sources, address, issuer),
                     host)
    return _found_lines(found)


# ---- versions

def _release(hv):
    return _fact(hv, "distribution_release")


def _pg_version(hv):
    """(the PostgreSQL major a host would run, whether the inventory set it)."""
    value = _literal(hv, "postgresql_version", None)
    if value is not None and re.match(r"^\s*\d+\s*$", str(value)):
        return int(value), True
    platform = catalog.PLATFORMS.get(_release(hv))
    return (platform["postgresql"] if platform else None), False


def check_postgresql_versions(groups, hostvars):
    """The PostgreSQL major is one Debian packages (or PGDG is on), and the same on every dify_postgres host."""
    errors = []
    versions = {}
    for host in catalog.members(groups, "dify_postgres"):
        hv = hostvars.get(host) or {}
        version, explicit = _pg_version(hv)
        platform = catalog.PLATFORMS.get(_release(hv))
        if version is not None:
            versions.setdefault(version, []).append(host)
        if explicit and platform and version != platform["postgresql"] and \
                not _truthy(hv.get("postgresql_pgdg_repository")):
            errors.append("%s: postgresql_version = %r, but Debian %s (%s) packages PostgreSQL %d only. Set "
                          "postgresql_version: %d (or remove it), or postgresql_pgdg_repository: true to install %s "
                          "from apt.postgresql.org." % (
                              host, hv.get("postgresql_version"), platform["major"], _release(hv),
                              platform["postgresql"], platform["postgresql"], version))
    if len(versions) > 1:
        text = "; ".join("%d on %s" % (v, catalog.hosts_text(h)) for v, h in sorted(versions.items()))
        errors.append("%s: the dify_postgres hosts would run different PostgreSQL majors (%s), but a streaming "
                      "replica must run its primary's major. Put them on one Debian release or set one "
                      "postgresql_version (with postgresql_pgdg_repository: true where Debian lacks it) in "
                      "group_vars/dify_postgres." % (catalog.hosts_text(_members(groups, "dify_postgres")), text))
    return errors


def _dify_versions():
    from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract
    return sorted(dify_contract.VERSIONS), dify_contract.DEFAULT_VERSION


def check_dify_versions(groups, hostvars):
    """dify_version is a release the collection has a contract for, and one release on every Dify host."""
    supported, default = _dify_versions()
    found = {}
    versions = {}
    hosts = _members(groups, *catalog.groups_for(tier="dify"))
    for host in hosts:
        value = _literal(hostvars.get(host) or {}, "dify_version", default)
        if value is None:
            continue
        versions.setdefault(str(value), []).append(host)
        text = str(value)
        bare = text.strip().lstrip("vV")
        if text in supported:
            continue
        if bare in supported:
            _add(found, "dify_version = %r: write the release without 'v' or spaces: dify_version: %r." % (value, bare),
                 host)
        else:
            _add(found, "dify_version = %r is not a release difyops.fleet has Dify's contract for (%s). Use one of "
                        "those, or add the release (scripts/dify-contract, docs/CONTRACT.md)."
                 % (value, ", ".join(supported)), host)
    errors = _found_lines(found)
    if len(versions) > 1:
        text = "; ".join("%s on %s" % (v, catalog.hosts_text(h)) for v, h in sorted(versions.items()))
        errors.append("%s: dify_version differs between the Dify hosts (%s); they share one database schema. Set "
                      "one dify_version in group_vars/all." % (catalog.hosts_text(hosts), text))
    return errors


# The services of a release (dify_contract.has_service, from its data) and the
# groups that run them: Dify 1.16's api and worker call the agent backend,
# which drives the local sandbox, whose only way out is the agent SSRF proxy.
RELEASE_SERVICES = (("agent_backend", "dify_agent_backend"), ("local_sandbox", "dify_local_sandbox"),
                    ("agent_backend", "dify_agent_ssrf_proxy"), ("api_websocket", "dify_api_websocket"))
AGENT_GROUPS = ("dify_agent_backend", "dify_local_sandbox", "dify_agent_ssrf_proxy")


def check_dify_release_services(groups, hostvars):
    """The groups the fleet's dify_version needs (the agent services from 1.16), and none it does not have."""
    from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract
    supported, default = _dify_versions()
    dify_groups = catalog.groups_for(tier="dify")
    values = set()
    for host in _members(groups, *dify_groups):
        value = _literal(hostvars.get(host) or {}, "dify_version", default)
        if value is not None:
            values.add(str(value))
    if len(values) != 1 or list(values)[0] not in supported:
        return []      # none, several or unknown: check_dify_versions says so
    version = values.pop()
    errors = []
    unexpected = [g for s, g in RELEASE_SERVICES if not dify_contract.has_service(version, s) and
                  catalog.members(groups, g)]
    for group in unexpected:
        errors.append("%s: group %s runs a service Dify %s does not have (dify_version = %r); remove the hosts "
                      "from %s, or set a dify_version that has it (%s)."
                      % (catalog.hosts_text(catalog.members(groups, group)), group, version, version, group,
                         ", ".join(v for v in supported if dify_contract.has_service(
                             v, dict((g, s) for s, g in RELEASE_SERVICES)[group])) or "none yet"))
    if dify_contract.has_service(version, "agent_backend") and catalog.members(groups, "dify_api"):
        missing = [g for g in AGENT_GROUPS if not catalog.members(groups, g)]
        without = [v for v in supported if not dify_contract.has_service(v, "agent_backend")]
        if missing:
            errors.append("dify_version = %r: Dify %s's api and worker call the agent backend, which runs code in "
                          "the local sandbox, whose only way out is the agent SSRF proxy; the inventory has no "
                          "host in %s. Add hosts to %s (one host may run all three)%s."
                          % (version, version, ", ".join(missing), " and ".join(missing),
                             ", or set a release without them: dify_version: %r" % without[-1] if without else ""))
    return errors


# ---- host names where a host is wanted, URLs where a URL is wanted

HOST_ONLY_VARS = ("dify_redis_host", "dify_db_host", "dify_pgvector_host")


def check_host_only_values(groups, hostvars):
    """dify_*_host variables hold a host name or address: no scheme, no port."""
    found = {}
    for host in _members(groups, *(APP_GROUPS + ("dify_plugin_daemon",))):
        hv = hostvars.get(host) or {}
        for var in HOST_ONLY_VARS:
            value = _text(hv, var)
            if value is None:
                continue
            port_var = var.replace("_host", "_port")
            if "://" in value:
                _add(found, "%s = %s is a URL; it takes the host alone (the port goes in %s, the password comes "
                            "from difyops_secrets)." % (var, shown(var, value) if "@" not in value else
                                                        "a URL with credentials (not shown)", port_var), host)
            elif re.match(r"^[^:]+:\d+$", value) or re.match(r"^\[.*\]:\d+$", value):
                _add(found, "%s = %r carries a port; give the host alone and the port as %s."
                     % (var, value, port_var), host)
    return _found_lines(found)


def check_sentinel_entries(groups, hostvars):
    """dify_redis_sentinels entries are host:port pairs."""
    found = {}
    for host in _members(groups, *(APP_GROUPS + ("dify_plugin_daemon",))):
        entries = _literal(hostvars.get(host) or {}, "dify_redis_sentinels", None)
        for entry in entries if isinstance(entries, list) else []:
            text = str(entry).strip()
            if _is_template(text):
                continue
            if "://" in text:
                _add(found, "dify_redis_sentinels entry %r is a URL; each entry is host:port (e.g. "
                            "sentinel-1.example.net:26379)." % text, host)
            elif not re.search(r":\d+$", text):
                _add(found, "dify_redis_sentinels entry %r has no port; each entry is host:port (Sentinels listen "
                            "on 26379)." % text, host)
    return _found_lines(found)


def check_storage_locations(groups, hostvars):
    """storage_s3_endpoint is a URL; storage_nfs_src is server:/export."""
    found = {}
    for host in _members(groups, "dify_api", "dify_worker", "dify_plugin_daemon"):
        hv = hostvars.get(host) or {}
        endpoint = _text(hv, "storage_s3_endpoint")
        if endpoint and not re.match(r"^https?://", endpoint):
            _add(found, "storage_s3_endpoint = %r has no scheme; Dify's S3 client needs the URL: %r."
                 % (endpoint, "https://" + endpoint), host)
        src = _text(hv, "storage_nfs_src")
        if src and ("://" in src or not re.match(r"^([^:/\s]+|\[[^\]]+\]):/", src)):
            _add(found, "storage_nfs_src = %r is not an NFS export; mount takes <server>:/<export>, e.g. "
                        "nfs-1.example.internal:/export/dify." % src, host)
    return _found_lines(found)


def check_url_values(groups, hostvars):
    """Variables named *_url hold URLs with a scheme."""
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        if name.endswith("_url") and isinstance(value, string_types) and value.strip() \
                and not _is_template(value) and "://" not in value:
            _add(found, "%s = %s has no scheme; write the whole URL (http://, https://, redis://...)."
                 % (name, shown(name, value)), host)
    return _found_lines(found)


# ---- one value across hosts

def _differs(groups, hostvars, hosts, var, default):
    """{value: [hosts]} of a literal variable over hosts (templates left out)."""
    values = {}
    for host in hosts:
        value = _literal(hostvars.get(host) or {}, var, default)
        if value is not None:
            values.setdefault(str(value), []).append(host)
    return values


def _differ_text(values):
    return "; ".join("%r on %s" % (v, catalog.hosts_text(h)) for v, h in sorted(values.items()))


def check_app_consistency(groups, hostvars):
    """The api, worker and beat hosts agree on the storage backend, database type and vector store."""
    app = _members(groups, *APP_GROUPS)
    mysql_only = catalog.members(groups, "dify_mysql") and not catalog.members(groups, "dify_postgres")
    errors = []
    rules = (
        ("storage_backend", "local", _members(groups, "dify_api", "dify_worker"),
         "a file one host writes must be found by the others"),
        ("dify_db_type", "mysql" if mysql_only else "postgresql", app, "they share one database"),
        ("dify_vector_store", "pgvector", _members(groups, "dify_api", "dify_worker"),
         "a knowledge base indexed by one is searched by the others"),
    )
    for var, default, hosts, why in rules:
        values = _differs(groups, hostvars, hosts, var, default)
        if len(values) > 1:
            errors.append("%s: %s differs between the Dify hosts (%s), but %s. Set one %s in group_vars/all."
                          % (catalog.hosts_text(hosts), var, _differ_text(values), why, var))
    return errors


def check_master_name(groups, hostvars):
    """Dify asks the Sentinels for the master name they monitor."""
    if not catalog.members(groups, "dify_sentinel"):
        return []
    sentinel = _differs(groups, hostvars, _members(groups, "dify_sentinel", "dify_redis"),
                        "redis_sentinel_master_name", None)
    dify = _differs(groups, hostvars, _members(groups, *(APP_GROUPS + ("dify_plugin_daemon",))),
                    "dify_redis_master_name", None)
    names = set(sentinel) | set(dify)
    if len(names) < 2 or not ((sentinel and dify) or len(sentinel) > 1 or len(dify) > 1):
        return []
    return ["redis_sentinel_master_name (%s) and dify_redis_master_name (%s) differ: Dify would ask the Sentinels "
            "for a master they do not monitor. Set both to one name in group_vars/all."
            % (_differ_text(sentinel) or "default", _differ_text(dify) or "default")]


def check_secrets_consistency(groups, hostvars):
    """difyops_secrets given in the inventory is one dict for the whole fleet."""
    seen = {}
    for host in fleet_hosts(groups):
        value = (hostvars.get(host) or {}).get("difyops_secrets")
        if value is not None and not _is_template(value):
            seen.setdefault(repr(sorted(value.items()) if isinstance(value, dict) else value), []).append(host)
    if len(seen) < 2:
        return []
    groups_text = "; ".join(catalog.hosts_text(h) for _v, h in sorted(seen.items(), key=lambda kv: kv[1]))
    return ["difyops_secrets differs between hosts (values not shown; the hosts sharing a value: %s), but only the "
            "first host's is checked and each service would get other passwords. Set difyops_secrets once, in "
            "group_vars/all (or leave it out so the secrets file is used)." % groups_text]


# ---- credentials given in the inventory

# The roles that check their passwords with secrets.check_secret (the
# secret_problem filter): the data services'. Preflight applies the same rule
# before any host changes.
DATA_SERVICES = ("postgresql", "mysql", "redis", "sentinel")
_PASSWORD_NAME_RE = re.compile(r"(password|cipher_pass)$")


def check_inventory_credentials(groups, hostvars):
    """A data service's password set in the inventory passes secrets.check_secret (whitespace, length, type)."""
    roles = set()
    for name in DATA_SERVICES:
        roles.update(catalog.service(name).roles)
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        if not _PASSWORD_NAME_RE.search(name) or _owner(name, roles) is None or _is_template(value) \
                or value is None or is_sample_value(value):
            continue
        problem = check_secret(name, value)
        if problem:
            _add(found, "%s = %s: %s (the %s role refuses it too, after other hosts changed)."
                 % (name, shown(name, value), problem, _owner(name, roles)), host)
    return _found_lines(found)


# Shapes of well-known credentials (provider key prefixes, private keys).
CREDENTIAL_SHAPES = (
    ("an AWS access key id", re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")),
    ("an OpenAI-style API key", re.compile(r"^sk-[A-Za-z0-9_-]{20,}$")),
    ("a GitHub token", re.compile(r"^(ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}$")),
    ("a Slack token", re.compile(r"^xox[abprs]-[A-Za-z0-9-]{10,}$")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)


def check_credentials_in_plain_names(groups, hostvars):
    """A credential-shaped value under a name that is not treated as secret would be printed in logs."""
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        if name == "difyops_secrets":
            continue
        for path, leaf in _walk(value, name):
            last = re.split(r"[.\[]", path)[-1]
            if not isinstance(leaf, string_types) or _is_secret(path) or SECRET_NAME_RE.search(last):
                continue
            for what, shape in CREDENTIAL_SHAPES:
                if shape.search(leaf.strip()):
                    _add(found, "%s holds what looks like %s (not shown) under a name that is not treated as a "
                                "credential, so it would be printed in logs and diffs. Move it to a variable whose "
                                "name says so (*_api_key, *_password) or into difyops_secrets, in an "
                                "ansible-vault file." % (path, what), host)
                    break
    return _found_lines(found)


# ---- sizes the plan would take at face value

TIB_IN_MB = 4 * 1024 * 1024  # no fleet host has more than 4 TiB of RAM


def _memtotal(hv):
    value = _fact(hv, "memtotal_mb")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_memory_knob(groups, hostvars):
    """difyops_memory_mb is MiB (not KiB or bytes) and no more than the host has."""
    found = {}
    for host in fleet_hosts(groups):
        hv = hostvars.get(host) or {}
        value = _literal(hv, "difyops_memory_mb", None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
                isinstance(value, string_types) and value.strip().isdigit()):
            continue
        mb = int(value)
        real = _memtotal(hv)
        if mb > TIB_IN_MB:
            as_kib, as_bytes = mb // 1024, mb // (1024 * 1024)
            bytes_likely = mb >= 2 ** 31 if real is None else abs(as_bytes - real) < abs(as_kib - real)
            unit, fixed = ("bytes", as_bytes) if bytes_likely else ("KiB (free, /proc/meminfo)", as_kib)
            _add(found, "difyops_memory_mb = %r is more than 4 TiB: it looks like %s. It takes MiB: "
                        "difyops_memory_mb: %d." % (value, unit, fixed), host)
        elif real is not None and mb > real * 1.05:
            _add(found, "difyops_memory_mb = %r but the host has %d MiB (ansible_memtotal_mb); the plan would "
                        "size its services for memory it lacks and they would be killed. Set at most %d, or remove "
                        "it to use the facts." % (value, real, real), host)
    return _found_lines(found)


def check_redis_maxmemory(groups, hostvars):
    """redis_maxmemory fits in the Redis host's memory."""
    from ansible_collections.difyops.fleet.plugins.module_utils import capacity
    found = {}
    for host in catalog.members(groups, "dify_redis"):
        hv = hostvars.get(host) or {}
        value = _literal(hv, "redis_maxmemory", None)
        planned = _literal(hv, "difyops_memory_mb", None)
        real = int(planned) if isinstance(planned, int) and not isinstance(planned, bool) else _memtotal(hv)
        if value is None or real is None:
            continue
        try:
            wanted = capacity.parse_redis_bytes(value)
        except capacity.CapacityError:
            continue  # the plan names a malformed size
        if wanted > real * 1024 * 1024:
            _add(found, "redis_maxmemory = %r (%d MiB) is more than the host's %d MiB of memory: Redis would be "
                        "killed before it evicts or refuses a write. Lower it (remove it to let the plan size it "
                        "from the memory split)." % (value, wanted // 1048576, real), host)
    return _found_lines(found)


def check_ha_flag(groups, hostvars):
    """difyops_ha is a boolean (any other word silently means yes)."""
    found = {}
    for host in fleet_hosts(groups):
        value = _literal(hostvars.get(host) or {}, "difyops_ha", None)
        if isinstance(value, string_types) and value.strip().lower() not in (
                "", "true", "false", "yes", "no", "on", "off", "1", "0"):
            _add(found, "difyops_ha = %r is not a boolean (it would count as true). Set difyops_ha: true or false."
                 % value, host)
    return _found_lines(found)


# ---- names of hosts and groups inside variables

def check_named_hosts_and_groups(groups, hostvars, argument_specs):
    """`*_hosts` lists name inventory hosts and `*_client_groups` lists name inventory groups."""
    options = _spec_options(argument_specs)
    known_hosts = set(hostvars)
    for hosts in groups.values():
        known_hosts.update(catalog.members({"g": hosts}, "g"))
    found = {}
    for host, name, value in _inventory_vars(groups, hostvars):
        spec = options.get(name) or {}
        if spec.get("type") != "list" or not isinstance(value, list):
            continue
        if name.endswith("_hosts") and "address" not in str(spec.get("description", "")):
            pool, what = known_hosts, "host"
        elif name.endswith("_client_groups"):
            pool, what = set(groups), "group"
        else:
            continue
        for entry in value:
            if _is_template(entry) or str(entry) in pool:
                continue
            close = difflib.get_close_matches(str(entry), sorted(pool), n=1)
            _add(found, "%s names %r, which is no inventory %s%s. Fix the name (or add the %s to the inventory)."
                 % (name, entry, what, (" (did you mean %s?)" % close[0]) if close else "", what), host)
    return _found_lines(found)


# The rules above that read only groups and hostvars, and those that read the argument specs too.
MISTAKE_RULES = (
    check_group_names, check_ports, check_address_forms, check_address_scopes, check_duplicate_addresses,
    check_public_names, check_one_server_name, check_certbot_email, check_ssrf_allow_lists, check_sandbox_network,
    check_firewall_sources, check_firewall_extra_keys, check_ssh_port_open, check_cert_push_ssh,
    check_postgresql_versions,
    check_dify_versions, check_dify_release_services, check_host_only_values, check_sentinel_entries, check_storage_locations,
    check_url_values, check_app_consistency, check_master_name, check_secrets_consistency,
    check_inventory_credentials, check_credentials_in_plain_names, check_memory_knob, check_redis_maxmemory,
    check_ha_flag,
)
MISTAKE_SPEC_RULES = (check_path_values, check_scalar_for_list, check_null_values, check_named_hosts_and_groups)


def check_mistakes(groups, hostvars, argument_specs=None):
    """The mistakes operators make copying from docs (see MISTAKE_RULES)."""
    errors = []
    for rule in MISTAKE_RULES:
        errors.extend(rule(groups, hostvars))
    for rule in MISTAKE_SPEC_RULES:
        errors.extend(rule(groups, hostvars, argument_specs))
    return errors


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
    errors.extend(check_mistakes(groups, hostvars, argument_specs))
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

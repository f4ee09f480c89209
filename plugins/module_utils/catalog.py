# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet catalog: every service of a Dify fleet, declared once.

One entry per service: its inventory group, the roles that configure it,
the playbook tier (tag) that runs them, its ports (each with the role
variable that moves it, the default, the address it binds and the groups
whose hosts may connect), how many hosts its group may hold, and its
memory budget in the capacity plan.  Everything else reads it:

* the fleet's group list and host patterns (``FLEET_GROUPS``,
  :func:`pattern`, the ``difyops.fleet.catalog`` lookup that playbooks use
  to build the ``dify_fleet`` group),
* the capacity plan (``capacity_plan.py``: memory weights and budgets),
* preflight (``preflight.py``: required groups, host counts),
* the firewall (:func:`open_ports`, through the ``firewall_rules`` filter:
  each port from the service's own variable on that host),
* roles' client lists (``postgresql_client_groups`` ... through the lookup).

Adding a service is one :class:`Service` entry here plus its role.
"""

from __future__ import annotations

import re

from ansible_collections.difyops.fleet.plugins.module_utils.fleet import (
    FleetError,
    get_key,
    group_addresses,
)


class CatalogError(FleetError):
    """A bad request to the catalog or a bad port value; the message names the fix."""


class Port(object):
    """A port a service listens on.

    ``var``: the role variable that sets it (read from the host's variables;
    the default below when unset, or ``colocated[group]`` when the host is
    also in that group).  ``clients``: groups whose hosts may connect;
    ``peers``: the service's own hosts may too (replication, gossip);
    ``anywhere``: open to everyone; ``monitoring``: open to
    ``difyops_monitoring_sources`` only.  ``on``: groups whose hosts open it
    (default: the service's group).  ``bind``: ``private`` (the host's
    fleet address and loopback) or ``all`` (every address: public entry
    points and Dify's host-network containers, fenced by the firewall).
    ``only_if``: (variable, value): the port exists only on hosts where that
    variable has that value (Patroni's REST API with
    ``postgresql_ha_manager: patroni``).
    """

    __slots__ = ("name", "default", "var", "clients", "peers", "anywhere", "monitoring",
                 "on", "colocated", "proto", "bind", "purpose", "only_if")

    def __init__(self, name, default, var=None, clients=(), peers=False, anywhere=False,
                 monitoring=False, on=None, colocated=None, proto="tcp", bind="private", purpose="",
                 only_if=None):
        self.name = name
        self.default = default
        self.var = var
        self.clients = tuple(clients)
        self.peers = peers
        self.anywhere = anywhere
        self.monitoring = monitoring
        self.on = tuple(on) if on is not None else None
        self.colocated = dict(colocated or {})
        self.proto = proto
        self.bind = bind
        self.purpose = purpose
        self.only_if = tuple(only_if) if only_if else None

    def as_dict(self, service):
        return {"name": self.name, "service": service.name, "var": self.var, "default": self.default,
                "proto": self.proto, "bind": self.bind, "on": list(self.on or (service.group,)),
                "clients": list(self.clients), "peers": self.peers, "anywhere": self.anywhere,
                "monitoring": self.monitoring, "colocated": dict(self.colocated), "purpose": self.purpose,
                "only_if": list(self.only_if) if self.only_if else None}


class Service(object):
    """One service of the fleet (see the module docstring)."""

    __slots__ = ("name", "group", "purpose", "roles", "tier", "ports", "weight", "memory_mb",
                 "required", "alternative", "max_hosts", "exactly", "odd_for_ha", "first_host", "why", "member")

    def __init__(self, name, group, purpose, roles, tier, ports=(), weight=None, memory_mb=None,
                 required=True, alternative=None, max_hosts=None, exactly=None, odd_for_ha=False,
                 first_host="", why="", member="host"):
        self.name = name
        self.group = group
        self.purpose = purpose
        self.roles = tuple(roles)
        self.tier = tier
        self.ports = tuple(ports)
        self.weight = weight            # heavy: share of what is left, by weight
        self.memory_mb = memory_mb      # light: a fixed budget (and its container limit)
        self.required = required
        self.alternative = alternative  # required unless this group has hosts
        self.max_hosts = max_hosts
        self.exactly = exactly
        self.odd_for_ha = odd_for_ha
        self.first_host = first_host    # what the first host of the group is
        self.why = why                  # why the count rule exists
        self.member = member            # what one host of the group is called in messages

    def as_dict(self):
        return {"name": self.name, "group": self.group, "purpose": self.purpose, "roles": list(self.roles),
                "tier": self.tier, "ports": [p.as_dict(self) for p in self.ports],
                "memory": {"weight": self.weight} if self.weight else {"mb": self.memory_mb},
                "required": self.required, "alternative": self.alternative, "max_hosts": self.max_hosts,
                "exactly": self.exactly, "odd_for_ha": self.odd_for_ha, "first_host": self.first_host}


_DB_CLIENTS = ("dify_api", "dify_worker", "dify_beat", "dify_plugin_daemon")
_DIFY_ROLES = ("docker_engine", "dify")

# In the order the fleet's groups are listed everywhere (inventory order of
# the plan's tiers, firewall comments, the dify_fleet group).
SERVICES = (
    # Patroni's REST API (postgresql_ha_manager: patroni only): the members
    # ask each other during a failover; the Dify hosts' local HAProxy will
    # check it to find the primary.
    Service("postgresql", "dify_postgres", "PostgreSQL (Dify's database)", ("postgresql", "patroni"), "postgresql",
            ports=(Port("postgresql", 5432, var="postgresql_port", clients=_DB_CLIENTS, peers=True),
                   Port("patroni", 8008, var="patroni_restapi_port", clients=_DB_CLIENTS, peers=True,
                        only_if=("postgresql_ha_manager", "patroni"))),
            weight=4, alternative="dify_mysql", first_host="the primary; the rest stream from it"),
    Service("mysql", "dify_mysql", "MariaDB (Dify's DB_TYPE=mysql)", ("mysql",), "mysql",
            ports=(Port("mysql", 3306, var="mysql_port", clients=_DB_CLIENTS, peers=True),),
            weight=4, required=False, max_hosts=1,
            why="the mysql role runs one MariaDB server, and separate servers would hold different data"),
    Service("redis", "dify_redis", "Redis (cache and Celery broker)", ("redis",), "redis",
            ports=(Port("redis", 6379, var="redis_port", clients=_DB_CLIENTS + ("dify_sentinel",), peers=True),),
            weight=2, first_host="the initial master; the rest replicate it"),
    Service("sentinel", "dify_sentinel", "Redis Sentinel", ("redis_sentinel",), "redis",
            ports=(Port("sentinel", 26379, var="redis_sentinel_port", clients=_DB_CLIENTS + ("dify_redis",),
                        peers=True),),
            memory_mb=64, required=False, odd_for_ha=True, member="Sentinel"),
    # Patroni's DCS (and later the Celery beat lease): a static cluster.
    Service("etcd", "dify_etcd", "etcd (Patroni's consensus store)", ("etcd",), "etcd",
            ports=(Port("etcd_client", 2379, var="etcd_client_port", clients=("dify_postgres",), peers=True),
                   Port("etcd_peer", 2380, var="etcd_peer_port", peers=True)),
            memory_mb=128, required=False, odd_for_ha=True, member="etcd member"),
    Service("vector", "dify_vector", "the fleet's own Weaviate or Qdrant", ("docker_engine", "vector_store"),
            "vector_store",
            ports=(Port("weaviate", 8080, var="vector_store_weaviate_http_port", clients=("dify_api", "dify_worker")),
                   Port("weaviate_grpc", 50051, var="vector_store_weaviate_grpc_port",
                        clients=("dify_api", "dify_worker")),
                   Port("qdrant", 6333, var="vector_store_qdrant_http_port", clients=("dify_api", "dify_worker")),
                   Port("qdrant_grpc", 6334, var="vector_store_qdrant_grpc_port",
                        clients=("dify_api", "dify_worker"))),
            weight=2, required=False, first_host="the one Dify uses"),
    Service("api", "dify_api", "the Dify api", ("storage",) + _DIFY_ROLES, "dify",
            ports=(Port("api", 5001, clients=("dify_edge", "dify_plugin_daemon", "dify_web"), bind="all"),),
            weight=3, first_host="the one that runs the database migration"),
    # Dify 1.15+ (release data: api_websocket): the collaboration server, the
    # api image with gevent-websocket; nginx sends /socket.io/ to it.
    Service("api_websocket", "dify_api_websocket", "the Dify websocket api (collaboration, Dify 1.15+)",
            ("storage",) + _DIFY_ROLES, "dify",
            ports=(Port("api_websocket", 5005, var="dify_api_websocket_port", clients=("dify_edge",), bind="all"),),
            memory_mb=1024, required=False, max_hosts=1,
            why="upstream cannot run the collaboration server on more than one node yet"),
    Service("worker", "dify_worker", "the Celery workers", ("storage",) + _DIFY_ROLES, "dify", weight=3),
    Service("beat", "dify_beat", "Celery beat (periodic tasks)", _DIFY_ROLES, "dify", memory_mb=512,
            exactly=1, why="each beat would schedule every periodic task again"),
    Service("web", "dify_web", "the Dify web front end", _DIFY_ROLES, "dify",
            ports=(Port("web", 3000, clients=("dify_edge",), bind="all"),), memory_mb=1024),
    Service("sandbox", "dify_sandbox", "dify-sandbox (code execution)", _DIFY_ROLES, "dify",
            ports=(Port("sandbox", 8194, clients=("dify_api", "dify_worker", "dify_ssrf_proxy"), bind="all"),),
            memory_mb=1024),
    Service("plugin_daemon", "dify_plugin_daemon", "the plugin daemon", ("storage",) + _DIFY_ROLES, "dify",
            ports=(Port("plugin_daemon", 5002, clients=("dify_api", "dify_worker", "dify_edge"), bind="all"),
                   Port("plugin_debugging", 5003, bind="all", purpose="remote plugin debugging; open it with "
                        "firewall_extra_sources.plugin_debugging")),
            memory_mb=2048, max_hosts=1,
            why="upstream's plugin daemon is not HA: installed plugins and their runtimes live on one host"),
    # Dify 1.16+ (release data: agent_backend, local_sandbox): the agent
    # backend that api and worker call, and the code runner it drives, which
    # reaches nothing but the agent SSRF proxy.
    Service("agent_backend", "dify_agent_backend", "the Dify agent backend (Dify 1.16+)", _DIFY_ROLES, "dify",
            ports=(Port("agent_backend", 5050, var="dify_agent_backend_port",
                        clients=("dify_api", "dify_worker", "dify_agent_ssrf_proxy"), bind="all"),),
            memory_mb=1024, required=False),
    Service("local_sandbox", "dify_local_sandbox", "the agent's local sandbox (Dify 1.16+)", _DIFY_ROLES, "dify",
            ports=(Port("local_sandbox", 5004, var="dify_local_sandbox_port", clients=("dify_agent_backend",),
                        bind="all"),),
            memory_mb=1024, required=False),
    Service("ssrf_proxy", "dify_ssrf_proxy", "the squid SSRF proxy", ("ssrf_proxy",), "ssrf_proxy",
            ports=(Port("squid", 3128, var="ssrf_proxy_port",
                        clients=("dify_sandbox", "dify_api", "dify_worker", "dify_plugin_daemon")),
                   Port("squid_reverse", 8194, var="ssrf_proxy_reverse_port", clients=("dify_api", "dify_worker"),
                        colocated={"dify_sandbox": 8195},
                        purpose="reverse proxy to the sandboxes (8195 where a sandbox owns 8194)")),
            memory_mb=128),
    Service("agent_ssrf_proxy", "dify_agent_ssrf_proxy", "the agent's squid proxy (Dify 1.16+)", ("ssrf_proxy",),
            "ssrf_proxy",
            ports=(Port("agent_squid", 3129, var="ssrf_proxy_agent_port", clients=("dify_local_sandbox",),
                        purpose="the local sandbox's only way out (upstream's agent rules)"),),
            memory_mb=128, required=False),
    Service("edge", "dify_edge", "nginx (the public entry point)", ("nginx", "certbot"), "edge",
            ports=(Port("http", 80, var="nginx_http_port", anywhere=True, bind="all"),
                   Port("https", 443, var="nginx_https_port", anywhere=True, bind="all")),
            memory_mb=128),
)

FLEET_GROUPS = tuple(s.group for s in SERVICES)

# The sandbox's own network namespace on every dify_sandbox host: a Docker
# bridge network (role dify) whose only way out is the SSRF proxy (role
# firewall: input and forward rules on its bridge; role ssrf_proxy: the
# subnet is a client of a proxy on the same host, reached at the gateway,
# the subnet's first address). ``var`` moves the subnet; preflight refuses
# one that is not a private IPv4 network or holds a fleet address.
SANDBOX_NETWORK = {"name": "dify-sandbox", "bridge": "dify-sandbox", "var": "dify_sandbox_network_subnet",
                   "subnet": "172.29.194.0/24"}

# Dify 1.16's local sandbox (the agent's code runner, dify_local_sandbox
# hosts) gets a network of its own, fenced the same way: its only way out is
# the agent SSRF proxy's port (role firewall), on the dify_agent_ssrf_proxy
# hosts or at this network's gateway on such a host (role ssrf_proxy: the
# subnet is a client of the agent proxy there). The bridge name is at most 15
# characters (a Linux interface name). Preflight also refuses a subnet that
# overlaps the sandbox's network.
LOCAL_SANDBOX_NETWORK = {"name": "dify-local-sandbox", "bridge": "dify-local-sbx",
                         "var": "dify_local_sandbox_network_subnet", "subnet": "172.29.195.0/24"}

# Roles applied to every fleet host, whatever it runs (exporters only when
# difyops_exporters_enabled).
EVERY_HOST_ROLES = ("common", "firewall", "exporters")

# Prometheus exporters (role exporters): opened to difyops_monitoring_sources only.
EXPORTER_PORTS = (
    Port("node_exporter", 9100, var="exporters_node_port", on=FLEET_GROUPS, monitoring=True),
    Port("postgres_exporter", 9187, var="exporters_postgres_port", on=("dify_postgres",), monitoring=True),
    Port("redis_exporter", 9121, var="exporters_redis_port", on=("dify_redis",), monitoring=True),
    Port("nginx_exporter", 9113, var="exporters_nginx_port", on=("dify_edge",), monitoring=True),
)
_EXPORTERS = Service("exporters", None, "Prometheus exporters", ("exporters",), "exporters",
                     ports=EXPORTER_PORTS, required=False)

# Debian releases the fleet runs on, and what each ships.
PLATFORMS = {
    "bookworm": {"major": "12", "postgresql": 15, "pgvector": False},
    "trixie": {"major": "13", "postgresql": 17, "pgvector": True},
}
SUPPORTED_RELEASES = tuple(sorted(PLATFORMS))


# --------------------------------------------------------------------------
# services and groups


def service(name):
    """The service called ``name``."""
    for s in SERVICES:
        if s.name == name:
            return s
    raise CatalogError("no service %r in the catalog; known: %s" % (name, ", ".join(s.name for s in SERVICES)))


def service_of_group(group):
    for s in SERVICES:
        if s.group == group:
            return s
    return None


def members(groups, group):
    """Hosts of ``group`` (a list, even when the inventory has none)."""
    found = (groups or {}).get(group) or []
    if isinstance(found, str):
        found = [found]
    return list(found)


def fleet_hosts(groups):
    """Hosts of the fleet groups, in catalog order of the groups, each once."""
    seen = []
    for group in FLEET_GROUPS:
        for host in members(groups, group):
            if host not in seen:
                seen.append(host)
    return seen


def host_services(groups, host):
    """Names of the services ``host`` runs, in catalog order."""
    return [s.name for s in SERVICES if host in members(groups, s.group)]


def groups_for(role=None, tier=None):
    """Fleet groups whose service is configured by ``role`` or run by ``tier`` (all when neither)."""
    out = []
    for s in SERVICES:
        if role and role not in s.roles and role not in EVERY_HOST_ROLES:
            continue
        if tier and tier != s.tier:
            continue
        out.append(s.group)
    return out


def pattern(role=None, tier=None):
    """A host pattern (``a:b:c``) of :func:`groups_for`."""
    return ":".join(groups_for(role, tier))


def all_ports():
    """(service, port) for every port of the catalog, exporters included."""
    out = []
    for s in SERVICES + (_EXPORTERS,):
        for p in s.ports:
            out.append((s, p))
    return out


def port_entry(name):
    for s, p in all_ports():
        if p.name == name:
            return s, p
    raise CatalogError("no port %r in the catalog; known: %s"
                       % (name, ", ".join(p.name for _s, p in all_ports())))


def clients(port_name):
    """Client groups of a port (its own group not included)."""
    return list(port_entry(port_name)[1].clients)


def as_data():
    """The whole catalog as plain data (the lookup's ``catalog`` answer)."""
    return {"groups": list(FLEET_GROUPS),
            "services": [s.as_dict() for s in SERVICES],
            "exporter_ports": [p.as_dict(_EXPORTERS) for p in EXPORTER_PORTS],
            "platforms": dict((k, dict(v)) for k, v in PLATFORMS.items()),
            "sandbox_network": dict(SANDBOX_NETWORK),
            "local_sandbox_network": dict(LOCAL_SANDBOX_NETWORK)}


# --------------------------------------------------------------------------
# ports of a host


def _host_groups(groups, host):
    return [g for g, hosts in (groups or {}).items() if isinstance(hosts, (list, tuple)) and host in hosts]


def port_value(port_name, host, groups, hostvars):
    """The port ``port_name`` listens on on ``host``: its variable there, else the catalog default."""
    _svc, p = port_entry(port_name)
    value = get_key(get_key(hostvars, host) or {}, p.var) if p.var else None
    if value is None or value == "":
        value = p.default
        for group, port in sorted(p.colocated.items()):
            if host in members(groups, group):
                value = port
    text = str(value).strip()
    if not re.match(r"^[0-9]{1,5}$", text) or not 0 < int(text) < 65536:
        raise CatalogError("%s on %s is %r; a port is a number from 1 to 65535" % (p.var, host, value))
    return int(text)


def _sources(names, groups, hostvars):
    """Group names become their hosts' addresses; anything else is kept as given."""
    out = []
    for name in names or ():
        name = str(name)
        if name in (groups or {}) or name in FLEET_GROUPS:
            found = group_addresses(name, groups, hostvars)
        else:
            found = [name]
        for address in found:
            if str(address) not in out:
                out.append(str(address))
    return out


def open_ports(host, groups, hostvars, extra_sources=None, monitoring_sources=None):
    """Every catalog port ``host`` opens: [{name, port, proto, anywhere, sources, comment}].

    A port is opened on the hosts of its service's group (or its ``on``
    groups), at the number its variable gives on that host, to the addresses
    of its client groups (plus its own group's with ``peers``), plus
    ``extra_sources[name]`` and, for exporters, ``monitoring_sources``
    (addresses, CIDRs or group names).
    """
    extra_sources = extra_sources or {}
    known = set(p.name for _s, p in all_ports())
    unknown = sorted(set(extra_sources) - known)
    if unknown:
        raise CatalogError("firewall_extra_sources has unknown keys %s; use one of %s"
                           % (", ".join(unknown), ", ".join(sorted(known))))
    here = set(_host_groups(groups, host))
    out = []
    for svc, p in all_ports():
        if not here & set(p.on or (svc.group,)):
            continue
        if p.only_if and get_key(get_key(hostvars, host) or {}, p.only_if[0]) != p.only_if[1]:
            continue
        names = list(p.clients) + ([svc.group] if p.peers else [])
        names += list(extra_sources.get(p.name) or [])
        if p.monitoring:
            names += list(monitoring_sources or [])
        out.append({"name": p.name, "port": str(port_value(p.name, host, groups, hostvars)), "proto": p.proto,
                    "anywhere": p.anywhere, "sources": _sources(names, groups, hostvars), "comment": ""})
    return out


def extra_rules(rules, groups, hostvars):
    """``firewall_extra_rules`` as rule dicts (as :func:`open_ports`), each checked."""
    out = []
    for i, rule in enumerate(rules or ()):
        port = str(get_key(rule, "port", "")).strip()
        proto = get_key(rule, "proto") or "tcp"
        valid_port = re.match(r"^[0-9]{1,5}(-[0-9]{1,5})?$", port)
        if not isinstance(rule, dict) or not valid_port or proto not in ("tcp", "udp"):
            raise CatalogError("firewall_extra_rules[%d] = %r: each rule needs port (a number or \"from-to\") and "
                               "proto tcp or udp; fix the inventory." % (i, rule))
        names = rule.get("sources") or []
        out.append({"name": "extra_%d" % i, "port": port, "proto": proto, "anywhere": not names,
                    "sources": _sources(names, groups, hostvars), "comment": rule.get("comment") or ""})
    return out


# --------------------------------------------------------------------------
# how many hosts each group may hold


def hosts_text(hosts):
    """A short list of host names for a message."""
    hosts = list(hosts)
    if len(hosts) <= 4:
        return ", ".join(hosts)
    return "%s and %d more" % (", ".join(hosts[:3]), len(hosts) - 3)


def _count_problem(s, hosts, groups, ha):
    group, n = s.group, len(hosts)
    if n == 0:
        if s.required and not (s.alternative and members(groups, s.alternative)):
            alt = (" (or use [%s] instead)" % s.alternative) if s.alternative else ""
            return ("group %s is empty: no host runs %s. Add %s host to [%s] in the inventory%s (one host may sit "
                    "in several groups)." % (group, s.purpose, "exactly one" if s.exactly else "at least one",
                                             group, alt))
        return None
    limit = s.exactly or s.max_hosts
    if limit and n > limit:
        return ("group %s has %d hosts (%s) but takes %s %d: %s. Keep only %s in [%s]."
                % (group, n, hosts_text(hosts), "exactly" if s.exactly else "at most", limit, s.why,
                   ", ".join(hosts[:limit]), group))
    if s.odd_for_ha and ha and (n < 3 or n % 2 == 0):
        fix = "%d or %d" % (n - 1, n + 1) if n >= 4 else "3"
        return ("%d %s(s) (hosts in %s): high availability needs an odd number of at least 3 %ss; "
                "use %s (or set difyops_ha: false to accept no failover safety)" % (n, s.member, group, s.member, fix))
    return None


def count_problems(groups, ha=False):
    """One sentence per group whose host count breaks its rule (required, at most,
    exactly, odd >= 3 for HA); ``ha``: high availability is asked for."""
    problems = []
    for s in SERVICES:
        problem = _count_problem(s, members(groups, s.group), groups, ha)
        if problem:
            problems.append(problem)
    return problems

# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Facts of a Dify release that roles outside roles/dify render, made fleet-shaped.

The facts come from the release's extracted data (``dify_contract.VERSIONS``,
docs/CONTRACT.md), so each release keeps its own: the agent SSRF proxy's
squid rules (``agent_proxy_rules``), the websocket api's timeout
(``websocket_timeout``) and the services an upgrade starts before api and
worker (``upgrade_dependencies``). A release that does not ship a service gives an
empty answer, never an error.
"""

from __future__ import annotations

import re

from ansible_collections.difyops.fleet.plugins.module_utils import catalog as _catalog
from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as _contract
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import host_address

_COMPOSE_DEFAULT = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-(?P<default>[^}]*)\}$")
# squid ACL names written for a service's ports next to its addresses.
PORT_ACL_SUFFIX = "_port"


class ReleaseFactError(Exception):
    """A release or a rule this collection cannot turn into fleet configuration."""


def release(version):
    """The extracted data of ``version`` (empty: the contract's default release)."""
    version = str(version or "").strip() or _contract.DEFAULT_VERSION
    try:
        return _contract.VERSIONS[version]["release"]
    except KeyError:
        raise ReleaseFactError("dify_version %r has no contract data; known releases: %s"
                               % (version, ", ".join(sorted(_contract.VERSIONS)))) from None


def compose_default(value):
    """The default of a compose interpolation (``${NAME:-360}`` -> ``360``); a plain value is itself."""
    text = str(value)
    found = _COMPOSE_DEFAULT.match(text)
    return found.group("default") if found else text


def websocket_timeout(version):
    """Seconds of upstream's GUNICORN_TIMEOUT for the websocket api of ``version`` (0: no websocket api)."""
    service = release(version).get("api", {}).get("compose", {}).get("api_websocket")
    if not service:
        return 0
    value = compose_default(service.get("environment", {}).get("GUNICORN_TIMEOUT", ""))
    if not re.match(r"^[0-9]+$", value):
        raise ReleaseFactError("the api_websocket GUNICORN_TIMEOUT of Dify %s is %r, not a number of seconds"
                               % (release(version)["release"], value))
    return int(value)


def _compose_services(version):
    """Every compose entry of the release (compose service name -> entry), whatever image runs it."""
    found = {}
    for section in release(version).values():
        if isinstance(section, dict) and isinstance(section.get("compose"), dict):
            found.update(section["compose"])
    return found


def upgrade_dependencies(version, groups):
    """The services of ``version`` that api and worker depend on (upstream compose's depends_on, followed
    through), which the fleet runs (a host in their group) and which a release line adds (optional in the
    catalog: from 1.16 the agent backend and the local sandbox it runs code in), dependencies first.
    ``upgrade.yml`` starts them before rolling api and worker; the rest (database, Redis, the plugin daemon)
    already run."""
    compose = _compose_services(version)
    order = []

    def visit(name, path):
        if name in path:
            raise ReleaseFactError("Dify %s's compose services depend on each other in a circle: %s"
                                   % (release(version)["release"], " -> ".join(path + (name,))))
        for dep in sorted((compose.get(name) or {}).get("depends_on") or {}):
            visit(dep, path + (name,))
        if name not in order:
            order.append(name)

    for root in ("api", "worker"):
        visit(root, ())
    wanted = []
    for name in order:
        try:
            service = _catalog.service(name)
        except _catalog.CatalogError:
            continue       # the database, Redis, init containers: not Dify containers of the fleet
        if service.tier == "dify" and not service.required and name not in ("api", "worker") \
                and _catalog.members(groups, service.group):
            wanted.append(name)
    return wanted


def _service_targets(names, groups, hostvars):
    """Addresses and ports of the catalog services ``names`` (compose service names), or None."""
    addresses, ports = [], []
    for name in names:
        try:
            svc = _catalog.service(name)
        except _catalog.CatalogError:
            return None
        if not svc.ports:
            return None
        for host in _catalog.members(groups, svc.group):
            address = host_address(host, hostvars)
            if address not in addresses:
                addresses.append(address)
            port = str(_catalog.port_value(svc.ports[0].name, host, groups, hostvars))
            if port not in ports:
                ports.append(port)
    return addresses, ports


def agent_proxy_rules(version, groups, hostvars, replace=None):
    """Upstream's agent SSRF proxy rules of ``version``, fleet-shaped; ``{}`` when the release has none.

    Returns ``{"release", "src", "acls": [{"name", "kind", "values", "src"}], "http_access": [[...]],
    "left_out": [acl names]}`` with upstream's http_access lines in upstream's order. Changes:

    - an ACL naming compose services (``dstdomain agent_backend``) that are
      catalog services becomes ``dst`` with the addresses of those services'
      hosts, and an ACL ``<name>_port`` of their ports (from the catalog,
      each host's port variable) joins every line that uses it; when the
      services have no hosts, the ACL and the lines using it are left out;
    - an ACL named in ``replace`` takes those values (the role's complete
      private-network list for ``to_private_networks``).
    """
    family = release(version).get("agent_ssrf_proxy")
    if not family:
        return {}
    squid = family["squid"]
    replace = replace or {}
    acls, ports_of, left_out = {}, {}, []
    for name, acl in squid["acls"].items():
        kind, values = acl["kind"], list(acl["values"])
        if name in replace:
            values = [str(v) for v in replace[name]]
        elif kind == "dstdomain":
            targets = _service_targets(values, groups, hostvars)
            if targets is not None:
                if not targets[0]:
                    left_out.append(name)
                    continue
                kind, values = "dst", targets[0]
                ports_of[name] = targets[1]
        acls[name] = {"name": name, "kind": kind, "values": values, "src": acl.get("src", "")}
    http_access, used = [], []
    for line in squid["http_access"]:
        names = [word.lstrip("!") for word in line[1:]]
        if any(name in left_out for name in names):
            continue
        out = [line[0]]
        for word in line[1:]:
            out.append(word)
            if word in ports_of:
                out.append(word + PORT_ACL_SUFFIX)
        http_access.append(out)
        for name in names:
            if name in acls and name not in used:
                used.append(name)
    ordered = []
    for name in used:
        ordered.append(acls[name])
        if name in ports_of:
            ordered.append({"name": name + PORT_ACL_SUFFIX, "kind": "port", "values": ports_of[name],
                            "src": "catalog"})
    return {"release": release(version)["release"], "src": squid.get("src", ""), "acls": ordered,
            "http_access": http_access, "left_out": left_out}

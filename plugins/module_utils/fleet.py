# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Inventory helpers shared by filters and modules: the addresses hosts reach each other at.

The fleet's groups are declared in catalog.py."""

from __future__ import annotations


# The inventory a fleet module takes (groups and hostvars); their action
# plugins default both to the play's.
INVENTORY_ARGUMENT_SPEC = dict(
    groups=dict(type="dict"),
    hostvars=dict(type="dict"),
)


def inventory_module(argument_spec, name):
    """A fleet module (the direct run of an action plugin's module) and its params.

    Run as a module it cannot read the play's inventory, so groups and
    hostvars are required; through its action plugin (the normal task) both
    default to the play's."""
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["groups"] is None or module.params["hostvars"] is None:
        module.fail_json(msg="%s run as a module needs groups and hostvars; through its action plugin (the "
                             "normal task) both default to the play's." % name)
    return module, module.params


class FleetError(Exception):
    """A bad inventory: the message names the variable and the fix."""


def get_key(mapping, key, default=None):
    """``mapping[key]``, or ``default`` when it is missing or ``mapping`` is no mapping (lazy hostvars too)."""
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return default


def host_address(hostname, hostvars):
    """The address other hosts reach ``hostname`` at.

    ``difyops_address`` when set, else the default IPv4 address from facts,
    else ``ansible_host``, else the inventory name itself.
    """
    if not isinstance(hostname, str) or not hostname:
        raise FleetError("host_address expects an inventory host name, got %r" % (hostname,))
    hv = get_key(hostvars, hostname)
    if hv is None:
        raise FleetError(
            "host %r is not in the inventory; check the group it was taken from" % hostname
        )
    explicit = get_key(hv, "difyops_address")
    if explicit:
        return str(explicit)
    facts = get_key(hv, "ansible_facts") or {}
    ipv4 = get_key(facts, "default_ipv4") or get_key(hv, "ansible_default_ipv4") or {}
    addr = get_key(ipv4, "address")
    if addr:
        return str(addr)
    ansible_host = get_key(hv, "ansible_host")
    if ansible_host:
        return str(ansible_host)
    return hostname


def url_host(address):
    """``address`` as it goes in a URL or a ``host:port`` pair: an IPv6 address in brackets.

    A host name or an IPv4 address is returned as is, as is an address that
    already has its brackets.
    """
    if not isinstance(address, str) or not address:
        raise FleetError("url_host expects an address or host name, got %r" % (address,))
    if ":" in address and not address.startswith("["):
        return "[%s]" % address
    return address


def bare_host(address):
    """``address`` without the brackets of an IPv6 literal (what a ``host=`` setting takes)."""
    if isinstance(address, str) and address.startswith("[") and address.endswith("]"):
        return address[1:-1]
    return address


def group_addresses(group, groups, hostvars):
    """Addresses of every host of ``group``, in inventory order (empty if no such group)."""
    if not isinstance(group, str) or not group:
        raise FleetError("group_addresses expects a group name, got %r" % (group,))
    members = get_key(groups, group) or []
    return [host_address(h, hostvars) for h in members]


def _truthy(value, default=True):
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def public_url(edge_host, hostvars):
    """The URL users reach Dify at, from the edge host's nginx variables.

    ``https://<nginx_server_name>`` (or ``http://`` with ``nginx_tls_enabled:
    false``), with the port when it is not the scheme's default
    (``nginx_https_port`` / ``nginx_http_port``). Without a server name (TLS
    off; with TLS preflight refuses an empty name) the edge host's own address:
    ``http://<address>[:port]``. ``edge_host`` empty or None (no edge host):
    an empty string.
    """
    if not edge_host:
        return ""
    hv = get_key(hostvars, edge_host)
    if hv is None:
        raise FleetError("edge host %r is not in the inventory" % (edge_host,))
    tls = _truthy(get_key(hv, "nginx_tls_enabled"), True)
    name = get_key(hv, "nginx_server_name") or ""
    name = name.strip() if isinstance(name, str) else str(name)
    if tls and not name:
        raise FleetError("%s: nginx_tls_enabled is true but nginx_server_name is empty; set the public DNS "
                         "name of Dify (nginx_server_name), or nginx_tls_enabled: false" % edge_host)
    scheme = "https" if tls else "http"
    port = get_key(hv, "nginx_https_port" if tls else "nginx_http_port") or (443 if tls else 80)
    host = url_host(name or host_address(edge_host, hostvars))
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise FleetError("%s: nginx_%s_port=%r is not a port number" % (edge_host, scheme, port)) from None
    return "%s://%s%s" % (scheme, host, "" if port == (443 if tls else 80) else ":%d" % port)

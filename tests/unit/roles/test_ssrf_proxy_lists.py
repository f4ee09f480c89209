# -*- coding: utf-8 -*-
"""roles/ssrf_proxy: the destinations squid refuses.

The list lives in one place, ``__ssrf_proxy_private_networks`` in
roles/ssrf_proxy/vars/main.yml. These tests check it against the IANA IPv4
and IPv6 Special-Purpose Address Registries (with squid's view of
addresses: IPv4 is held as IPv4-mapped IPv6), then render the role's
squid.conf.j2 with ansible-playbook on a local connection (the role's
defaults and vars, the collection's filters) and, when squid is installed,
check the rendered file with ``squid -k parse`` (nothing is started).
"""

from __future__ import annotations

import ipaddress
import os
import re

import pytest
import yaml
from role_render import render_template, squid_parse

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_ROLE = os.path.join(_TOP, "roles", "ssrf_proxy")

# IANA IPv4 Special-Purpose Address Registry (not globally reachable
# entries), the deprecated 6to4 relay anycast block, and multicast.
IPV4_SPECIAL = [
    "0.0.0.0/8", "0.0.0.0/32", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "169.254.169.254/32", "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32",
    "192.0.0.170/32", "192.0.0.171/32", "192.88.99.0/24", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
]
# IANA IPv6 Special-Purpose Address Registry, and the other ranges that
# must never be fetched (site-local, multicast). ::ffff:0:0/96 is checked
# through the IPv4 ranges it maps (test_ipv4_mapped_private_space_is_refused).
IPV6_SPECIAL = [
    "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001::/32",
    "2001:2::/48", "2001:10::/28", "2001:20::/28", "2002::/16", "3fff::/20",
    "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
]
# Registry ranges left reachable on purpose (roles/ssrf_proxy/vars/main.yml
# says why): documentation and benchmarking ranges stand in for public
# addresses (fake-IP DNS, the lab's Debian mirror at 203.0.113.80).
STAND_INS = ["192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
# Squid holds every IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d).
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# Destinations that must stay reachable (the public internet).
PUBLIC = ["1.1.1.1", "8.8.8.8", "151.101.2.132", "2a04:4e42::644", "2606:4700:4700::1111", "2001:4860:4860::8888"]


def private_networks():
    with open(os.path.join(_ROLE, "vars", "main.yml")) as f:
        return yaml.safe_load(f)["__ssrf_proxy_private_networks"]


def squid_form(network):
    """``network`` as squid compares it: IPv4 as IPv4-mapped IPv6."""
    net = ipaddress.ip_network(network)
    if net.version == 4:
        return ipaddress.IPv6Network((int(_MAPPED.network_address) | int(net.network_address), 96 + net.prefixlen))
    return net


def refused(network):
    """The deny entries ``network`` lies entirely inside (squid's view)."""
    target = squid_form(network)
    return [e for e in private_networks() if target.subnet_of(squid_form(e))]


@pytest.mark.parametrize("network", STAND_INS)
def test_stand_ins_for_public_addresses_stay_reachable(network):
    assert refused(network) == []


def test_entries_are_valid_networks_written_as_squid_reads_them():
    entries = private_networks()
    assert entries and len(entries) == len(set(entries))
    for entry in entries:
        assert isinstance(entry, str), entry
        net = ipaddress.ip_network(entry, strict=True)  # no host bits set
        assert str(net) == entry, "write %s as %s" % (entry, net)
        assert "/" in entry, entry


def test_no_entry_overlaps_another():
    # squid keeps the first of two overlapping entries of one acl and drops
    # the second, whichever is wider (e.g. ::/96 after ::1/128).
    nets = [(e, squid_form(e)) for e in private_networks()]
    for i, (a, na) in enumerate(nets):
        for b, nb in nets[i + 1:]:
            assert not na.overlaps(nb), "%s overlaps %s" % (a, b)


def test_no_ipv4_mapped_entry():
    # To squid "::ffff:0:0/96" is every IPv4 address: it would refuse the
    # whole internet (or, overlapping 0.0.0.0/8, be dropped). IPv4 ranges are
    # written as IPv4.
    for entry in private_networks():
        net = ipaddress.ip_network(entry)
        if net.version == 6:
            assert not net.overlaps(_MAPPED), entry


@pytest.mark.parametrize("network", IPV4_SPECIAL + IPV6_SPECIAL)
def test_special_purpose_range_is_refused(network):
    assert refused(network), "%s is not in __ssrf_proxy_private_networks" % network


@pytest.mark.parametrize("network", IPV4_SPECIAL)
def test_ipv4_mapped_private_space_is_refused(network):
    # [::ffff:10.0.0.1] is 10.0.0.1 to squid: the IPv4 entries refuse it.
    v4 = ipaddress.ip_network(network)
    mapped = ipaddress.IPv6Network((int(_MAPPED.network_address) | int(v4.network_address), 96 + v4.prefixlen))
    assert [e for e in private_networks() if mapped.subnet_of(squid_form(e))], mapped


@pytest.mark.parametrize("address", PUBLIC)
def test_public_internet_stays_reachable(address):
    assert not refused(address + ("/32" if ":" not in address else "/128"))


def render(tmp_path, extra_vars=None):
    """(ansible-playbook result, squid.conf text) as the role writes it on host ``proxy``."""
    return render_template(tmp_path, "ssrf_proxy", "squid.conf.j2", "proxy",
                           {"proxy": "10.8.0.1", "api": "10.8.0.2", "box": "10.8.0.3"},
                           {"dify_ssrf_proxy": ["proxy"], "dify_api": ["api"], "dify_worker": ["api"],
                            "dify_sandbox": ["box"]}, extra_vars)


def test_template_writes_every_entry_and_squid_takes_them_all(tmp_path):
    res, text = render(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    written = re.findall(r"^acl to_private_networks dst (\S+)$", text, re.M)
    assert written == private_networks()
    for needle in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/23", "169.254.0.0/16"):
        assert "acl to_private_networks dst %s\n" % needle in text
    assert "::ffff:0:0/96" not in text
    rules = re.findall(r"^http_access .*$", text, re.M)
    assert rules.index("http_access deny to_private_networks") < rules.index("http_access allow fleet_clients")
    assert "acl allowed_private_networks" not in text
    out = squid_parse(text, tmp_path)
    if out is not None:
        # squid read every entry: none dropped as a "subnetwork" of another
        assert "subnetwork" not in out and "is ignored" not in out, out
        assert out.count("Processing: acl to_private_networks dst ") == len(private_networks())


def test_allow_list_still_comes_before_the_deny_list(tmp_path):
    res, text = render(tmp_path, {"ssrf_proxy_allow_private_ips": ["10.20.0.15/32", "64:ff9b::/96"],
                                  "ssrf_proxy_allow_private_domains": ["llm.internal.example"]})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "acl allowed_private_networks dst 10.20.0.15/32 64:ff9b::/96\n" in text
    assert "acl allowed_private_domains dstdomain -n llm.internal.example\n" in text
    rules = re.findall(r"^http_access .*$", text, re.M)
    deny = rules.index("http_access deny to_private_networks")
    assert rules.index("http_access allow allowed_private_networks") < deny
    assert rules.index("http_access allow allowed_private_domains") < deny
    # only fleet clients get that far
    assert rules.index("http_access deny !fleet_clients !localhost") < rules.index(
        "http_access allow allowed_private_networks")
    squid_parse(text, tmp_path)

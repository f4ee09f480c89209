# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight refuses the mistakes operators really make (issue 14): one case per kind.

Each case changes a good fleet (test_preflight's three hosts) in one way and
expects check_fleet to name the host, the variable, the value and the fix.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import copy

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import preflight as pf

from test_preflight import DEBIAN, GROUPS, hostvars, specs

SPECS = specs()
ADDRESSES = {"data": "10.0.0.11", "app": "10.0.0.12", "edge": "10.0.0.13"}


def fleet(groups=None, **extra):
    """The good fleet with each host's private default IPv4 fact, plus changes."""
    hv = hostvars()
    for host, address in ADDRESSES.items():
        hv[host]["ansible_facts"]["default_ipv4"] = {"address": address}
        hv[host]["ansible_facts"]["memtotal_mb"] = 16000
    for host, vars_ in extra.items():
        hv.setdefault(host, {"ansible_facts": dict(DEBIAN)}).update(vars_)
    return copy.deepcopy(groups or GROUPS), hv


def errors_of(groups, hv):
    return pf.check_fleet(groups, hv, SPECS)


def test_the_good_fleet_passes():
    assert errors_of(*fleet()) == []


def _facts(host, **facts):
    hv = hostvars()
    base = dict(hv[host]["ansible_facts"], default_ipv4={"address": ADDRESSES[host]}, memtotal_mb=16000)
    base.update(facts)
    return {"ansible_facts": base}


PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PG_BOOKWORM = dict(DEBIAN, distribution_release="bookworm", distribution_major_version="12",
                   default_ipv4={"address": "10.0.0.11"})

# (kind, groups change, host variables, substrings of one error)
CASES = [
    # inventory groups
    ("group_case_or_dash", {"Dify-Api": ["app"]}, {}, ["group Dify-Api", "did you mean dify_api?"]),
    ("group_misspelt", {"dify_workers": ["edge"]}, {}, ["group dify_workers", "did you mean dify_worker?"]),
    ("group_bare_service_name", {"all": GROUPS["all"] + ["r1"], "redis": ["r1"]}, {"r1": {}},
     ["group redis (hosts r1)", "[dify_redis]"]),
    # ports
    ("port_out_of_range", None, {"data": {"redis_port": 70000}}, ["data: redis_port = 70000 is not a port"]),
    ("port_clash", None, {"data": {"redis_port": 5432}}, ["data: two services would listen on port 5432",
                                                          "postgresql_port", "redis_port"]),
    # addresses
    ("address_url", None, {"app": {"ansible_host": "http://10.0.0.5"}},
     ["app: ansible_host = 'http://10.0.0.5' is a URL", "(10.0.0.5)"]),
    ("address_with_port", None, {"app": {"ansible_host": "10.0.0.5:22"}}, ["carries a port", "ansible_port"]),
    ("address_with_prefix", None, {"app": {"difyops_address": "10.0.0.5/24"}},
     ["app: difyops_address = '10.0.0.5/24' carries a prefix length"]),
    ("address_bad_dns_name", None, {"app": {"ansible_host": "app_1.example.net"}},
     ["ansible_host = 'app_1.example.net' is neither an IP address nor a DNS name"]),
    ("address_public", None, {"app": {"difyops_address": "8.8.8.8"}},
     ["app: the fleet address (difyops_address) is 8.8.8.8, a public address", "difyops_allow_public_addresses"]),
    ("address_loopback_multi_host", None, {"app": {"difyops_address": "127.0.0.1"}}, ["a loopback address"]),
    ("address_unroutable", None, {"app": {"difyops_address": "169.254.10.10"}}, ["which no host can connect to"]),
    ("address_duplicate", None, {"app": _facts("app", default_ipv4={"address": "10.0.0.11"})},
     ["data, app: all have the fleet address 10.0.0.11", "10.0.2.15"]),
    # public names
    ("server_name_url", None, {"edge": {"nginx_server_name": "https://dify.example.com/"}},
     ["edge: nginx_server_name: 'https://dify.example.com/' is a URL", "(dify.example.com)"]),
    ("server_name_path", None, {"edge": {"nginx_server_name": "dify.example.com/app"}}, ["carries a path"]),
    ("server_name_port", None, {"edge": {"nginx_server_name": "dify.example.com:8443"}},
     ["carries a port", "nginx_https_port"]),
    ("server_name_upper_case", None, {"edge": {"nginx_server_name": "Dify.Example.com"}},
     ["has upper-case letters", "(dify.example.com)"]),
    ("server_name_trailing_dot", None, {"edge": {"nginx_server_name": "dify.example.com."}}, ["ends with a dot"]),
    ("server_name_wildcard", None, {"edge": {"nginx_server_name": "*.example.com"}}, ["is a wildcard"]),
    ("server_name_ip_with_tls", None, {"edge": {"nginx_server_name": "203.0.113.7"}}, ["is an IP address"]),
    ("server_name_localhost", None, {"edge": {"nginx_server_name": "localhost"}}, ["is not a public DNS name"]),
    ("server_name_several", None, {"edge": {"nginx_server_name": "dify.example.com www.example.com"}},
     ["holds spaces or several names", "nginx_server_aliases"]),
    ("server_name_differs_between_edges", {"dify_edge": ["edge", "app"]},
     {"app": {"nginx_server_name": "dify2.example.com"}}, ["nginx_server_name differs between the edge hosts"]),
    ("certbot_email_placeholder", None, {"edge": {"certbot_email": "you@example.com"}},
     ["certbot_email = 'you@example.com' is the documentation's placeholder"]),
    ("certbot_email_not_an_address", None, {"edge": {"certbot_email": "mailto:ops@corp.example.net"}},
     ["is not an e-mail address"]),
    # paths
    ("path_holds_pem", None, {"edge": {"nginx_tls_certificate": PEM}}, ["nginx_tls_certificate holds PEM content"]),
    ("path_relative", None, {"edge": {"nginx_tls_certificate": "certs/dify.pem"}}, ["is a relative path"]),
    ("path_home", None, {"edge": {"nginx_tls_certificate": "~/dify.pem"}}, ["expands ~ on the controller"]),
    # SSRF proxy allow-lists
    ("ssrf_metadata", None, {"edge": {"ssrf_proxy_allow_private_ips": ["169.254.169.254/32"]}},
     ["covers the link-local metadata service", "ssrf_proxy_allow_wide: true"]),
    ("ssrf_everything", None, {"edge": {"ssrf_proxy_allow_private_ips": ["0.0.0.0/0"]}}, ["is every address"]),
    ("ssrf_too_wide", None, {"edge": {"ssrf_proxy_allow_private_ips": ["10.0.0.0/7"]}}, ["is wider than /8"]),
    ("ssrf_name_in_ip_list", None, {"edge": {"ssrf_proxy_allow_private_ips": ["llm.internal"]}},
     ["ssrf_proxy_allow_private_domains"]),
    ("ssrf_host_bits", None, {"edge": {"ssrf_proxy_allow_private_ips": ["10.20.0.15/16"]}}, ["has host bits set"]),
    ("ssrf_domain_url", None, {"edge": {"ssrf_proxy_allow_private_domains": ["https://llm.internal:8443/v1"]}},
     ["is a URL or has a port or path", "'llm.internal'"]),
    ("ssrf_domain_wildcard", None, {"edge": {"ssrf_proxy_allow_private_domains": ["*.corp.example"]}},
     ["'.corp.example'"]),
    ("ssrf_open_proxy", None, {"edge": {"ssrf_proxy_clients_extra": ["::/0"]}},
     ["ssrf_proxy_clients_extra entry '::/0' is every address", "anyone there could use the proxy"]),
    # the sandbox's own network
    ("sandbox_network_holds_fleet_address", None, {"edge": {"dify_sandbox_network_subnet": "10.0.0.0/24"}},
     ["edge: dify_sandbox_network_subnet = '10.0.0.0/24' holds the fleet address of data (10.0.0.11)"]),
    ("sandbox_network_host_bits", None, {"edge": {"dify_sandbox_network_subnet": "172.29.194.1/24"}},
     ["has host bits set; write the network (172.29.194.0/24)"]),
    ("sandbox_network_not_private_ipv4", None, {"edge": {"dify_sandbox_network_subnet": "fd00:194::/64"}},
     ["is not an IPv4 network in CIDR form"]),
    ("sandbox_network_public", None, {"edge": {"dify_sandbox_network_subnet": "8.8.8.0/24"}},
     ["is not a private range"]),
    ("sandbox_network_default_holds_fleet_address", None,
     {"edge": _facts("edge", default_ipv4={"address": "172.29.194.13"})},
     ["dify_sandbox_network_subnet (unset: the catalog's 172.29.194.0/24) holds the fleet address of edge"]),
    ("sandbox_network_size", None, {"edge": {"dify_sandbox_network_subnet": "172.16.0.0/12"}},
     ["is /12; give a /16 to /29"]),
    # Dify 1.16's local sandbox's own network: the same rules, and apart from the sandbox's (issue 15)
    ("local_sandbox_network_holds_fleet_address", {"dify_local_sandbox": ["edge"]},
     {"edge": {"dify_local_sandbox_network_subnet": "10.0.0.0/24"}},
     ["edge: dify_local_sandbox_network_subnet = '10.0.0.0/24' holds the fleet address of data (10.0.0.11)",
      "The local sandbox's own Docker network"]),
    ("local_sandbox_network_public", {"dify_local_sandbox": ["edge"]},
     {"edge": {"dify_local_sandbox_network_subnet": "8.8.4.0/24"}}, ["is not a private range"]),
    ("local_sandbox_network_overlaps_sandbox", {"dify_local_sandbox": ["edge"]},
     {"edge": {"dify_local_sandbox_network_subnet": "172.29.194.128/25"}},
     ["edge: dify_local_sandbox_network_subnet = '172.29.194.128/25' overlaps the sandbox's network, "
      "dify_sandbox_network_subnet (unset: the catalog's 172.29.194.0/24)"]),
    ("sandbox_network_moved_onto_the_local_sandbox_default", {"dify_local_sandbox": ["edge"]},
     {"edge": {"dify_sandbox_network_subnet": "172.29.195.0/24"}},
     ["edge: dify_local_sandbox_network_subnet (unset: the catalog's 172.29.195.0/24) overlaps the sandbox's "
      "network, dify_sandbox_network_subnet = '172.29.195.0/24'"]),
    # firewall
    ("firewall_internal_port_to_world", None, {"data": {"firewall_extra_sources": {"postgresql": ["0.0.0.0/0"]}}},
     ["data: firewall_extra_sources.postgresql contains 0.0.0.0/0"]),
    ("firewall_unknown_group", None, {"data": {"firewall_extra_sources": {"web": ["dify_ssrf_proxi"]}}},
     ["is no inventory group (did you mean dify_ssrf_proxy?)"]),
    ("firewall_unknown_port_key", None, {"data": {"firewall_extra_sources": {"postgres": ["10.0.0.0/8"]}}},
     ["no port of the catalog (did you mean postgresql?)"]),
    ("firewall_locks_out_ssh", None, {"app": {"ansible_port": 2222, "firewall_ssh_ports": [22]}},
     ["app: firewall_ssh_ports is [22] but Ansible connects on port 2222"]),
    ("firewall_blocks_cert_push", {"dify_edge": ["edge", "app"]},
     {"app": {"nginx_server_name": "dify.example.com", "firewall_ssh_sources": ["192.0.2.10/32", "dify_api"]}},
     ["app: firewall_ssh_sources ['192.0.2.10/32', 'dify_api'] does not let in 10.0.0.13, the address edge "
      "(certbot_issuer) pushes", "or set certbot_sync_push: false"]),
    # versions
    ("postgresql_not_packaged", None, {"data": {"postgresql_version": "15"}},
     ["data: postgresql_version = '15', but Debian 13 (trixie) packages PostgreSQL 17 only",
      "postgresql_pgdg_repository: true"]),
    ("postgresql_majors_differ", {"dify_postgres": ["data", "app"]},
     {"app": {"ansible_facts": dict(PG_BOOKWORM, default_ipv4={"address": "10.0.0.12"})}},
     ["would run different PostgreSQL majors (15 on app; 17 on data)"]),
    ("dify_version_unknown", None, {"app": {"dify_version": "1.14.0"}},
     ["dify_version = '1.14.0' is not a release", "1.13.3, 1.16.1"]),
    ("dify_version_v_prefix", None, {"app": {"dify_version": "v1.13.3"}}, ["dify_version: '1.13.3'"]),
    ("dify_version_differs", {"dify_worker": ["edge"]}, {"edge": {"dify_version": "1.13.3"}},
     ["dify_version differs between the Dify hosts"]),
    # hosts, URLs, storage locations
    ("host_var_is_url", None, {"app": {"dify_redis_host": "redis://10.0.0.9:6379/0"}},
     ["app: dify_redis_host = 'redis://10.0.0.9:6379/0' is a URL", "dify_redis_port"]),
    ("host_var_with_port", None, {"app": {"dify_db_host": "db.example.net:5432"}},
     ["dify_db_host = 'db.example.net:5432' carries a port", "dify_db_port"]),
    ("sentinel_entry_url", None, {"app": {"dify_redis_sentinels": ["sentinel://10.0.0.11:26379"]}},
     ["dify_redis_sentinels entry 'sentinel://10.0.0.11:26379' is a URL"]),
    ("sentinel_entry_no_port", None, {"app": {"dify_redis_sentinels": ["10.0.0.11"]}}, ["has no port"]),
    ("s3_endpoint_no_scheme", None, {"app": {"storage_s3_endpoint": "minio.internal:9000"}},
     ["storage_s3_endpoint = 'minio.internal:9000' has no scheme", "'https://minio.internal:9000'"]),
    ("nfs_src_not_an_export", None, {"app": {"storage_nfs_src": "nfs://nfs1/export/dify"}},
     ["storage_nfs_src = 'nfs://nfs1/export/dify' is not an NFS export"]),
    ("url_without_scheme", None, {"app": {"dify_qdrant_url": "qdrant.internal:6333"}},
     ["dify_qdrant_url = 'qdrant.internal:6333' has no scheme"]),
    # one value across hosts
    ("storage_backend_differs", {"dify_worker": ["edge"]},
     {"app": {"storage_backend": "s3"}, "edge": {"storage_backend": "nfs"}},
     ["storage_backend differs between the Dify hosts"]),
    ("db_type_differs", {"dify_worker": ["edge"]}, {"edge": {"dify_db_type": "mysql"}},
     ["dify_db_type differs between the Dify hosts"]),
    ("vector_store_differs", {"dify_worker": ["edge"]}, {"edge": {"dify_vector_store": "qdrant"}},
     ["dify_vector_store differs between the Dify hosts"]),
    ("master_name_differs", None, {"data": {"redis_sentinel_master_name": "mymaster"},
                                   "app": {"dify_redis_master_name": "dify-master"}},
     ["Dify would ask the Sentinels for a master they do not monitor"]),
    ("secrets_differ_between_hosts", None,
     {"data": {"difyops_secrets": {"db_password": "Pk7Lm3Nq9Rs2Tv5Wx8Yz1Ab4Cd6Ef0Gh"}},
      "app": {"difyops_secrets": {"db_password": "Zq3vX8pLk2Wn7Rt5Yb9Hc4Jd6Mf1Gs0A"}}},
     ["difyops_secrets differs between hosts", "app; data"]),
    # credentials
    ("credential_with_whitespace", None, {"data": {"redis_password": "Pk7Lm3Nq9Rs2 Tv5Wx8Yz1"}},
     ["data: redis_password = a string of 22 characters", "contains whitespace"]),
    ("credential_too_short", None, {"data": {"postgresql_dify_password": "hunter2"}}, ["is too short"]),
    ("credential_not_a_string", None, {"data": {"redis_password": 12345678901234567890}},
     ["must be a string, got int"]),
    ("credential_in_plain_name", None,
     {"app": {"dify_env_extra": {"api": {"MY_PROVIDER": "sk-abcdefghijklmnopqrstuvwx1234"}}}},
     ["dify_env_extra.api.MY_PROVIDER holds what looks like an OpenAI-style API key (not shown)"]),
    # sizes
    ("memory_in_kib", None, {"app": {"difyops_memory_mb": 16384000}}, ["it looks like KiB", "difyops_memory_mb: 16000"]),
    ("memory_in_bytes", None, {"app": {"difyops_memory_mb": 16777216000}},
     ["it looks like bytes", "difyops_memory_mb: 16000"]),
    ("memory_more_than_host", None, {"app": {"difyops_memory_mb": 64000}}, ["but the host has 16000 MiB"]),
    ("redis_maxmemory_over_ram", None, {"data": {"redis_maxmemory": "32gb"}},
     ["data: redis_maxmemory = '32gb' (32768 MiB) is more than the host's 16000 MiB"]),
    # types YAML lets through
    ("string_for_list", None, {"data": {"firewall_ssh_sources": "10.0.0.0/8,192.168.0.0/16"}},
     ["data: firewall_ssh_sources = '10.0.0.0/8,192.168.0.0/16' is a string",
      "firewall_ssh_sources: [10.0.0.0/8, 192.168.0.0/16]"]),
    ("boolean_for_list", None, {"edge": {"certbot_extra_domains": False}}, ["certbot_extra_domains = False is a bool"]),
    ("null_value", None, {"edge": {"nginx_tls_enabled": None}}, ["nginx_tls_enabled is set to nothing"]),
    ("ha_not_boolean", None, {"data": {"difyops_ha": "maybe"}}, ["difyops_ha = 'maybe' is not a boolean"]),
    ("unknown_host_in_host_list", None, {"edge": {"ssrf_proxy_sandbox_hosts": ["egde"]}},
     ["ssrf_proxy_sandbox_hosts names 'egde', which is no inventory host (did you mean edge?)"]),
    ("unknown_group_in_client_groups", None, {"data": {"postgresql_client_groups": ["dify_apis"]}},
     ["postgresql_client_groups names 'dify_apis', which is no inventory group (did you mean dify_api?)"]),
]


@pytest.mark.parametrize("kind, groups_change, extra, expected", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_refused(kind, groups_change, extra, expected):
    groups, hv = fleet(**copy.deepcopy(extra))
    for name, hosts in (groups_change or {}).items():
        groups[name] = hosts
    errors = errors_of(groups, hv)
    hits = [e for e in errors if all(x in e for x in expected)]
    assert hits, "%s: no error with %r in:\n%s" % (kind, expected, "\n".join(errors))


def test_every_kind_is_a_distinct_case():
    assert len(set(c[0] for c in CASES)) == len(CASES) >= 40


def test_a_refused_credential_is_not_shown():
    groups, hv = fleet(data={"redis_password": "Pk7Lm3Nq9Rs2 Tv5Wx8Yz1"},
                       app={"dify_env_extra": {"api": {"X": "sk-abcdefghijklmnopqrstuvwx1234"}},
                            "dify_redis_host": "redis://:s3cretPassw0rd@10.0.0.9:6379"})
    text = "\n".join(errors_of(groups, hv))
    for secret in ("Pk7Lm3Nq9Rs2", "sk-abcdefghijklmnop", "s3cretPassw0rd"):
        assert secret not in text


@pytest.mark.parametrize("extra", [
    {"app": {"difyops_address": "8.8.8.8", "difyops_allow_public_addresses": True}},
    {"edge": {"ssrf_proxy_allow_private_ips": ["169.254.169.254/32"], "ssrf_proxy_allow_wide": True}},
    {"edge": {"nginx_server_name": "dify.lab.test", "certbot_email": "ops@dify.lab.test",
              "certbot_acme_server": "https://mol-edge-acme:14000/dir"}},
    {"edge": {"nginx_server_name": "pebble", "certbot_acme_server": "https://pebble:14000/dir"}},
    {"edge": {"nginx_server_name": "10.0.0.13", "nginx_tls_enabled": False}},
    {"data": {"postgresql_version": "15", "postgresql_pgdg_repository": True}},
    {"data": {"firewall_extra_sources": {"web": ["dify_ssrf_proxy"], "http": ["0.0.0.0/0"]},
              "firewall_ssh_sources": ["0.0.0.0/0", "::/0"]}},
    {"app": {"storage_nfs_src": "nfs-1.example.internal:/export/dify", "storage_s3_endpoint": "https://minio:9000",
             "dify_redis_sentinels": ["10.0.0.11:26379", "s1.example.net:26379"]}},
    {"edge": {"ssrf_proxy_allow_private_ips": ["{{ groups['dify_web'] | map('extract', hostvars) | list }}"],
              "nginx_server_name": "{{ edge_lab_domain }}", "difyops_address": "{{ lab_address }}"}},
    {"app": {"difyops_memory_mb": 8192, "redis_maxmemory": "4gb", "dify_version": "1.16.1"},
     "edge": {"dify_version": "1.16.1"}},
])
def test_what_operators_mean_passes(extra):
    groups, hv = fleet(**copy.deepcopy(extra))
    assert errors_of(groups, hv) == []


@pytest.mark.parametrize("receiver", [
    {"firewall_ssh_sources": ["10.0.0.0/24"]},
    {"firewall_ssh_sources": ["192.0.2.10", "dify_edge"]},
    {"firewall_ssh_sources": ["192.0.2.10"], "certbot_sync_push": False},
    {"firewall_ssh_sources": ["192.0.2.10"], "certbot_sync_sources": ["192.0.2.10"]},
])
def test_a_firewall_that_lets_the_cert_push_in_passes(receiver):
    groups, hv = fleet(app=dict(receiver, nginx_server_name="dify.example.com"))
    groups["dify_edge"] = ["edge", "app"]
    assert errors_of(groups, hv) == []


def test_local_connection_facts_are_the_controllers_and_not_judged():
    # tests/preflight runs a whole fleet with ansible_connection: local: every
    # host reports the controller's own address.
    groups, hv = fleet()
    for host in hv:
        hv[host]["ansible_connection"] = "local"
        hv[host]["ansible_facts"]["default_ipv4"] = {"address": "93.184.216.34"}
    assert errors_of(groups, hv) == []
    hv["app"]["ansible_connection"] = "ssh"
    assert [e for e in errors_of(groups, hv) if "public address" in e]


def test_sample_inventory_shapes_pass():
    # inventories/single-node (192.0.2.10, a documentation address) and the
    # lab's 10.201.0.x addresses
    groups, hv = fleet()
    hv["data"]["ansible_facts"]["default_ipv4"] = {"address": "192.0.2.10"}
    for i, host in enumerate(("app", "edge")):
        hv[host]["ansible_facts"]["default_ipv4"] = {"address": "10.201.0.%d" % (10 + i)}
    hv["edge"]["nginx_server_name"] = "dify.lab.test"
    assert errors_of(groups, hv) == []

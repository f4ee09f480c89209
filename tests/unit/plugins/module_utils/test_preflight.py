# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests of the fleet preflight rules (module_utils/preflight.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import copy
import os

import pytest
import yaml

from ansible_collections.difyops.fleet.plugins.module_utils import preflight as pf

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

DEBIAN = {"distribution": "Debian", "distribution_release": "trixie", "distribution_major_version": "13"}

GROUPS = {
    "all": ["data", "app", "edge"],
    "dify_postgres": ["data"], "dify_redis": ["data"], "dify_sentinel": ["data"],
    "dify_api": ["app"], "dify_worker": ["app"], "dify_beat": ["app"], "dify_web": ["app"],
    "dify_plugin_daemon": ["app"], "dify_sandbox": ["edge"], "dify_ssrf_proxy": ["edge"],
    "dify_edge": ["edge"],
    # Dify 1.16+ (the default release): the agent services
    "dify_agent_backend": ["app"], "dify_local_sandbox": ["edge"], "dify_agent_ssrf_proxy": ["edge"],
}


def hostvars(**extra):
    hv = dict((h, {"ansible_facts": dict(DEBIAN), "inventory_hostname": h}) for h in GROUPS["all"])
    hv["edge"]["nginx_server_name"] = "dify.example.com"
    for host, vars_ in extra.items():
        hv[host].update(vars_)
    return hv


def specs():
    out = {}
    roles = os.path.join(TOP, "roles")
    for role in sorted(os.listdir(roles)):
        path = os.path.join(roles, role, "meta", "argument_specs.yml")
        if os.path.exists(path):
            with open(path) as f:
                out[role] = yaml.safe_load(f)
    return out


def test_a_good_fleet_has_no_problem():
    assert pf.check_fleet(GROUPS, hostvars(), specs()) == []


def test_every_problem_is_reported_at_once():
    groups = dict(GROUPS, dify_edge=[])
    hv = hostvars(app={"redis_password": "difyai123456", "nginx_tls_enabled": "maybe"})
    errors = pf.check_fleet(groups, hv, specs(), plan_errors=["dify_beat must have exactly one host"])
    text = "\n".join(errors)
    assert "group dify_edge is empty" in text
    assert "redis_password is 'difyai123456'" in text
    assert "nginx_tls_enabled = 'maybe' is refused by role nginx" in text
    assert "capacity plan: dify_beat must have exactly one host" in text
    assert len(errors) == 4


def test_unsupported_os_names_host_and_release():
    hv = hostvars()
    hv["data"]["ansible_facts"] = {"distribution": "Ubuntu", "distribution_release": "jammy",
                                   "distribution_major_version": "22"}
    (err,) = pf.check_facts(GROUPS, hv)
    assert err.startswith("data: runs Ubuntu 22 (jammy)")
    assert "Debian 12 (bookworm) and 13 (trixie)" in err


def test_bookworm_is_supported_and_no_facts_is_reported():
    hv = hostvars()
    hv["data"]["ansible_facts"]["distribution_release"] = "bookworm"
    hv["app"]["ansible_facts"] = {}
    errors = pf.check_facts(GROUPS, hv)
    assert len(errors) == 1 and errors[0].startswith("app: no facts could be gathered")


def test_unreachable_host_is_reported_by_name():
    errors = pf.check_facts(GROUPS, hostvars(), unreachable=["edge"])
    assert len(errors) == 1 and errors[0].startswith("edge: cannot be reached")


def test_tls_needs_a_domain_unless_off():
    hv = hostvars()
    hv["edge"].pop("nginx_server_name")
    (err,) = pf.check_tls(GROUPS, hv)
    assert "nginx_server_name is ''" in err and "nginx_tls_enabled: false" in err
    hv["edge"]["nginx_tls_enabled"] = False
    assert pf.check_tls(GROUPS, hv) == []
    hv["edge"]["nginx_tls_enabled"] = "yes"
    assert len(pf.check_tls(GROUPS, hv)) == 1


def test_sample_secrets_only_in_credential_variables():
    hv = hostvars(app={
        "common_dify_user": "dify",          # a sample value, but not a credential
        "postgresql_db_name": "postgres",    # idem
        "postgresql_dify_password": "Difyai123456",
        "dify_env_extra": {"api": {"SECRET_KEY": "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U"}},
        "difyops_secrets": {"sandbox_api_key": "dify-sandbox"},
    })
    errors = pf.check_sample_secrets(GROUPS, hv)
    paths = sorted(e.split(" is ")[0] for e in errors)
    assert paths == ["app: dify_env_extra.api.SECRET_KEY", "app: difyops_secrets.sandbox_api_key",
                     "app: postgresql_dify_password"]


def test_same_problem_on_many_hosts_is_one_line():
    hv = hostvars(**dict((h, {"redis_password": "difyai123456"}) for h in GROUPS["all"]))
    (err,) = pf.check_sample_secrets(GROUPS, hv)
    assert err.startswith("data, app, edge: redis_password")


def test_argument_specs_type_choice_and_misspelling():
    hv = hostvars(data={"redis_appendfsync": "sometimes", "redis_maxmemory_policy_x": 1,
                        "nginx_server_nmae": "x", "postgresql_max_connections": "many"})
    errors = pf.check_argument_specs(GROUPS, hv, specs())
    text = "\n".join(errors)
    assert "redis_appendfsync = 'sometimes' is refused by role redis" in text
    assert "always, everysec, no" in text
    assert "nginx_server_nmae is not a variable of role nginx (did you mean nginx_server_name?)" in text
    assert "postgresql_max_connections = 'many' is refused by role postgresql" in text


def test_longest_role_prefix_owns_the_variable():
    # redis_sentinel_* belongs to redis_sentinel, not to redis.
    assert pf._owner("redis_sentinel_port", ["redis", "redis_sentinel"]) == "redis_sentinel"
    assert pf._owner("redis_port", ["redis", "redis_sentinel"]) == "redis"
    assert pf._owner("difyops_secrets", ["dify"]) is None


def test_valid_values_and_templates_pass():
    hv = hostvars(data={"redis_appendfsync": "everysec", "nginx_tls_enabled": "{{ tls_on }}",
                        "firewall_ssh_sources": ["10.0.0.0/8"]})
    assert pf.check_argument_specs(GROUPS, hv, specs()) == []


def test_required_groups():
    groups = copy.deepcopy(GROUPS)
    groups["dify_sandbox"] = []
    del groups["dify_web"]
    errors = pf.check_groups(groups)
    # in catalog order
    assert [e.split(" is ")[0] for e in errors] == ["group dify_web", "group dify_sandbox"]
    assert "Add at least one host to [dify_web]" in errors[0]


def test_beat_takes_exactly_one_host():
    groups = dict(GROUPS, dify_beat=["app", "edge"])
    (err,) = pf.check_groups(groups)
    assert err.startswith("group dify_beat has 2 hosts (app, edge) but takes exactly 1")
    assert "Keep only app in [dify_beat]" in err
    (err,) = pf.check_groups(dict(GROUPS, dify_beat=[]))
    assert "group dify_beat is empty" in err and "Add exactly one host to [dify_beat]" in err


def test_one_plugin_daemon_host():
    (err,) = pf.check_groups(dict(GROUPS, dify_plugin_daemon=["app", "edge"]))
    assert "group dify_plugin_daemon has 2 hosts (app, edge) but takes at most 1" in err
    assert "not HA" in err


@pytest.mark.parametrize("count, fix", [(2, "use 3"), (4, "use 3 or 5")])
def test_sentinels_odd_and_three_for_ha(count, fix):
    names = ["s%d" % i for i in range(count)]
    groups = dict(GROUPS, dify_sentinel=names, dify_redis=["data", "app"])
    hv = hostvars()
    (err,) = pf.check_groups(groups, hv)
    assert "%d Sentinel(s)" % count in err and fix in err and "difyops_ha" in err
    # difyops_ha: false (group_vars/all reaches every host) accepts it
    hv.update((n, {"difyops_ha": False}) for n in names)
    assert pf.check_groups(groups, hv) == []
    # one Redis host: nothing to fail over to, HA is not asked for
    assert pf.check_groups(dict(groups, dify_redis=["data"]), hostvars()) == []


def test_format_numbers_every_problem():
    text = pf.format_errors(["a", "b"])
    assert text.splitlines() == ["Preflight refused the fleet; nothing was changed. 2 problems:", "1. a", "2. b"]


FLEET_GROUPS = dict(GROUPS, all=["data", "app1", "app2", "edge"], dify_api=["app1", "app2"],
                    dify_worker=["app2"], dify_beat=["app2"], dify_web=["app1"], dify_plugin_daemon=["app1"])


def fleet_hostvars(**extra):
    hv = dict((h, {"ansible_facts": dict(DEBIAN)}) for h in FLEET_GROUPS["all"])
    hv["edge"]["nginx_server_name"] = "dify.example.com"
    for host, vars_ in extra.items():
        hv[host].update(vars_)
    return hv


def test_local_storage_on_several_app_hosts_is_refused():
    (err,) = pf.check_storage(FLEET_GROUPS, fleet_hostvars())
    assert err.startswith("app1, app2: storage_backend is 'local' but the fleet has 2 api/worker hosts")
    assert "storage_backend: shared" in err and "storage_nfs_src" in err and "storage_s3_bucket" in err


def test_shared_storage_on_every_app_host_passes_and_one_local_host_is_named():
    shared = {"storage_backend": "shared"}
    assert pf.check_storage(FLEET_GROUPS, fleet_hostvars(app1=shared, app2=shared)) == []
    (err,) = pf.check_storage(FLEET_GROUPS, fleet_hostvars(app1=shared))
    assert err.startswith("app2: storage_backend is 'local'")


def test_one_app_host_may_keep_local_storage():
    assert pf.check_storage(GROUPS, hostvars()) == []


def test_a_templated_backend_is_not_judged():
    tpl = {"storage_backend": "{{ my_backend }}"}
    assert pf.check_storage(FLEET_GROUPS, fleet_hostvars(app1=tpl, app2=tpl)) == []


def test_checked_vars_are_inventory_vars_and_facts():
    assert pf.is_checked_var("nginx_server_name") and pf.is_checked_var("ansible_facts")
    assert not pf.is_checked_var("hostvars") and not pf.is_checked_var("ansible_ssh_private_key_file")
    assert not pf.is_checked_var("__internal")


def test_a_mysql_fleet_needs_no_postgres_but_pgvector_does():
    groups = dict(GROUPS, dify_postgres=[], dify_mysql=["data"])
    errors = pf.check_fleet(groups, hostvars(), specs())
    assert not [e for e in errors if "group dify_postgres is empty: no host runs" in e]
    (err,) = [e for e in errors if "pgvector" in e]
    assert err.startswith("app: dify_db_type is 'mysql' and dify_vector_store is 'pgvector'")
    hv = hostvars(app={"dify_vector_store": "qdrant"})
    assert pf.check_database(groups, hv) == []


def test_two_mysql_hosts_are_refused():
    groups = dict(GROUPS, dify_mysql=["data", "edge"])
    (err,) = pf.check_groups(groups, hostvars())
    assert "group dify_mysql has 2 hosts (data, edge)" in err and "Keep only data in [dify_mysql]" in err


def test_a_knob_misspelling_is_named():
    hv = hostvars(app={"dify_plugin_daemon_db_max_open_conns": 12, "dify_plugin_db_max_open_conns": 12,
                       "dify_gunicorn_wrokers": 3})
    text = "\n".join(pf.check_argument_specs(GROUPS, hv, specs()))
    assert "dify_plugin_daemon_db_max_open_conns is not a variable of role dify (did you mean " \
           "dify_plugin_db_max_open_conns?)" in text
    assert "did you mean dify_gunicorn_workers?" in text
    assert "dify_plugin_db_max_open_conns is not" not in text


@pytest.mark.parametrize("all_vars, vec_vars", [
    ({}, {}),                                                            # pgvector with dify_vector hosts
    ({"dify_vector_store": "weaviate"}, {"vector_store_engine": "qdrant"}),  # mismatch
])
def test_dify_uses_the_store_the_fleets_own_vector_host_runs(all_vars, vec_vars):
    groups = dict(GROUPS, all=GROUPS["all"] + ["vec"], dify_vector=["vec"])
    hv = hostvars(**dict((h, dict(all_vars)) for h in GROUPS["all"]))
    hv["vec"] = dict({"ansible_facts": dict(DEBIAN)}, **dict(all_vars, **vec_vars))
    (err,) = pf.check_vector(groups, hv)
    assert err.startswith("app: dify_vector_store is ") and "group dify_vector has hosts (vec)" in err
    hv = hostvars(**dict((h, {"dify_vector_store": "qdrant"}) for h in GROUPS["all"]))
    hv["vec"] = {"dify_vector_store": "qdrant"}
    assert pf.check_vector(groups, hv) == []
    assert pf.check_vector(GROUPS, hostvars()) == []


def _one_role_specs(**options):
    return {"demo": {"argument_specs": {"main": {"options": options}}}}


@pytest.mark.parametrize("name,spec", [
    ("demo_api_token", {"type": "int"}),
    ("demo_setting", {"type": "int", "no_log": True}),
    ("demo_s3_secret_key", {"type": "int"}),
])
def test_a_refused_secret_is_named_without_its_value(name, spec):
    value = "s3cr3t-VALUE-9f8e7d6c"
    hv = hostvars(app={name: value})
    (err,) = pf.check_argument_specs(GROUPS, hv, _one_role_specs(**{name: spec}))
    assert err.startswith("app: %s = a string of %d characters (not shown: %s holds a credential)"
                          % (name, len(value), name))
    assert "refused by role demo" in err
    assert value not in err and "s3cr3t" not in err


def test_a_refused_ordinary_value_is_shown():
    hv = hostvars(app={"demo_key_type": "dsa"})
    specs_ = _one_role_specs(demo_key_type={"type": "str", "choices": ["ecdsa", "rsa"]})
    (err,) = pf.check_argument_specs(GROUPS, hv, specs_)
    assert "demo_key_type = 'dsa' is refused" in err


def test_shown_values():
    assert pf.shown("redis_port", 70000) == "70000"
    assert pf.shown("mysql_dify_password", "abcdefgh") == (
        "a string of 8 characters (not shown: mysql_dify_password holds a credential)")
    assert pf.shown("storage_s3_access_key", ["AKIA"]) == (
        "a list (not shown: storage_s3_access_key holds a credential)")

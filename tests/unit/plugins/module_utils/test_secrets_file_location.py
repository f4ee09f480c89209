# -*- coding: utf-8 -*-
"""One secrets file per inventory source (secrets.secrets_file_location, filter difyops.fleet.secrets_file)."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.fleet.plugins.filter.secrets import FilterModule
from ansible_collections.difyops.fleet.plugins.module_utils.secrets import secrets_file_location

DIRS = {"/p/inventories/lab", "/p/inventories/example-prod", "/p/inventories/prod", "/p/inventories/prod/"}


def where(sources, **kw):
    return secrets_file_location(sources, "/p", isdir=lambda path: path in DIRS, **kw)


@pytest.mark.parametrize("source, path", [
    # Directory inventories keep the file deployed fleets already have.
    ("/p/inventories/lab", "/p/secrets/lab.yml"),
    ("/p/inventories/example-prod", "/p/secrets/example-prod.yml"),
    ("/p/inventories/prod/", "/p/secrets/prod.yml"),
    # A file: its directory's name and its own.
    ("/p/inventories/prod/staging.yml", "/p/secrets/prod-staging.yml"),
    ("/p/inventories/prod/hosts.yml", "/p/secrets/prod-hosts.yml"),
    ("/p/inventories/prod/hosts", "/p/secrets/prod-hosts.yml"),
    ("/p/inventories/prod/eu west.ini", "/p/secrets/prod-eu-west.yml"),
])
def test_one_source(source, path):
    got = where([source])
    assert got["problem"] == "" and got["path"] == path


def test_two_files_of_one_directory_get_two_files():
    staging = where(["/p/inventories/prod/staging.yml"])
    prod = where(["/p/inventories/prod/hosts.yml"])
    assert staging["path"] != prod["path"]
    # Both point at the file earlier releases shared, for the migration hint.
    assert staging["legacy_path"] == prod["legacy_path"] == "/p/secrets/prod.yml"
    assert where(["/p/inventories/prod"])["legacy_path"] == ""


def test_several_sources_are_refused_unless_named():
    sources = ["/p/inventories/prod/hosts.yml", "/p/inventories/prod/staging.yml"]
    got = where(sources)
    assert got["path"] == ""
    assert "2 inventory sources" in got["problem"]
    assert "difyops_inventory_name" in got["problem"] and "difyops_secrets_file" in got["problem"]
    assert where(sources, inventory_name="prod")["path"] == "/p/secrets/prod.yml"
    assert where(sources, secrets_file="/vault/prod.yml")["path"] == "/vault/prod.yml"
    # The same source twice is one source.
    assert where(["/p/inventories/lab", "/p/inventories/lab/"])["path"] == "/p/secrets/lab.yml"


def test_no_source_and_host_lists_are_refused():
    assert "No inventory sources" in where([])["problem"]
    got = where(["api1,api2,"])
    assert "host list" in got["problem"] and got["path"] == ""
    assert where(["api1,api2,"], inventory_name="tiny")["path"] == "/p/secrets/tiny.yml"


def test_explicit_names_and_paths():
    assert where(["/p/inventories/lab"], inventory_name="other")["path"] == "/p/secrets/other.yml"
    assert where(["/p/inventories/lab"], secrets_file="secrets/x/../y.yml")["path"] == "/p/secrets/y.yml"
    assert where(["/p/inventories/lab"], secrets_file="/abs/s.yml")["path"] == "/abs/s.yml"
    bad = where(["/p/inventories/lab"], inventory_name="../etc")
    assert bad["path"] == "" and "difyops_inventory_name" in bad["problem"]


def test_filter_treats_empty_values_as_unset(tmp_path):
    inv = tmp_path / "inventories" / "prod"
    inv.mkdir(parents=True)
    (inv / "staging.yml").write_text("all: {}\n")
    secrets_file = FilterModule().filters()["secrets_file"]
    assert secrets_file([str(inv)], str(tmp_path), None, "")["path"] == str(tmp_path / "secrets" / "prod.yml")
    assert secrets_file([str(inv / "staging.yml")], str(tmp_path))["path"] == \
        str(tmp_path / "secrets" / "prod-staging.yml")

"""The ssrf_proxy scenario's hosts for its tests (helpers: proxy_helpers.py)."""

import pytest

from difyops_scenario import address, lab_host


@pytest.fixture(scope="module")
def lab():
    """({role: host}, {role: address}) of the scenario's proxy, api and sandbox hosts."""
    hosts = {role: lab_host("mol-ssrf_proxy-" + role) for role in ("proxy", "api", "sandbox")}
    return hosts, {role: address(h) for role, h in hosts.items()}

"""Helpers the ssrf_proxy scenario's proxy tests share (test_ssrf_proxy.py, test_agent_proxy.py):
a request through one of the proxy host's squids, as a client host makes it, and what a served
and a refused answer look like. The `lab` fixture (hosts and addresses) is in conftest.py."""

SQUID_PORT = 3128  # the first squid (dify_ssrf_proxy), for api/worker/sandbox/plugin daemon hosts
AGENT_PORT = 3129  # the agent squid (dify_agent_ssrf_proxy), for the local sandbox hosts
PUBLIC_URL = "http://deb.debian.org/debian/dists/trixie/Release"  # a public destination


def fetch(host, proxy, url, port=SQUID_PORT):
    """(status, body, headers) of `url` fetched through the squid at `proxy`:`port` from `host`."""
    files = "/tmp/proxy-fetch-%d" % port
    cmd = host.run(
        "curl -sS --max-time 20 -D %s.h -o %s.b -w '%%{http_code}' -x http://%s:%d '%s'; echo;"
        " cat %s.h; echo ==BODY==; cat %s.b" % (files, files, proxy, port, url, files, files)
    )
    status, dummy, rest = cmd.stdout.partition("\n")
    headers, dummy, body = rest.partition("==BODY==\n")
    return status.strip(), body, headers


def served(result):
    """The body of a fetch() that squid served (200); fails on any other answer."""
    status, body, headers = result
    assert status == "200", (status, headers)
    return body


def assert_refused(result):
    """A fetch() that squid itself denied (403 with its access-denied error), not a failed fetch."""
    status, dummy, headers = result
    assert status == "403", result
    assert "X-Squid-Error: ERR_ACCESS_DENIED" in headers, result

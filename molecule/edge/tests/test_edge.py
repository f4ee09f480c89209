"""The edge tier seen from outside: routes, streaming, TLS, certificate, renewal.

Requests are sent from the backend host (it also runs the fixture listeners
standing in for Dify's api, web and plugin daemon) to the edge by its DNS
name, as a browser would; the edge host is inspected for what happens there.
"""
import json
import os
import time

import pytest
import testinfra

DOMAIN = "dify.lab.test"
LISTENER_CA = "/etc/ssl/difyops-lab/pebble-listener.pem"
PEBBLE_ROOT = "/tmp/pebble-root.pem"
BACKEND = "mol-edge-backend"

testinfra_hosts = ["ansible://" + BACKEND]


def _host(name):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, inventory))


@pytest.fixture(scope="module")
def client(host):
    # Pebble's root changes at every start: fetch the current one.
    host.run_test("curl -sf --cacert %s -o %s https://mol-edge-acme:15000/roots/0",
                  LISTENER_CA, PEBBLE_ROOT)
    return host


@pytest.fixture(scope="module")
def edge():
    return _host("mol-edge-edge")


def _get(client, path):
    cmd = client.run_test("curl -sf --cacert %s https://%s%s", PEBBLE_ROOT, DOMAIN, path)
    return json.loads(cmd.stdout)


def _served_certificate(client):
    out = client.run_test(
        "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s "
        "-verify_return_error 2>/dev/null | openssl x509 -noout -serial -issuer",
        DOMAIN, DOMAIN, PEBBLE_ROOT).stdout
    fields = dict(line.split("=", 1) for line in out.strip().splitlines())
    return fields["serial"], fields["issuer"]


@pytest.mark.parametrize("path,service", [
    ("/console/api/apps", "api"),
    ("/api/passport", "api"),
    ("/v1/chat-messages", "api"),
    ("/files/abc/file-preview", "api"),
    ("/mcp/server/x/mcp", "api"),
    ("/triggers/webhook/abc", "api"),
    ("/e/abc/hook", "plugin_daemon"),
    ("/explore/apps", "web"),
    ("/apps", "web"),
    ("/", "web"),
])
def test_route_reaches_its_upstream(client, path, service):
    answer = _get(client, path)
    assert answer["service"] == "%s@%s" % (service, BACKEND)
    assert answer["path"] == path
    headers = answer["headers"]
    assert headers["host"] == DOMAIN
    assert headers["x-forwarded-proto"] == "https"
    # Keepalive to the upstream: nginx must not send "Connection: close".
    assert "close" not in headers.get("connection", "")
    if service == "plugin_daemon":
        assert headers["dify-hook-url"] == "https://%s%s" % (DOMAIN, path)
    else:
        assert "dify-hook-url" not in headers


def test_large_upload_accepted(client):
    # Below client_max_body_size (100M), above nginx's 1M default.
    cmd = client.run_test(
        "head -c 5000000 /dev/zero | curl -sf --cacert %s -X POST --data-binary @- "
        "-H 'Content-Type: application/octet-stream' https://%s/console/api/files/upload",
        PEBBLE_ROOT, DOMAIN)
    assert json.loads(cmd.stdout)["body_bytes"] == 5000000


def test_streamed_response_is_not_buffered(client):
    out = client.run_test("/usr/local/bin/difyops-stream-timing %s %s %s", DOMAIN,
                          "/v1/chat-messages?stream=5&interval=1", PEBBLE_ROOT).stdout
    arrivals = json.loads(out)
    assert len(arrivals) == 5, arrivals
    # The upstream sends one event a second; a buffering proxy would deliver
    # them together at the end.
    assert arrivals[0] < 1.5, arrivals
    assert arrivals[-1] - arrivals[0] >= 3.0, arrivals
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.5, arrivals


def test_http_redirects_to_https(client):
    out = client.run_test("curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' "
                          "http://%s/v1/x?a=1", DOMAIN).stdout
    assert out == "301 https://%s/v1/x?a=1" % DOMAIN


def test_security_headers(client):
    out = client.run_test("curl -sf -D - -o /dev/null --cacert %s https://%s/", PEBBLE_ROOT, DOMAIN).stdout.lower()
    assert "strict-transport-security: max-age=63072000" in out
    assert "x-content-type-options: nosniff" in out
    assert "referrer-policy: strict-origin-when-cross-origin" in out
    assert "server: nginx\r\n" in out  # no version


def test_certificate_issued_by_pebble(client):
    serial, issuer = _served_certificate(client)
    assert "Pebble Intermediate" in issuer
    assert serial


def test_no_protocol_below_tls12(client):
    for proto in ("-tls1", "-tls1_1"):
        cmd = client.run("echo | openssl s_client %s -connect %s:443 -servername %s", proto, DOMAIN, DOMAIN)
        assert cmd.rc != 0, proto
    for proto in ("-tls1_2", "-tls1_3"):
        client.run_test("echo | openssl s_client %s -connect %s:443 -servername %s -CAfile %s -verify_return_error",
                        proto, DOMAIN, DOMAIN, PEBBLE_ROOT)


# Findings about the lab CA's certificates, not about the edge: pebble puts
# neither a CRL nor an OCSP URL in what it issues (Let's Encrypt certificates
# carry a CRL URL). Every other finding counts.
CA_FINDINGS = {"cert_revocation"}


def test_testssl_reports_no_high_or_critical_finding(client):
    client.run("rm -f /tmp/testssl.json")
    # Offline: no DNS beyond /etc/hosts (--nodns min), no phoning out (the
    # default), pebble's current root added as trusted. Headers are tested
    # above; this run covers protocols, cipher categories, the certificate
    # and the known vulnerabilities.
    cmd = client.run(
        "testssl --quiet --color 0 --warnings off --nodns min --add-ca %s "
        "--jsonfile /tmp/testssl.json --protocols --std --server-defaults "
        "--vulnerable %s:443", PEBBLE_ROOT, DOMAIN)
    findings = json.loads(client.file("/tmp/testssl.json").content_string)
    assert findings, cmd.stdout + cmd.stderr
    assert any(f["id"] == "cert_chain_of_trust" and f["severity"] == "OK" for f in findings), \
        [f for f in findings if f["id"].startswith("cert_chain")]
    bad = [f for f in findings
           if f.get("severity") in ("HIGH", "CRITICAL") and f["id"] not in CA_FINDINGS]
    assert not bad, json.dumps(bad, indent=1)
    offered = {f["id"]: f["finding"] for f in findings if f["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert offered[old].startswith("not offered"), offered
    assert offered["TLS1_2"].startswith("offered"), offered
    assert offered["TLS1_3"].startswith("offered"), offered


def test_edge_configuration_is_valid_and_certificate_switched(edge):
    edge.run_test("nginx -t -q")
    # The placeholder was replaced by links to certbot's lineage.
    for name in ("fullchain.pem", "privkey.pem"):
        path = "/etc/nginx/tls/%s/%s" % (DOMAIN, name)
        assert edge.file(path).is_symlink, path
        assert edge.check_output("readlink %s", path) == "/etc/letsencrypt/live/%s/%s" % (DOMAIN, name)
    key = edge.file("/etc/nginx/tls/%s/privkey.pem" % DOMAIN)
    assert key.mode & 0o077 == 0


def test_renewal_runs_on_the_timer_with_the_lab_environment(edge):
    timer = edge.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    env = edge.run_test("systemctl show -p Environment certbot.service").stdout
    assert "REQUESTS_CA_BUNDLE=%s" % LISTENER_CA in env
    # The unit the timer starts really runs (the certificate is not due yet).
    edge.run_test("systemctl start certbot.service")
    assert edge.run("systemctl show -p Result --value certbot.service").stdout.strip() == "success"


def test_forced_renewal_is_served_after_a_reload(client, edge):
    serial_before = _served_certificate(client)[0]
    main_pid = edge.run_test("systemctl show -p MainPID --value nginx").stdout.strip()
    since = edge.run_test("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    edge.run_test("REQUESTS_CA_BUNDLE=%s certbot renew --force-renewal --cert-name %s --no-random-sleep-on-renew",
                  LISTENER_CA, DOMAIN)
    serial_after = serial_before
    for _attempt in range(20):
        serial_after, issuer = _served_certificate(client)
        if serial_after != serial_before:
            break
        time.sleep(0.5)
    assert serial_after != serial_before
    assert "Pebble Intermediate" in issuer
    # The deploy hook ran and reloaded (same master process: no restart).
    journal = edge.run_test("journalctl -t difyops-certbot --since %s --no-pager", since).stdout
    assert "reloading nginx" in journal
    assert edge.run_test("systemctl show -p MainPID --value nginx").stdout.strip() == main_pid
    reloads = edge.run_test("journalctl -u nginx --since %s --no-pager", since).stdout
    assert "Reload" in reloads or "reload" in reloads

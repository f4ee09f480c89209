"""The edge tier seen from outside: routes, streaming, TLS, certificate, renewal.

Requests are sent from the backend host (it also runs the fixture listeners
standing in for Dify's api, web and plugin daemon) to the edge by its DNS
name, as a browser would; the edge hosts are inspected for what happens there.
The first edge host orders and renews the certificate and pushes it to the
second (certbot_sync_push); both are asked, by address with the public name
in SNI, which certificate they serve.
"""
import json
import os
import subprocess
import time

import pytest
import testinfra

DOMAIN = "dify.lab.test"
LISTENER_CA = "/etc/ssl/difyops-lab/pebble-listener.pem"
PEBBLE_ROOT = "/tmp/pebble-root.pem"
BACKEND = "mol-edge-backend"
ISSUER = "mol-edge-edge"
RECEIVER = "mol-edge-edge2"
EDGES = (ISSUER, RECEIVER)
INSTALLER = "/usr/local/sbin/difyops-cert-install"
PUSH_KEY = "/etc/difyops/cert-sync/id_ed25519"
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

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
    return _host(ISSUER)


@pytest.fixture(scope="module")
def edge2():
    return _host(RECEIVER)


def _get(client, path):
    cmd = client.run_test("curl -sf --cacert %s https://%s%s", PEBBLE_ROOT, DOMAIN, path)
    return json.loads(cmd.stdout)


def _served_certificate(client, edge_host=DOMAIN):
    """(serial, issuer, SHA-256 fingerprint) of what edge_host serves for DOMAIN, verified with pebble's root."""
    out = client.run_test(
        "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s "
        "-verify_return_error 2>/dev/null | openssl x509 -noout -serial -issuer -fingerprint -sha256",
        edge_host, DOMAIN, PEBBLE_ROOT).stdout
    fields = dict(line.split("=", 1) for line in out.strip().splitlines())
    return fields["serial"], fields["issuer"], fields["sha256 Fingerprint"]


def _served_everywhere(client):
    return {name: _served_certificate(client, name) for name in EDGES}


def _wait_served(client, edge_host, serial_before):
    """What edge_host serves once it no longer serves serial_before (or after 10 s)."""
    served = _served_certificate(client, edge_host)
    for _attempt in range(20):
        if served[0] != serial_before:
            break
        time.sleep(0.5)
        served = _served_certificate(client, edge_host)
    return served


def _now(host):
    return host.run_test("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()


def _main_pid(host):
    return host.run_test("systemctl show -p MainPID --value nginx").stdout.strip()


def _push_ssh(edge, command, stdin_from="true"):
    """The issuer's push key used as the push script uses it, towards the receiver;
    stdin_from: a shell command whose output is sent."""
    return edge.run(
        "%s | ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
        "-o UserKnownHostsFile=/etc/difyops/cert-sync/targets/%s.known_hosts -o GlobalKnownHostsFile=/dev/null "
        "-o HostKeyAlias=%s -o HostKeyAlgorithms=ssh-ed25519 difyops-certsync@%s %s"
        % (stdin_from, PUSH_KEY, RECEIVER, RECEIVER, RECEIVER, command))


def _smoke():
    """The smoke tier's edge checks, run for real on the scenario's edge hosts."""
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         os.path.join(TOP, "playbooks", "tiers", "smoke.yml"), "--limit", "dify_edge"],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))


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
    serial, issuer, _fingerprint = _served_certificate(client)
    assert "Pebble Intermediate" in issuer
    assert serial


def test_every_edge_serves_the_same_certificate(client):
    served = _served_everywhere(client)
    assert served[ISSUER] == served[RECEIVER], served
    assert "Pebble Intermediate" in served[RECEIVER][1]


def test_receiver_accepts_the_push_key_for_the_receiving_script_only(edge, edge2):
    # The private half never left the issuer; the receiver trusts the public half
    # from the issuer's address, for one forced command, without pty or forwarding.
    assert edge.file(PUSH_KEY).mode == 0o600
    assert edge.file(os.path.dirname(PUSH_KEY)).mode == 0o700
    assert not edge2.run("ls /etc/difyops/cert-sync/id_ed25519").succeeded
    public = edge.file(PUSH_KEY + ".pub").content_string.split()[:2]
    issuer_address = edge.run_test("ip -4 -json route get 1.1.1.1").stdout
    issuer_address = json.loads(issuer_address)[0]["prefsrc"]
    authorized = edge2.file("/var/lib/difyops-certsync/.ssh/authorized_keys")
    assert authorized.user == "root" and authorized.mode == 0o644
    lines = authorized.content_string.strip().splitlines()
    assert len(lines) == 1, lines
    options, keytype, key = lines[0].split()[:3]
    assert [keytype, key] == public
    assert options == 'restrict,from="%s",command="%s"' % (issuer_address, INSTALLER)
    # Anything but the receiving script's two words is refused, with no shell.
    denied = _push_ssh(edge, "id")
    assert denied.rc != 0 and "uid=" not in denied.stdout, denied.stdout + denied.stderr
    # sudo allows the script with exactly status or install.
    assert "difyops-cert-install status" in edge2.run_test("sudo -l -U difyops-certsync").stdout
    assert not edge2.run("su -s /bin/sh -c 'sudo -n /bin/true' difyops-certsync").succeeded
    status = _push_ssh(edge, "status")
    assert status.rc == 0, status.stderr
    served = edge2.run_test("openssl x509 -in /etc/nginx/tls/%s/fullchain.pem -noout -fingerprint -sha256",
                            DOMAIN).stdout.strip().split("=", 1)[1]
    assert status.stdout.strip() == served
    cert = edge2.file("/etc/nginx/tls/%s/fullchain.pem" % DOMAIN)
    key = edge2.file("/etc/nginx/tls/%s/privkey.pem" % DOMAIN)
    assert not cert.is_symlink and cert.mode == 0o640 and cert.user == "root"
    assert key.mode == 0o600 and key.user == "root"


@pytest.mark.parametrize("bundle,reason", [
    # The issuer's chain with a key of its own: the key does not match.
    ("cat /etc/letsencrypt/live/{d}/fullchain.pem /tmp/bad/other.key", "does not match"),
    # A pair that matches but is not for the public name.
    ("cat /tmp/bad/wrong-name.pem /tmp/bad/other.key", "not valid for {d}"),
    # A pair for the name that has expired.
    ("cat /tmp/bad/expired.pem /tmp/bad/other.key", "has expired"),
    ("echo not a certificate", "not a certificate chain"),
])
def test_receiver_refuses_a_bad_pair(client, edge, edge2, bundle, reason):
    edge.run_test("mkdir -p /tmp/bad && cd /tmp/bad && "
                  "{ [ -s other.key ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key; } && "
                  "openssl req -x509 -key other.key -days 30 -subj /CN=other.test "
                  "-addext subjectAltName=DNS:other.test -out wrong-name.pem 2>/dev/null && "
                  "openssl req -x509 -key other.key -subj /CN=%s -addext subjectAltName=DNS:%s "
                  "-not_before 20200101000000Z -not_after 20200201000000Z -out expired.pem 2>/dev/null",
                  DOMAIN, DOMAIN)
    before = _served_certificate(client, RECEIVER)
    pid = _main_pid(edge2)
    since = _now(edge2)
    refused = _push_ssh(edge, "install", stdin_from=bundle.format(d=DOMAIN))
    assert refused.rc != 0
    assert reason.format(d=DOMAIN) in refused.stderr, refused.stderr
    assert _served_certificate(client, RECEIVER) == before
    assert _main_pid(edge2) == pid
    journal = edge2.run_test("journalctl -t difyops-certbot -p err --since %s --no-pager", since).stdout
    assert "certificate from the issuing edge refused: " in journal and reason.format(d=DOMAIN) in journal, journal
    assert "PRIVATE KEY" not in journal and "PRIVATE KEY" not in refused.stderr


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


def test_forced_renewal_reaches_every_edge_after_a_reload(client, edge, edge2):
    before = _served_everywhere(client)
    pids = {ISSUER: _main_pid(edge), RECEIVER: _main_pid(edge2)}
    since = {ISSUER: _now(edge), RECEIVER: _now(edge2)}
    # No converge: certbot renews on the issuer, its deploy hook does the rest.
    edge.run_test("REQUESTS_CA_BUNDLE=%s certbot renew --force-renewal --cert-name %s --no-random-sleep-on-renew",
                  LISTENER_CA, DOMAIN)
    after = {name: _wait_served(client, name, before[name][0]) for name in EDGES}
    assert after[ISSUER][0] != before[ISSUER][0]
    assert after[RECEIVER] == after[ISSUER], after
    assert "Pebble Intermediate" in after[RECEIVER][1]
    for name, host in ((ISSUER, edge), (RECEIVER, edge2)):
        # Reloaded (same master process: no restart).
        assert _main_pid(host) == pids[name], name
        reloads = host.run_test("journalctl -u nginx --since %s --no-pager", since[name]).stdout
        assert "Reload" in reloads or "reload" in reloads, name
    journal = edge.run_test("journalctl -t difyops-certbot --since %s --no-pager", since[ISSUER]).stdout
    assert "reloading nginx" in journal
    assert "pushed %s to %s" % (after[ISSUER][2], RECEIVER) in journal, journal
    journal2 = edge2.run_test("journalctl -t difyops-certbot --since %s --no-pager", since[RECEIVER]).stdout
    assert "installed certificate %s" % after[ISSUER][2] in journal2, journal2


def _words(text):
    return " ".join(text.split())


def test_failed_push_is_logged_retried_and_named_by_smoke(client, edge, edge2):
    timer = edge.service("difyops-cert-push.timer")
    assert timer.is_enabled and timer.is_running
    before = _served_everywhere(client)
    since = _now(edge)
    edge2.run_test("systemctl stop ssh.service ssh.socket")
    try:
        renew = edge.run("REQUESTS_CA_BUNDLE=%s certbot renew --force-renewal --cert-name %s "
                         "--no-random-sleep-on-renew", LISTENER_CA, DOMAIN)
        served = {ISSUER: _wait_served(client, ISSUER, before[ISSUER][0]),
                  RECEIVER: _served_certificate(client, RECEIVER)}
        assert served[ISSUER][0] != before[ISSUER][0]
        assert served[RECEIVER] == before[RECEIVER]
        journal = edge.run_test("journalctl -t difyops-certbot -p err --since %s --no-pager", since).stdout
        assert "not up to date: %s" % RECEIVER in journal, journal
        # certbot reports the deploy hook's failure, with the push's words.
        output = renew.stdout + renew.stderr
        assert "error" in output.lower() and RECEIVER in output, output
        # The smoke tier names the edge that serves another certificate.
        smoke = _smoke()
        assert smoke.returncode != 0
        assert "%s serves another certificate for %s than %s" % (RECEIVER, DOMAIN, ISSUER) \
            in _words(smoke.stdout + smoke.stderr), smoke.stdout + smoke.stderr
        # What the timer starts fails too while the receiver cannot be reached.
        assert not edge.run("systemctl start difyops-cert-push.service").succeeded
    finally:
        edge2.run_test("systemctl start ssh.service")
    # The retry (what the timer starts) brings the receiver up to date.
    edge.run_test("systemctl start difyops-cert-push.service")
    assert _served_certificate(client, RECEIVER) == served[ISSUER]
    smoke = _smoke()
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "Every edge serves %s for %s" % (served[ISSUER][2], DOMAIN) in _words(smoke.stdout + smoke.stderr), \
        smoke.stdout + smoke.stderr

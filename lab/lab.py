"""The difyops.fleet test lab: Debian hosts that behave like bare VMs.

Each lab host is a podman container running systemd as PID 1 and sshd, on
one podman network with a fixed subnet, at a fixed address (it keeps it when
stopped and started again, like a VM), reached over SSH with a lab-only key,
like production.
Hosts are privileged so Docker Engine can run inside the app hosts and the
kernel settings of the common role take effect.

    python lab/lab.py up [--layout fleet|aio|fleet14] [--os trixie|bookworm] [--dify-version X.Y.Z]
    python lab/lab.py release X.Y.Z
    python lab/lab.py down
    python lab/lab.py status

`up` replaces any lab host or network this script made before (found by
label), writes inventories/lab/ and prints how to reach the hosts. `down`
removes exactly the containers and the network it made, and the generated
inventory; the base images are kept on purpose (rebuilt only when their
recipe changes).

A layout may declare `shared_dirs` (a host path bind-mounted from one
controller directory, .lab/shared/<name>, into every host of some groups: the
lab's stand-in for a shared filesystem such as NFS or CephFS, which this
kernel cannot serve) and `vars` (written to the generated inventory).

A layout's `release_hosts` places the services a Dify release line adds
(e.g. from 1.16.1 the agent backend, the local sandbox and their proxy):
an entry keyed by a release joins the inventory when the lab's Dify release
is that one or later. `up` takes the release the collection defaults to
(roles/dify/defaults/main.yml) unless `--dify-version` names another, which
is then written to the inventory (group_vars/all/02-lab-release.yml).
`release X.Y.Z` rewrites a running lab's inventory for that release, the
edit a user makes before `playbooks/upgrade.yml` (the fleet test upgrades
its lab from the previous release line this way).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_DIR = os.path.join(TOP, "lab")
STATE = os.path.join(TOP, ".lab")
INVENTORY = os.path.join(TOP, "inventories", "lab")
LABEL = "org.difyops.lab.env=lab"
NETWORK = "difyops-lab"
# Hosts keep their addresses, as VMs do: the network has a fixed subnet and
# every host a fixed address in it (a host stopped hard and started again,
# as the chaos test does, comes back where it was). A private range podman
# does not hand out by itself (it counts up from 10.89.0.0/24).
SUBNET_PREFIX = os.environ.get("LAB_SUBNET_PREFIX", "10.201.0")
FIRST_HOST = 10
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=8192:8192"]

os.environ.setdefault("CONTAINERS_CONF", os.path.join(LAB_DIR, "containers.conf"))


def log(msg):
    print("lab: " + msg, flush=True)


def run(cmd, check=True, capture=False, **kw):
    res = subprocess.run(cmd, check=False, text=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        err = (res.stderr or "").strip() if capture else ""
        raise SystemExit("lab: command failed (%d): %s\n%s" % (res.returncode, " ".join(cmd), err))
    return res


def podman(*args, **kw):
    return run(["podman", *args], **kw)


def ensure_prereqs():
    missing = [p for p, b in (("podman", "podman"), ("runc", "runc"), ("debootstrap", "debootstrap"),
                              ("openssh-client", "ssh"), ("uidmap", "newuidmap"))
               if shutil.which(b) is None and not os.path.exists("/usr/sbin/" + b)]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit("lab: needs root to install %s" % " ".join(missing))
        log("installing " + " ".join(missing))
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *missing], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def ensure_images(suites):
    for suite in suites:
        run(["bash", os.path.join(LAB_DIR, "build-image.sh"), suite])


def ensure_key():
    key = os.path.join(STATE, "ssh", "id_ed25519")
    if not os.path.exists(key):
        os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "difyops-lab-only", "-f", key])
    return key


def default_release():
    """The Dify release the collection deploys unless told otherwise."""
    import yaml
    with open(os.path.join(TOP, "roles", "dify", "defaults", "main.yml")) as fh:
        return str(yaml.safe_load(fh)["dify_version"])


def release_key(version):
    return tuple(int(p) for p in str(version).split("."))


def hosts_for_release(layout, version):
    """The layout's hosts and groups, with the groups of the services release VERSION has."""
    hosts = dict((name, list(gs or [])) for name, gs in (layout.get("hosts") or {}).items())
    for release, placed in sorted((layout.get("release_hosts") or {}).items(), key=lambda kv: release_key(kv[0])):
        if release_key(version) >= release_key(release):
            for name, gs in placed.items():
                if name not in hosts:
                    raise SystemExit("lab: release_hosts %s names %s, which is not a host of the layout" % (release, name))
                hosts[name] += [g for g in gs if g not in hosts[name]]
    return hosts


def load_layout(name):
    path = os.path.join(LAB_DIR, "layouts", name + ".yml")
    if not os.path.exists(path):
        raise SystemExit("lab: no layout %r (see lab/layouts/)" % name)
    import yaml  # from the venv (ansible depends on PyYAML)
    with open(path) as fh:
        return yaml.safe_load(fh)


def ours():
    res = podman("ps", "-a", "--filter", "label=" + LABEL, "--format", "{{.Names}}", capture=True)
    return [n for n in res.stdout.split() if n]


def down(remove_inventory=True):
    names = ours()
    if names:
        log("removing lab hosts: " + " ".join(names))
        podman("rm", "-f", "-t", "5", *names, capture=True)
    res = podman("network", "ls", "--filter", "label=" + LABEL, "--format", "{{.Name}}", capture=True)
    for net in res.stdout.split():
        log("removing network " + net)
        podman("network", "rm", "-f", net, capture=True)
    if remove_inventory and os.path.isdir(INVENTORY):
        shutil.rmtree(INVENTORY)
    # The shared directories' contents belong to the removed hosts.
    shared = os.path.join(STATE, "shared")
    if os.path.isdir(shared):
        shutil.rmtree(shared)
    # Cached facts of removed lab hosts would carry their old addresses.
    cache = os.path.join(TOP, ".cache", "facts")
    if os.path.isdir(cache):
        for f in os.listdir(cache):
            if f.startswith("lab-") or "_lab-" in f:
                os.remove(os.path.join(cache, f))


def shared_mounts(layout, name):
    """-v options for the layout's shared directories this host mounts."""
    groups = layout.get("hosts", {}).get(name) or []
    opts = []
    for shared in layout.get("shared_dirs") or []:
        if set(shared.get("groups") or []) & set(groups):
            src = os.path.join(STATE, "shared", shared["name"])
            os.makedirs(src, exist_ok=True)
            opts += ["-v", "%s:%s:rw" % (src, shared["path"])]
    return opts


def start_host(name, image, pubkey, ip, mounts=()):
    podman("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--ip", ip,
           "--label", LABEL, "--label", "org.difyops.lab.host=" + name,
           "--privileged", "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
           "--systemd=always", *ULIMITS,
           "-v", pubkey + ":/root/.ssh/authorized_keys:ro", *mounts,
           image, "/sbin/init", capture=True)


def address(name):
    res = podman("inspect", name, "--format", "{{json .NetworkSettings.Networks}}", capture=True)
    nets = json.loads(res.stdout)
    return nets[NETWORK]["IPAddress"]


def wait_ready(names, key, timeout=120):
    deadline = time.time() + timeout
    pending = set(names)
    while pending and time.time() < deadline:
        for name in sorted(pending):
            state = podman("exec", name, "systemctl", "is-system-running", check=False, capture=True).stdout.strip()
            if state not in ("running", "degraded"):
                continue
            ssh = run(["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                       "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR",
                       "root@" + address(name), "true"], check=False, capture=True)
            if ssh.returncode == 0:
                pending.discard(name)
        if pending:
            time.sleep(1)
    if pending:
        raise SystemExit("lab: hosts not ready after %ds: %s" % (timeout, " ".join(sorted(pending))))


def write_inventory(layout_name, layout, key, suite, version=None):
    """inventories/lab/ for the layout; VERSION (a Dify release) is written only when asked for."""
    import yaml
    hosts = hosts_for_release(layout, version or default_release())
    fixtures = dict(layout.get("fixtures", {}))
    groups = {}
    for name, gs in list(hosts.items()) + list(fixtures.items()):
        for g in gs:
            groups.setdefault(g, []).append(name)
    inv = {"all": {"hosts": {}, "children": {}}}
    for name in list(hosts) + list(fixtures):
        inv["all"]["hosts"][name] = {"ansible_host": address(name)}
    for g, members in groups.items():
        inv["all"]["children"][g] = {"hosts": {m: None for m in members}}
    os.makedirs(os.path.join(INVENTORY, "group_vars", "all"), exist_ok=True)
    with open(os.path.join(INVENTORY, "hosts.yml"), "w") as fh:
        fh.write("# Generated by lab/lab.py (layout %s, Debian %s); do not edit.\n" % (layout_name, suite))
        yaml.safe_dump(inv, fh, default_flow_style=False, sort_keys=False)
    with open(os.path.join(INVENTORY, "group_vars", "all", "00-lab-connection.yml"), "w") as fh:
        fh.write("# Generated by lab/lab.py; do not edit.\n")
        yaml.safe_dump({
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_python_interpreter": "/usr/bin/python3",
            "difyops_lab_layout": layout_name,
            "difyops_lab_os": suite,
            "difyops_lab_dir": STATE,
            # Concrete names and addresses, so the lab's variables need no
            # hostvars/groups lookups (preflight reads every host's variables).
            "difyops_lab_acme_host": (groups.get("lab_acme") or [""])[0],
            "difyops_lab_web_address": address(groups["dify_web"][0]) if groups.get("dify_web") else "",
        }, fh, default_flow_style=False)
    if layout.get("vars"):
        with open(os.path.join(INVENTORY, "group_vars", "all", "01-lab-layout.yml"), "w") as fh:
            fh.write("# Generated by lab/lab.py from lab/layouts/%s.yml; do not edit.\n" % layout_name)
            yaml.safe_dump(layout["vars"], fh, default_flow_style=False, sort_keys=False)
    release_file = os.path.join(INVENTORY, "group_vars", "all", "02-lab-release.yml")
    if version:
        with open(release_file, "w") as fh:
            fh.write("# Generated by lab/lab.py (--dify-version / release); do not edit.\n")
            yaml.safe_dump({"dify_version": str(version)}, fh, default_flow_style=False)
    elif os.path.exists(release_file):
        os.remove(release_file)
    # The lab's own settings (ACME server, probe images): kept in lab/inventory/.
    src = os.path.join(LAB_DIR, "inventory", "group_vars")
    if os.path.isdir(src):
        for root, _dirs, files in os.walk(src):
            rel = os.path.relpath(root, src)
            for f in files:
                dst_dir = os.path.join(INVENTORY, "group_vars", rel)
                os.makedirs(dst_dir, exist_ok=True)
                shutil.copy(os.path.join(root, f), os.path.join(dst_dir, f))


def up(layout_name, suite, version=None):
    ensure_prereqs()
    ensure_images(sorted({suite, "trixie", "bookworm"}))
    key = ensure_key()
    layout = load_layout(layout_name)
    down(remove_inventory=True)
    podman("network", "create", "--label", LABEL, "--subnet", SUBNET_PREFIX + ".0/24",
           "--gateway", SUBNET_PREFIX + ".1", NETWORK, capture=True)
    names = list(layout.get("hosts", {})) + list(layout.get("fixtures", {}))
    if len(names) > 254 - FIRST_HOST:
        raise SystemExit("lab: %d hosts do not fit in %s.0/24" % (len(names), SUBNET_PREFIX))
    image = "localhost/difyops-lab:" + suite
    for index, name in enumerate(names):
        start_host(name, image, key + ".pub", "%s.%d" % (SUBNET_PREFIX, FIRST_HOST + index),
                   shared_mounts(layout, name))
    log("started %d hosts on network %s; waiting for systemd and sshd" % (len(names), NETWORK))
    wait_ready(names, key)
    write_inventory(layout_name, layout, key, suite, version)
    for name in names:
        log("  %-12s %s" % (name, address(name)))
    log("inventory written to inventories/lab/")


def release(version):
    """Rewrite the running lab's inventory for Dify VERSION (its groups and dify_version)."""
    import yaml
    conn = os.path.join(INVENTORY, "group_vars", "all", "00-lab-connection.yml")
    if not os.path.exists(conn):
        raise SystemExit("lab: no lab inventory (run `lab.py up` first)")
    with open(conn) as fh:
        current = yaml.safe_load(fh)
    layout_name = current["difyops_lab_layout"]
    write_inventory(layout_name, load_layout(layout_name), ensure_key(), current.get("difyops_lab_os", "trixie"),
                    version)
    log("inventory rewritten for Dify %s (layout %s)" % (version, layout_name))


def status():
    for name in ours():
        state = podman("inspect", name, "--format", "{{.State.Status}}", capture=True).stdout.strip()
        print("%-14s %-8s %s" % (name, state, address(name) if state == "running" else "-"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--layout", default=os.environ.get("LAB_LAYOUT", "fleet"))
    p_up.add_argument("--os", default=os.environ.get("LAB_OS", "trixie"), choices=["trixie", "bookworm"])
    p_up.add_argument("--dify-version", default=os.environ.get("LAB_DIFY_VERSION") or None,
                      help="the Dify release (default: the collection's dify_version)")
    p_rel = sub.add_parser("release")
    p_rel.add_argument("version")
    sub.add_parser("down")
    sub.add_parser("status")
    args = ap.parse_args(argv)
    if args.cmd == "up":
        up(args.layout, args.os, args.dify_version)
    elif args.cmd == "release":
        release(args.version)
    elif args.cmd == "down":
        down()
    else:
        status()


if __name__ == "__main__":
    sys.exit(main())

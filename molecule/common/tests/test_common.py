"""Observable effects of difyops.fleet.common on each host."""


def test_dify_user_matches_dify_images(host):
    user = host.user("dify")
    assert user.exists
    assert user.uid == 1001
    assert user.gid == 1001
    assert user.shell == "/usr/sbin/nologin"
    assert host.group("dify").gid == 1001


def test_kernel_settings_in_effect(host):
    # Read from /proc, i.e. what the running kernel uses, not the file.
    assert host.sysctl("vm.overcommit_memory") == 1
    assert host.sysctl("vm.swappiness") == 1
    assert host.sysctl("net.core.somaxconn") == 4096


def test_kernel_settings_persist(host):
    conf = host.file("/etc/sysctl.d/60-difyops.conf")
    assert conf.contains("^vm.overcommit_memory=1$")


def test_transparent_hugepages_off(host):
    enabled = host.file("/sys/kernel/mm/transparent_hugepage/enabled").content_string
    assert "[never]" in enabled
    assert host.service("difyops-disable-thp").is_enabled


def test_open_file_limit(host):
    assert host.file("/etc/security/limits.d/60-difyops.conf").contains("nofile 65536")
    cmd = host.run("systemctl show --property DefaultLimitNOFILE")
    assert cmd.stdout.strip() == "DefaultLimitNOFILE=65536"


def test_base_packages_and_timesync(host):
    for pkg in ("acl", "curl", "jq", "python3-apt", "systemd-timesyncd"):
        assert host.package(pkg).is_installed, pkg
    assert host.service("systemd-timesyncd").is_enabled


def test_timezone(host):
    # Debian 13 has no /etc/timezone any more; /etc/localtime is the truth.
    assert host.file("/etc/localtime").linked_to.endswith("/Etc/UTC")
    assert host.check_output("date +%Z") == "UTC"

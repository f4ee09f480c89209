"""Observable behaviour of difyops.fleet.mysql (Debian's MariaDB) for Dify."""

import os
import subprocess

import pytest

from difyops_scenario import TOP, address, lab_host, scenario_plan

testinfra_hosts = ["mol-mysql-db"]

DB = "mol-mysql-db"
APP = "mol-mysql-app"
OTHER = "mol-mysql-other"
PASSWORD = "molecule-db-password-0123456789"  # molecule.yml, difyops_secrets.db_password


def sql(host, query):
    """Run SQL as root through the unix socket; rows as tab-separated text."""
    cmd = host.run("mariadb -N -B -e %s", query)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def variable(host, name):
    return sql(host, "SELECT @@GLOBAL.%s" % name)


def remote(client, server_addr, query, db="dify", user="dify", password=PASSWORD):
    """Connect over TCP from ``client`` as ``user`` (the way Dify does)."""
    return client.run(
        "MYSQL_PWD=%s mariadb --connect-timeout=10 -N -B -h %s -P 3306 -u %s -e %s" + (" %s" if db else ""),
        password, server_addr, user, query, *([db] if db else []))


def _size_bytes(value):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = str(value)
    if value[-1].upper() in units:
        return int(value[:-1]) * units[value[-1].upper()]
    return int(value)


@pytest.fixture(scope="module")
def db():
    return lab_host(DB)


@pytest.fixture(scope="module")
def tuned():
    """The capacity plan's InnoDB settings for the database host: difyops.fleet.fleet_plan over the
    scenario's inventory (its knobs, mysql_memory_fraction) and its hosts' facts, as the role sizes it."""
    return scenario_plan()["hosts"][DB]["mysql"]


def test_server_is_debians_mariadb(db):
    service = db.service("mariadb")
    assert service.is_running and service.is_enabled
    version = sql(db, "SELECT VERSION()")
    assert "MariaDB" in version
    assert version.startswith("11.8."), version  # Debian 13's MariaDB


def test_buffer_pool_equals_the_plan(db, tuned):
    assert int(variable(db, "innodb_buffer_pool_size")) == _size_bytes(tuned["innodb_buffer_pool_size"])


def test_other_sizes_equal_the_plan(db, tuned):
    # MariaDB has a single redo log file: it holds the whole redo capacity.
    assert int(variable(db, "innodb_log_file_size")) == _size_bytes(tuned["innodb_redo_log_capacity"])
    assert int(variable(db, "max_connections")) == tuned["max_connections"]
    assert int(variable(db, "innodb_flush_log_at_trx_commit")) == tuned["innodb_flush_log_at_trx_commit"]
    assert int(variable(db, "innodb_io_capacity")) == tuned["innodb_io_capacity"]


def test_listens_on_private_address_only(db):
    addr = address(db)
    assert variable(db, "bind_address") == addr
    assert db.socket("tcp://%s:3306" % addr).is_listening
    assert not db.socket("tcp://0.0.0.0:3306").is_listening
    assert not db.socket("tcp://127.0.0.1:3306").is_listening
    assert variable(db, "skip_name_resolve") == "1"


def test_character_set_is_utf8mb4(db):
    assert variable(db, "character_set_server") == "utf8mb4"
    assert variable(db, "collation_server").startswith("utf8mb4_")
    rows = sql(db, "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                   "WHERE SCHEMA_NAME IN ('dify', 'dify_plugin') ORDER BY 1")
    assert rows.splitlines() == ["dify\tutf8mb4", "dify_plugin\tutf8mb4"]


def test_app_host_creates_and_reads_a_table(db):
    app = lab_host(APP)
    addr = address(db)
    for name in ("dify", "dify_plugin"):
        cmd = remote(app, addr, "CREATE TABLE molecule_probe (id INT PRIMARY KEY, note VARCHAR(32)); "
                                "INSERT INTO molecule_probe VALUES (1, CONCAT('fox ', X'F09FA68A')); "
                                "SELECT CURRENT_USER(), HEX(note), @@session.time_zone FROM molecule_probe; "
                                "DROP TABLE molecule_probe", db=name)
        assert cmd.rc == 0, cmd.stderr
        # A 4-byte character stored and read back intact (utf8mb4), as the
        # account for the app host's address, in UTC.
        assert cmd.stdout.strip() == "dify@%s\t666F7820F09FA68A\t+00:00" % address(app)


def test_app_host_with_a_wrong_password_is_refused(db):
    cmd = remote(lab_host(APP), address(db), "SELECT 1", password="wrong-password-0123456789")
    assert cmd.rc != 0
    assert "Access denied for user 'dify'" in cmd.stderr


def test_app_host_cannot_reach_other_databases(db):
    cmd = remote(lab_host(APP), address(db), "SELECT COUNT(*) FROM mysql.user", db="mysql")
    assert cmd.rc != 0
    assert "Access denied" in cmd.stderr


def test_host_outside_the_groups_is_refused(db):
    other = lab_host(OTHER)
    cmd = remote(other, address(db), "SELECT 1")
    assert cmd.rc != 0
    assert "Host '%s' is not allowed to connect" % address(other) in cmd.stderr


def test_dify_account_only_for_app_hosts_and_localhost(db):
    hosts = sql(db, "SELECT Host FROM mysql.user WHERE User = 'dify' ORDER BY Host").splitlines()
    assert sorted(hosts) == sorted(["localhost", address(lab_host(APP))])
    grants = sql(db, "SHOW GRANTS FOR 'dify'@'localhost'")
    assert "ON *.*" not in grants.replace("GRANT USAGE ON *.*", "")
    assert "`dify`.*" in grants and "`dify_plugin`.*" in grants


def test_root_through_the_socket_only(db):
    rows = sql(db, "SELECT User, JSON_VALUE(Priv, '$.plugin'), COALESCE(JSON_LENGTH(Priv, '$.auth_or'), 1) "
                   "FROM mysql.global_priv WHERE User IN ('root', 'mysql') ORDER BY User, Host")
    assert rows.splitlines() == ["mysql\tunix_socket\t1", "root\tunix_socket\t1"]
    assert sql(db, "SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'") == "0"
    # root over TCP, even from the database host itself, is refused.
    cmd = remote(db, address(db), "SELECT 1", db="", user="root", password="")
    assert cmd.rc != 0
    assert "is not allowed to connect" in cmd.stderr
    # The socket lets the OS user root in; another OS user cannot be root.
    assert db.run("runuser -u nobody -- mariadb -u root -e 'SELECT 1'").rc != 0


def test_no_anonymous_accounts_no_test_database(db):
    assert sql(db, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == "0"
    assert sql(db, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'") == "0"


def test_dropin_is_validated(db):
    dropin = db.file("/etc/mysql/mariadb.conf.d/60-difyops.cnf")
    assert dropin.user == "root" and dropin.mode == 0o644
    check = "/usr/local/libexec/difyops-mariadb-checkconf 60-difyops.cnf %s"
    assert db.run(check, dropin.path).rc == 0
    db.run_expect([0], "printf '[mariadbd]\\ninnodb_buffer_poool_size = 1G\\n' > /tmp/bad.cnf")
    assert db.run(check, "/tmp/bad.cnf").rc != 0
    db.run_expect([0], "printf '[mariadbd]\\ninnodb_buffer_pool_size = lots\\n' > /tmp/bad.cnf")
    assert db.run(check, "/tmp/bad.cnf").rc != 0


def test_sample_password_refused():
    """Dify's sample password stops the role before it changes anything, without showing it."""
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         os.path.join(TOP, "molecule", "mysql", "converge.yml"), "-e", "mysql_dify_password=difyai123456"],
        cwd=TOP, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "mysql_dify_password = ************" in out
    assert "one of Dify's public sample values" in out
    assert "difyai123456" not in out.replace("mysql_dify_password=difyai123456", "")
    assert "changed=0" in out

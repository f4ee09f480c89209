"""The PostgreSQL scenarios share their helpers."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "postgresql", "tests"))

from conftest import SECRETS, TOP, address, ansible_host, lab_host, psql, run_playbook, secrets  # noqa: E402,F401

"""The Patroni scenario reuses the PostgreSQL scenarios' helpers (molecule/postgresql/tests/pg_helpers.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "postgresql", "tests"))

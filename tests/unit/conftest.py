# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Make ``ansible_collections.difyops.fleet`` importable in unit tests.

scripts/bootstrap.sh links this checkout as
.collections/ansible_collections/difyops/fleet; putting .collections first on
sys.path lets every test import the collection's plugins by their real name.
When the tests run from an ansible_collections/difyops/fleet tree (ansible-test
units), that tree's root is used instead.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))  # the collection root


def _collections_dir():
    parts = _ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    return os.path.join(_ROOT, ".collections")


_COLLECTIONS = _collections_dir()
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Filters over the fleet's secrets that roles need (the one list of Dify's sample values)."""

from __future__ import annotations

from ansible_collections.difyops.fleet.plugins.module_utils.secrets import check_secret


def secret_problem(value, key="secret"):
    """The problem with a secret value (a sentence naming ``key``, never the value), or ''."""
    return check_secret(str(key), value) or ""


class FilterModule(object):
    def filters(self):
        return {"secret_problem": secret_problem}

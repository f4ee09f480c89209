# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Filters over the fleet's secrets that roles need (the one list of Dify's sample values)."""

from __future__ import annotations

from ansible_collections.difyops.fleet.plugins.module_utils.secrets import (
    check_secret,
    failure_summary as _failure_summary,
    redact as _redact,
    secrets_file_location,
)


def secret_problem(value, key="secret"):
    """The problem with a secret value (a sentence naming ``key``, never the value), or ''."""
    return check_secret(str(key), value) or ""


def redact(text, secrets):
    """``text`` with every value of ``secrets`` (a mapping or a list) replaced by a mask."""
    return _redact(text, secrets)


def failure_summary(result, secrets):
    """The failed items of a hidden task's result, one line each, secrets masked."""
    return _failure_summary(result, secrets)


def secrets_file(sources, base, inventory_name=None, path=None):
    """The fleet's secrets file for these inventory sources: ``{path, name, source, legacy_path, problem}``."""
    return secrets_file_location(sources, base, inventory_name=inventory_name or None, secrets_file=path or None)


class FilterModule(object):
    def filters(self):
        return {"secret_problem": secret_problem, "redact": redact,
                "failure_summary": failure_summary, "secrets_file": secrets_file}

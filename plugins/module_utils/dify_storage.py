# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Dify's file storage as environment variables, from the storage role's settings.

One pure function, ``storage_env``, turns the storage role's variables
(``storage_backend``, ``storage_path``, ``storage_s3_*``, ... without the
``storage_`` prefix) into what each Dify image reads:

* the api image (api, worker, beat, migration): ``STORAGE_TYPE`` (a fixed
  list in DifyConfig) and either ``OPENDAL_SCHEME`` + ``OPENDAL_<SCHEME>_*``
  (OpenDAL; Dify passes every ``OPENDAL_<SCHEME>_<KEY>`` to OpenDAL with the key
  lower-cased) or the ``s3`` interface's ``S3_ENDPOINT``, ``S3_REGION``,
  ``S3_BUCKET_NAME``, ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``,
  ``S3_USE_AWS_MANAGED_IAM``, ``S3_ADDRESS_STYLE`` (api/extensions/storage/
  aws_s3_storage.py: boto3 with ``endpoint_url=S3_ENDPOINT``, so an unset
  endpoint is omitted, never rendered empty);
* the plugin daemon (envconfig, internal/types/app/config.go):
  ``PLUGIN_STORAGE_TYPE``, ``PLUGIN_STORAGE_LOCAL_ROOT``,
  ``PLUGIN_STORAGE_OSS_BUCKET``, ``S3_USE_AWS`` (default true: the AWS SDK's
  own endpoint and credential chain), ``S3_ENDPOINT``, ``S3_USE_PATH_STYLE``
  (default true; read only when S3_USE_AWS is false), ``AWS_ACCESS_KEY``,
  ``AWS_SECRET_KEY``, ``AWS_REGION``, ``S3_USE_AWS_MANAGED_IAM``. The
  ``PLUGIN_S3_*`` / ``PLUGIN_AWS_*`` names of upstream's compose file are
  compose interpolation variables, never read by the daemon.

The defaults below are the storage role's defaults (a unit test keeps them
equal); a setting given as None takes its default, so the dify role can pass
``storage_x | default(none)`` for variables it does not own.
"""

from __future__ import annotations

BACKENDS = ("local", "nfs", "shared", "s3")
PLUGIN_BACKENDS = ("local", "aws_s3")
S3_INTERFACES = ("opendal", "s3")

# The storage role's defaults (roles/storage/defaults/main.yml), without the prefix.
DEFAULTS = {
    "backend": "local",
    "path": "/var/lib/dify/storage",
    "plugin_path": "/var/lib/dify/plugin_daemon",
    "s3_interface": "opendal",
    "s3_bucket": "",
    "s3_endpoint": "",
    "s3_region": "us-east-1",
    "s3_root": "/",
    "s3_access_key": "",
    "s3_secret_key": "",
    "s3_use_iam_role": False,
    "s3_path_style": False,
    "plugin_backend": None,     # aws_s3 when backend is s3, else local
    "plugin_s3_bucket": None,   # s3_bucket
}

# Where the containers see the storage (roles/dify mounts the host paths there).
API_STORAGE_ROOT = "storage"          # relative to the api image's workdir /app/api
PLUGIN_STORAGE_ROOT = "/app/storage"


class StorageError(ValueError):
    """Bad storage settings; the message names the variable and the fix."""


def _bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise StorageError("storage_%s=%r: give true or false" % (name, value))


def settings_of(settings):
    """The settings with every unset (None) one at its default."""
    out = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if key not in DEFAULTS:
            raise StorageError("storage setting %r is not one of %s" % (key, ", ".join(sorted(DEFAULTS))))
        if value is not None:
            out[key] = value
    if out["backend"] not in BACKENDS:
        raise StorageError("storage_backend=%r: choose one of %s" % (out["backend"], ", ".join(BACKENDS)))
    if out["plugin_backend"] is None:
        out["plugin_backend"] = "aws_s3" if out["backend"] == "s3" else "local"
    if out["plugin_backend"] not in PLUGIN_BACKENDS:
        raise StorageError("storage_plugin_backend=%r: choose one of %s"
                           % (out["plugin_backend"], ", ".join(PLUGIN_BACKENDS)))
    if out["plugin_s3_bucket"] is None:
        out["plugin_s3_bucket"] = out["s3_bucket"]
    if out["s3_interface"] not in S3_INTERFACES:
        raise StorageError("storage_s3_interface=%r: choose opendal or s3" % (out["s3_interface"],))
    for key in ("s3_use_iam_role", "s3_path_style"):
        out[key] = _bool(key, out[key])
    for key in ("path", "plugin_path", "s3_bucket", "s3_endpoint", "s3_region", "s3_root", "s3_access_key",
                "s3_secret_key", "plugin_s3_bucket"):
        out[key] = "" if out[key] is None else str(out[key])
    return out


def _need_bucket(s, key="s3_bucket"):
    if not s[key]:
        raise StorageError("storage_%s is empty: S3 storage needs the bucket's name" % key)


def _keys_or_iam(s):
    if not s["s3_use_iam_role"] and not (s["s3_access_key"] and s["s3_secret_key"]):
        raise StorageError("S3 storage needs storage_s3_access_key and storage_s3_secret_key, or "
                           "storage_s3_use_iam_role: true (the instance's IAM role)")


def _api_env(s):
    if s["backend"] != "s3":
        # The host path (storage_path) is mounted at /app/api/storage.
        return {"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "fs", "OPENDAL_FS_ROOT": API_STORAGE_ROOT}
    _need_bucket(s)
    _keys_or_iam(s)
    if s["s3_interface"] == "opendal":
        if s["s3_use_iam_role"]:
            raise StorageError("storage_s3_use_iam_role needs storage_s3_interface: s3 (Dify's "
                               "S3_USE_AWS_MANAGED_IAM); OpenDAL is given keys")
        env = {"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "s3", "OPENDAL_S3_BUCKET": s["s3_bucket"],
               "OPENDAL_S3_REGION": s["s3_region"], "OPENDAL_S3_ROOT": s["s3_root"] or "/",
               "OPENDAL_S3_ACCESS_KEY_ID": s["s3_access_key"],
               "OPENDAL_S3_SECRET_ACCESS_KEY": s["s3_secret_key"],
               "OPENDAL_S3_ENABLE_VIRTUAL_HOST_STYLE": "false" if s["s3_path_style"] else "true"}
        if s["s3_endpoint"]:
            env["OPENDAL_S3_ENDPOINT"] = s["s3_endpoint"]
        return {k: v for k, v in env.items() if v != ""}
    env = {"STORAGE_TYPE": "s3", "S3_BUCKET_NAME": s["s3_bucket"],
           "S3_USE_AWS_MANAGED_IAM": "true" if s["s3_use_iam_role"] else "false",
           "S3_ADDRESS_STYLE": "path" if s["s3_path_style"] else "auto"}
    if s["s3_region"]:
        env["S3_REGION"] = s["s3_region"]
    if s["s3_endpoint"]:
        env["S3_ENDPOINT"] = s["s3_endpoint"]
    if not s["s3_use_iam_role"]:
        env.update(S3_ACCESS_KEY=s["s3_access_key"], S3_SECRET_KEY=s["s3_secret_key"])
    return env


def _plugin_env(s):
    if s["plugin_backend"] == "local":
        return {"PLUGIN_STORAGE_TYPE": "local", "PLUGIN_STORAGE_LOCAL_ROOT": PLUGIN_STORAGE_ROOT}
    _need_bucket(s, "plugin_s3_bucket")
    _keys_or_iam(s)
    # dify-cloud-kit's S3: with S3_USE_AWS=true the AWS SDK's own endpoint
    # resolution and credential chain (keys when given, else the instance
    # role); S3_ENDPOINT is then only a base-endpoint override and
    # S3_USE_PATH_STYLE is ignored. An S3-compatible store (an endpoint) needs
    # S3_USE_AWS=false, static keys and the path style.
    use_aws = not s["s3_endpoint"]
    env = {"PLUGIN_STORAGE_TYPE": "aws_s3", "PLUGIN_STORAGE_OSS_BUCKET": s["plugin_s3_bucket"],
           "PLUGIN_STORAGE_LOCAL_ROOT": PLUGIN_STORAGE_ROOT,
           "S3_USE_AWS": "true" if use_aws else "false",
           "S3_USE_AWS_MANAGED_IAM": "true" if s["s3_use_iam_role"] else "false"}
    if s["s3_region"]:
        env["AWS_REGION"] = s["s3_region"]
    if s["s3_endpoint"]:
        env["S3_ENDPOINT"] = s["s3_endpoint"]
        env["S3_USE_PATH_STYLE"] = "true" if s["s3_path_style"] else "false"
        if s["s3_use_iam_role"]:
            raise StorageError("storage_s3_use_iam_role with storage_s3_endpoint: the plugin daemon uses an "
                               "instance role only with AWS's own endpoints; give keys for an S3-compatible store")
    if not s["s3_use_iam_role"]:
        env.update(AWS_ACCESS_KEY=s["s3_access_key"], AWS_SECRET_KEY=s["s3_secret_key"])
    return env


def storage_env(settings=None):
    """What Dify's images read for the file storage these settings describe.

    Returns ``{"api": {...}, "plugin_daemon": {...}, "host_path": str,
    "plugin_host_path": str}``: the env of the api image family, of the plugin
    daemon, the host directory to mount at ``/app/api/storage`` (empty with
    S3) and the one to mount at the plugin daemon's ``/app/storage`` (always:
    the daemon keeps its working directory there even with S3).
    """
    s = settings_of(settings)
    return {
        "api": _api_env(s),
        "plugin_daemon": _plugin_env(s),
        "host_path": s["path"] if s["backend"] != "s3" else "",
        "plugin_host_path": s["plugin_path"],
    }

# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Extract one Dify release's environment contract from Dify's own source.

Reads git mirrors (nothing is copied into this repository), imports the
release's ``DifyConfig`` from a throwaway extract of its tree, parses the
plugin daemon's and the sandbox's Go sources, the entrypoints, Dockerfiles
and the compose file, writes ``plugins/module_utils/dify_release_<X_Y_Z>.py``
and then verifies the stdlib validator (plugins/module_utils/dify_schema.py)
and the pydantic model rebuilt from the data against the real DifyConfig.

Run it with a Python that has the pydantic / pydantic-settings versions the
release's api/uv.lock pins (see README.md beside this file; make-venv.sh
builds one). Format of the output: docs/CONTRACT.md.
"""

from __future__ import annotations

import argparse
import ast
import base64
import importlib.util
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SCHEMA_PATH = os.path.join(TOP, "plugins", "module_utils", "dify_schema.py")
FORMAT = 1

# ---------------------------------------------------------------- reviewed knowledge
# Everything below is a judgement the extractor cannot make from the source
# alone. Each entry names why; a new release that needs a new entry fails
# loudly instead of guessing.

# DifyConfig field validators, by function name, and what they do to an env
# string (docs/CONTRACT.md, "Field keys"). The verification step checks every
# modelled validator against the real one.
KNOWN_VALIDATORS = {
    # RedisConfig: "Allow empty string in env/.env to mean 'unset' (None)" (blank -> None, else unchanged)
    "_empty_string_to_none_for_max_conns": {"blank": "none"},
    # AzureKeyVaultConfig (main after 1.16.1): same rule for the rotation interval
    "_empty_string_to_none_for_rotation_interval": {"blank": "none"},
    # KnowledgeFSConfig: strip; an empty result is None
    "normalize_optional_string": {"strip": True, "blank": "none"},
    # TurnstileConfig (main after 1.16.1): strip the secret; an empty result is None
    "normalize_secret_key": {"strip": True, "blank": "none"},
    # PluginConfig: a value holding ':' (host:port shaped) raises
    "_reject_host_port_shaped_plugin_remote_install_port": {"reject_substring": ":"},
    # KnowledgeFSConfig: absolute http(s) URL, valid port, no credentials/query/fragment
    "validate_base_url": {"check": "http_base_url"},
}

# Names read by the image's runtime or libraries rather than by Dify's code.
LIBRARY_NAMES = {
    "api": {
        "LANG": "glibc / Python locale", "LC_ALL": "glibc / Python locale", "TZ": "glibc time zone",
        "PYTHONIOENCODING": "CPython", "FLASK_APP": "Flask CLI (flask upgrade-db in the entrypoint)",
        "FLASK_DEBUG": "Flask", "HTTP_PROXY": "httpx/requests trust_env", "HTTPS_PROXY": "httpx/requests trust_env",
        "NO_PROXY": "httpx/requests trust_env", "ALL_PROXY": "httpx/requests trust_env",
    },
    "web": {"NODE_ENV": "Node.js / Next.js", "TZ": "Node.js time zone"},
    "plugin_daemon": {"GIN_MODE": "gin-gonic/gin", "TZ": "Go time zone"},
    "sandbox": {"GIN_MODE": "gin-gonic/gin", "TZ": "Go time zone"},
}

# String settings whose valid values the code checks only at run time:
# setting -> (file, enum class whose values the code matches).
# The client libraries Dify's api/worker reach their dependencies with (the
# database, Redis and Celery, storage, settings): the contract probe installs
# exactly the versions the release's api/uv.lock pins (tests/probe).
CLIENT_LIBRARIES = ("sqlalchemy", "psycopg2-binary", "pymysql", "redis", "celery", "kombu", "opendal",
                    "pydantic", "pydantic-settings", "python-dotenv")


def lock_pins(lock, names):
    """{package: version} api/uv.lock pins for names and everything they depend on (first entry per name)."""
    pins, deps = {}, {}
    for block in lock.split("[[package]]")[1:]:
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        version = re.search(r'^version = "([^"]+)"', block, re.M)
        if not name or not version or name.group(1) in pins:
            continue
        pins[name.group(1)] = version.group(1)
        listed = re.search(r'^dependencies = \[(.*?)^\]', block, re.M | re.S)
        deps[name.group(1)] = re.findall(r'\{ name = "([^"]+)"', listed.group(1)) if listed else []
    missing = sorted(set(names) - set(pins))
    if missing:
        fail("api/uv.lock pins no version of %s" % ", ".join(missing))
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name not in seen and name in pins:
            seen.add(name)
            todo.extend(deps.get(name, []))
    return {k: pins[k] for k in sorted(seen)}


RUNTIME_CHOICES = {
    # core/rag/datasource/vdb/vector_factory.py matches dify_config.VECTOR_STORE against VectorType
    "VECTOR_STORE": ("api/core/rag/datasource/vdb/vector_type.py", "VectorType"),
}

# Command-line positions in the api entrypoint whose value the program parses as an integer
# (gunicorn --workers/--worker-connections/--timeout/--bind port, celery -c/--autoscale/
# --max-tasks-per-child/--prefetch-multiplier).
ENTRYPOINT_INT_CONTEXT = re.compile(
    r"(?:(?:--workers|--worker-connections|--timeout|--max-tasks-per-child|-c|--port)[ =]"
    r"|--prefetch-multiplier=|--autoscale=(?:\$\{[A-Z_]+\},)?|--bind \"\$\{[A-Z_]+(?::-[^}]*)?\}:)$")

# Known differences between the stdlib validator and the real DifyConfig on the
# verification corpus: (field, value) -> reason. Empty: none are known.
KNOWN_DIFFERENCES = {}


def fail(msg):
    sys.stderr.write("extract.py: %s\n" % msg)
    sys.exit(1)


# ---------------------------------------------------------------- git

def git(repo, *args, check=True):
    proc = subprocess.run(["git", "-C", repo] + list(args), capture_output=True, check=False)
    if check and proc.returncode != 0:
        fail("git -C %s %s: %s" % (repo, " ".join(args), proc.stderr.decode(errors="replace").strip()))
    return proc.stdout.decode("utf-8", errors="replace")


def resolve(repo, ref):
    return git(repo, "rev-parse", "--verify", "%s^{commit}" % ref).strip()


def show(repo, commit, path):
    return git(repo, "show", "%s:%s" % (commit, path))


def exists(repo, commit, path):
    return bool(git(repo, "ls-tree", "--name-only", commit, "--", path, check=False).strip())


def ls_files(repo, commit, path):
    out = git(repo, "ls-tree", "-r", "--name-only", commit, "--", path)
    return [line for line in out.splitlines() if line]


def archive(repo, commit, paths, dest):
    proc = subprocess.run("git -C %s archive %s %s | tar -x -C %s" % (
        shlex.quote(repo), commit, " ".join(shlex.quote(p) for p in paths), shlex.quote(dest)),
        shell=True, capture_output=True, check=False)
    if proc.returncode != 0:
        fail("git archive %s: %s" % (commit, proc.stderr.decode(errors="replace")))


# ---------------------------------------------------------------- shell

def _shell_expansions(text):
    """Every ${NAME...} and $NAME in ``text``: (start, end, name, op, word)."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == "}":
                    depth -= 1
                j += 1
            inner = text[i + 2:j - 1]
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:-|:=|:\+|-|,,|\^\^)?(.*)\Z", inner, re.S)
            if m:
                out.append((i, j, m.group(1), m.group(2) or "", m.group(3) if m.group(2) else ""))
                if m.group(2) in (":-", ":=", "-", ":+"):
                    for sub in _shell_expansions(m.group(3)):
                        out.append((i, j, sub[2], sub[3], sub[4]))
            i = j
            continue
        m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:])
        if m and not text.startswith("$(", i):
            out.append((i, i + m.end(), m.group(1), "", ""))
            i += m.end()
            continue
        i += 1
    return out


def _strip_comments(text):
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def parse_shell(text):
    """Inputs (environment names read before any assignment), locals and exports of a shell script."""
    body = _strip_comments(text)
    assigned = {}
    exports = {}
    for m in re.finditer(r"^[ \t]*(export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", body, re.M):
        name, rhs = m.group(2), m.group(3).strip()
        assigned.setdefault(name, []).append(rhs)
        if m.group(1):
            exports[name] = rhs.strip('"')
    reads = {}
    for start, _end, name, op, word in _shell_expansions(body):
        if name in assigned and not any(re.search(r"\$\{?%s\b" % name, rhs) for rhs in assigned[name]):
            continue
        entry = reads.setdefault(name, {})
        if op in (":-", "-") and "default" not in entry:
            entry["default"] = word
        line_start = body.rfind("\n", 0, start) + 1
        if ENTRYPOINT_INT_CONTEXT.search(body[line_start:start]):
            entry["type"] = "int"
    # an int-typed local propagates to the inputs its assignment reads
    for name, rhss in assigned.items():
        for start, _end, used, _op, _word in _shell_expansions(body):
            if used != name:
                continue
            line_start = body.rfind("\n", 0, start) + 1
            if ENTRYPOINT_INT_CONTEXT.search(body[line_start:start]):
                for rhs in rhss:
                    for _s, _e, src, _o, _w in _shell_expansions(rhs):
                        if src in reads and src != name:
                            reads[src]["type"] = "int"
    for entry in reads.values():
        entry.setdefault("type", "str")
    locals_ = sorted(n for n in assigned if n not in reads)
    return {"reads": {k: reads[k] for k in sorted(reads)}, "locals": locals_,
            "exports": {k: exports[k] for k in sorted(exports)}}


def api_entrypoint(text):
    info = parse_shell(text)
    modes = sorted(set(re.findall(r'"\$\{MODE\}" == "([A-Za-z_]+)"', text)))
    queues = None
    m = re.search(r'if \[\[ "\$\{([A-Z_]+)(?::-([^}]*))?\}" == "CLOUD" \]\]; then(.*?)\n\s*else(.*?)\n\s*fi', text, re.S)
    if m:
        cloud = re.findall(r'DEFAULT_QUEUES="([^"$]+)"', m.group(3))
        default = re.findall(r'DEFAULT_QUEUES="([^"$]+)"', m.group(4))
        if len(cloud) != 1 or len(default) != 1:
            fail("api entrypoint: cannot read the queue lists per edition")
        queues = {"selector": m.group(1), "selector_default": m.group(2) or "", "CLOUD": cloud[0].split(","),
                  "default": default[0].split(",")}
    elif "DEFAULT_QUEUES" in text:
        fail("api entrypoint: DEFAULT_QUEUES is set but the edition switch was not recognised")
    out = {"reads": info["reads"], "modes": modes}
    if queues:
        out["celery_queues"] = queues
    return out


# ---------------------------------------------------------------- Dockerfile

def dockerfile_env(text, target=None):
    """ENV of the final (or ``target``) stage of a Dockerfile, with ARG defaults substituted."""
    text = re.sub(r"\\\n", " ", _strip_comments(text))
    stages = {}
    order = []
    global_args = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        word, _sep, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(order))
            parent = stages.get(parts[0])
            current = {"env": dict(parent["env"]) if parent else {}, "args": {}}
            stages[name] = current
            order.append(name)
            continue
        if word == "ARG":
            name, eq, default = rest.strip().partition("=")
            default = default.strip().strip('"')
            if current is None:
                global_args[name] = default if eq else None
            else:
                current["args"][name] = default if eq else global_args.get(name)
            continue
        if word == "ENV" and current is not None:
            tokens = shlex.split(rest, posix=True)
            pairs = []
            if tokens and "=" not in tokens[0]:
                pairs = [(tokens[0], " ".join(tokens[1:]))]
            else:
                pairs = [tuple(t.split("=", 1)) for t in tokens]
            for name, value in pairs:
                current["env"][name] = _substitute(value, current)
    if not order:
        fail("no FROM in Dockerfile")
    stage = stages[target] if target else stages[order[-1]]
    return {k: stage["env"][k] for k in sorted(stage["env"])}


def _substitute(value, stage):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in stage["env"]:
            return stage["env"][name]
        if stage["args"].get(name) not in (None, ""):
            return stage["args"][name]
        return "${%s}" % name
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, value)


# ---------------------------------------------------------------- compose

def compose_data(text):
    import yaml
    doc = yaml.safe_load(text)
    shared = doc.get("x-shared-env") or {}
    images = {}
    services = {}
    for name, svc in sorted((doc.get("services") or {}).items()):
        if svc.get("image"):
            images[name] = svc["image"]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        own = {k: ("" if v is None else str(v)) for k, v in env.items() if k not in shared or shared[k] != v}
        entry = {}
        if own:
            entry["environment"] = {k: own[k] for k in sorted(own)}
        env_file = svc.get("env_file")
        if env_file:
            entry["env_file"] = [f if isinstance(f, str) else f.get("path") for f in env_file]
        health = (svc.get("healthcheck") or {}).get("test")
        if health:
            entry["healthcheck"] = health if isinstance(health, list) else [health]
        for key in ("command", "entrypoint"):
            if svc.get(key):
                entry[key] = svc[key] if isinstance(svc[key], list) else [svc[key]]
        for key in ("profiles", "networks", "volumes", "ports"):
            if svc.get(key):
                value = svc[key]
                entry[key] = sorted(value) if isinstance(value, dict) else [
                    v if isinstance(v, dict) else str(v) for v in value]
        if svc.get("depends_on"):
            deps = svc["depends_on"]
            entry["depends_on"] = {k: (deps[k] or {}) if isinstance(deps, dict) else {} for k in sorted(deps)}
        services[name] = entry
    return images, services


def compose_networks(text):
    """{network: {"driver", "internal"}} of the compose file's top-level networks."""
    import yaml
    doc = yaml.safe_load(text)
    out = {}
    for name, spec in sorted((doc.get("networks") or {}).items()):
        spec = spec or {}
        out[name] = {"driver": spec.get("driver", "bridge"), "internal": bool(spec.get("internal", False))}
    return out


def env_example(text):
    """{NAME: value} of a .env.example (the last assignment wins, as in Compose)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


# ---------------------------------------------------------------- Python sources

def _is_os_environ(node, env_names):
    return (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
            and node.value.id == "os") or (isinstance(node, ast.Name) and node.id in env_names)


def _literal(node):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False, ast.unparse(node)


def scan_python_reads(root, rel_prefix):
    """Direct environment reads in every non-test .py under ``root``."""
    reads, dynamic, prefixes = {}, [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("tests", "__pycache__", ".venv", "node_modules"))
        for fname in sorted(filenames):
            if not fname.endswith(".py") or fname.startswith("test_") or fname == "conftest.py":
                continue
            path = os.path.join(dirpath, fname)
            rel = rel_prefix + os.path.relpath(path, root)
            with open(path, encoding="utf-8") as fh:
                try:
                    tree = ast.parse(fh.read())
                except SyntaxError:
                    fail("cannot parse %s" % rel)
            _scan_tree(tree, rel, reads, dynamic, prefixes)
    return reads, dynamic, prefixes


def _scan_tree(tree, rel, reads, dynamic, prefixes):
    env_names, getenv_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name == "environ":
                    env_names.add(alias.asname or "environ")
                if alias.name == "getenv":
                    getenv_names.add(alias.asname or "getenv")
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def record(node, name_node, default_node):
        where = "%s:%d" % (rel, node.lineno)
        if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
            dynamic.append({"src": where, "expr": ast.unparse(name_node)})
            return
        entry = {"src": where, "parse": _parse_kind(node, parents)}
        if default_node is not None:
            ok, value = _literal(default_node)
            entry["default" if ok else "default_expr"] = value
        reads.setdefault(name_node.value, []).append(entry)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            is_get = isinstance(f, ast.Attribute) and f.attr == "get" and _is_os_environ(f.value, env_names)
            is_getenv = (isinstance(f, ast.Attribute) and f.attr == "getenv" and isinstance(f.value, ast.Name)
                         and f.value.id == "os") or (isinstance(f, ast.Name) and f.id in getenv_names)
            if (is_get or is_getenv) and node.args:
                default = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg in ("default", "value")), None)
                record(node, node.args[0], default)
            elif isinstance(f, ast.Attribute) and f.attr in ("items", "keys") and _is_os_environ(f.value, env_names):
                _record_prefix(node, parents, rel, prefixes, dynamic)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_os_environ(node.value, env_names):
            record(node, node.slice, None)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
                and _is_os_environ(node.comparators[0], env_names):
            record(node, node.left, None)


def _parse_kind(node, parents):
    cur = node
    while True:
        parent = parents.get(cur)
        if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in ("int", "float") \
                and parent.args and parent.args[0] is cur:
            return parent.func.id
        if isinstance(parent, ast.Attribute) and parent.attr in ("lower", "strip", "upper"):
            cur = parents.get(parent)
            if not isinstance(cur, ast.Call):
                return "str"
            continue
        if isinstance(parent, ast.Compare) and any(isinstance(c, ast.Constant) and c.value == "true"
                                                   for c in parent.comparators):
            return "bool_true"
        return "str"


def _record_prefix(node, parents, rel, prefixes, dynamic):
    func = node
    while func is not None and not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
        func = parents.get(func)
    found = []
    for sub in ast.walk(func):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "startswith" \
                and sub.args:
            prefix = _const_prefix(sub.args[0], func, 0)
            if prefix:
                found.append(prefix)
    if found:
        for prefix in found:
            prefixes[prefix] = "%s:%d" % (rel, node.lineno)
    else:
        dynamic.append({"src": "%s:%d" % (rel, node.lineno), "expr": "iterates os.environ"})


def _const_prefix(expr, func, depth):
    """The constant leading part of a string expression (names followed through assignments and defaults)."""
    if depth > 5:
        return ""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr) and expr.values and isinstance(expr.values[0], ast.Constant):
        return expr.values[0].value
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _const_prefix(expr.left, func, depth + 1)
    if isinstance(expr, ast.Name):
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                return _const_prefix(node.value, func, depth + 1)
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = func.args
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                if arg.arg == expr.id and default is not None:
                    return _const_prefix(default, func, depth + 1)
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                if arg.arg == expr.id:
                    return _const_prefix(default, func, depth + 1)
    return ""


def enum_values(path_text, class_name):
    tree = ast.parse(path_text)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            values = []
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
                    values.append(stmt.value.value)
            return values
    fail("class %s not found" % class_name)


# ---------------------------------------------------------------- DifyConfig (runs inside the tree)

def dump_config(api_dir):
    """Runs with cwd and PYTHONPATH at the tree's api/: DifyConfig's fields as JSON on stdout."""
    sys.path.insert(0, api_dir)
    import importlib.metadata as md

    from configs.app_config import DifyConfig
    from pydantic_settings import EnvSettingsSource

    src = EnvSettingsSource(DifyConfig)
    decorators = DifyConfig.__pydantic_decorators__
    settings = {}
    for name in sorted(DifyConfig.model_fields):
        field = DifyConfig.model_fields[name]
        spec = {"type": type_node(field.annotation, list(field.metadata))}
        owner = next(c for c in DifyConfig.__mro__ if name in c.__dict__.get("__annotations__", {}))
        spec["src"] = os.path.relpath(sys.modules[owner.__module__].__file__, os.path.dirname(api_dir))
        expr = _default_expr(owner, name)
        if expr is None:
            spec["default"] = jsonable(field.default)
        else:
            spec["default_expr"] = expr
        env = _env_names(field, name)
        extracted = [info[1] for info in src._extract_field_info(field, name)]
        if [e.lower() for e in env] != [e.lower() for e in extracted]:
            raise SystemExit("env names of %s: %r vs pydantic-settings %r" % (name, env, extracted))
        if env != [name]:
            spec["env"] = env
        vals = []
        for dname, dec in sorted(decorators.field_validators.items()):
            if name in dec.info.fields or "*" in dec.info.fields:
                vals.append("%s:%s" % (dec.info.mode, dname))
        if vals:
            spec["validators"] = vals
        settings[name] = spec
    models = sorted("%s:%s" % (dec.info.mode, dname) for dname, dec in decorators.model_validators.items())
    out = {"settings": settings, "model_validators": models, "field_count": len(DifyConfig.model_fields),
           "toolchain": {"python": "%d.%d.%d" % sys.version_info[:3], "pydantic": md.version("pydantic"),
                         "pydantic_core": md.version("pydantic-core"),
                         "pydantic_settings": md.version("pydantic-settings")}}
    json.dump(out, sys.stdout, sort_keys=True)


def _env_names(field, name):
    from pydantic import AliasChoices, AliasPath
    alias = field.validation_alias or field.alias
    if alias is None:
        return [name]
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        out = []
        for choice in alias.choices:
            if isinstance(choice, AliasPath):
                raise SystemExit("%s: AliasPath is not supported" % name)
            out.append(choice)
        return out
    raise SystemExit("%s: alias %r is not supported" % (name, alias))


_PURE_CALLS = ("HttpUrl", "AnyUrl", "str", "int", "float", "bool", "list", "dict", "set", "frozenset", "tuple", "cast")


def _default_expr(owner, name):
    """The default's source expression when it is computed (not a constant or a pure constructor), else None."""
    import inspect
    import textwrap
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(owner)))
    except (OSError, TypeError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
                value = next((k.value for k in value.keywords if k.arg == "default"),
                             value.args[0] if value.args else None)
                factory = next((k.value for k in node.value.keywords if k.arg == "default_factory"), None)
                if factory is not None:
                    return ast.unparse(factory) + "()"
            if value is None:
                return None
            for sub in ast.walk(value):
                if isinstance(sub, ast.Call) and getattr(sub.func, "id", getattr(sub.func, "attr", None)) \
                        not in _PURE_CALLS:
                    return ast.unparse(value)
            return None
    return None


def jsonable(value):
    import datetime
    import enum
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SystemExit("non-finite default %r" % value)
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    cls = type(value).__name__
    if cls in ("HttpUrl", "AnyUrl", "AnyHttpUrl", "Url"):
        return str(value)
    if cls == "SecretStr":
        return value.get_secret_value()
    if hasattr(value, "model_dump"):
        return None
    raise SystemExit("default %r of type %s is not supported" % (value, cls))


def type_node(annotation, metadata):
    import datetime
    import enum
    import types
    import typing

    from pydantic import BaseModel, HttpUrl, SecretStr

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_node(args[0], list(args[1:]) + list(metadata))
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = type_node(rest[0], metadata) if len(rest) == 1 else {
            "t": "union", "of": [type_node(a, []) for a in rest]}
        if len(rest) > 1 and metadata:
            raise SystemExit("constraints on a union: %r" % (annotation,))
        return {"t": "optional", "of": inner} if len(rest) < len(args) else inner
    if origin is typing.Literal:
        for v in args:
            if v is not None and not isinstance(v, str):
                raise SystemExit("non-string literal %r" % (v,))
        _no_meta(annotation, metadata)
        return {"t": "literal", "values": list(args)}
    if origin in (list, typing.List):
        _no_meta(annotation, metadata)
        return {"t": "list", "of": type_node(args[0], [])}
    if origin in (dict, typing.Dict) or annotation is dict:
        _no_meta(annotation, metadata)
        return {"t": "dict"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [m.value for m in annotation]
        if not all(isinstance(v, str) for v in values):
            raise SystemExit("non-string enum %r" % (annotation,))
        _no_meta(annotation, metadata)
        return {"t": "enum", "name": annotation.__name__, "values": values}
    simple = {bool: "bool", int: "int", float: "float", str: "str", HttpUrl: "http_url", SecretStr: "secret_str",
              datetime.datetime: "datetime"}
    if annotation in simple:
        node = {"t": simple[annotation]}
        node.update(_constraints(annotation, metadata))
        return node
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _no_meta(annotation, metadata)
        return {"t": "model", "name": annotation.__name__}
    raise SystemExit("type %r is not supported: add it to docs/CONTRACT.md, extract.py and dify_schema.py"
                     % (annotation,))


def _no_meta(annotation, metadata):
    if metadata:
        raise SystemExit("constraints %r on %r are not supported" % (metadata, annotation))


def _constraints(annotation, metadata):
    out = {}
    for meta in metadata:
        cls = type(meta).__name__
        mapping = {"Gt": "gt", "Ge": "ge", "Lt": "lt", "Le": "le", "MultipleOf": "multiple_of",
                   "MinLen": "min_length", "MaxLen": "max_length"}
        if cls in mapping:
            out[mapping[cls]] = getattr(meta, mapping[cls])
        elif cls == "_PydanticGeneralMetadata":
            for key, value in vars(meta).items():
                if key != "allow_inf_nan":
                    raise SystemExit("constraint %s=%r is not supported" % (key, value))
                out[key] = value
        else:
            raise SystemExit("constraint %r on %r is not supported" % (meta, annotation))
    return out


# ---------------------------------------------------------------- verification (runs inside the tree)

CORPUS = ["", " ", "\t", "  x  ", "0", "1", "-1", "+1", "2", "007", "65535", "65536", "1_000", "1__0", "_1",
          "1.0", "1.00", "1.", "1.5", "-0.5", "0.1", "1e3", "1E-2", "0x10", " 5 ", "5\n", "inf", "-inf", "nan",
          "Infinity", "true", "True", "TRUE", "false", "FALSE", "yes", "no", "on", "off", "t", "f", "y", "n",
          " true", "true ", "null", "None", "none", "{}", '{"a": 1}', "[]", '["a"]', "abc", "a:1",
          "127.0.0.1:5003", "http://example.com", "https://example.com:8443/x?q=1#f", "http://", "ftp://x",
          "http://[::1]:5/", "http://a:99999", "http:example.com", "http://user:pw@h", "http://1.2.3.256",
          "2024-01-01", "2024-01-01T00:00:00Z", "2024-02-30", "1700000000", "text", "json", "x" * 40]


def verify_config(api_dir, data_path):
    """Compare the stdlib validator and the rebuilt pydantic model with the real DifyConfig, field by field."""
    sys.path.insert(0, api_dir)
    from pydantic import ValidationError, create_model, field_validator
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from configs.app_config import DifyConfig

    schema = _load(SCHEMA_PATH, "dify_schema")
    release = _load(data_path, "release_data").RELEASE
    settings = release["api"]["settings"]
    rebuilt = schema.pydantic_model(release)
    decorators = DifyConfig.__pydantic_decorators__
    config = SettingsConfigDict(extra="ignore", case_sensitive=False, validate_default=False, env_file=None,
                                arbitrary_types_allowed=True)
    base = type("ProbeBase", (BaseSettings,), {"model_config": config})
    problems = []
    checked = 0
    for name, field in sorted(DifyConfig.model_fields.items()):
        spec = settings[name]
        if spec["type"]["t"] == "model":
            continue
        validators = {}
        for dname, dec in decorators.field_validators.items():
            if name in dec.info.fields:
                func = getattr(dec.func, "__func__", dec.func)
                validators[dname] = field_validator(name, mode=dec.info.mode)(classmethod(func))
        real = create_model("Probe_" + name, __base__=base, __validators__=validators,
                            **{name: (field.annotation, field)})
        rebuilt_field = rebuilt.model_fields[name]
        one = create_model("Rebuilt_" + name, __base__=base, **{name: (rebuilt_field.annotation, rebuilt_field)})
        env_names = spec.get("env") or [name]
        values = list(CORPUS) + [v for v in spec["type"].get("values", []) if isinstance(v, str)]
        if isinstance(spec.get("default"), (str, int, float)) and not isinstance(spec.get("default"), bool):
            values.append(str(spec["default"]))
        for env_name in env_names:
            for value in values:
                for key in env_names:
                    os.environ.pop(key, None)
                os.environ[env_name] = value
                verdicts = []
                for model in (real, one):
                    try:
                        model()
                        verdicts.append(True)
                    except (ValidationError, ValueError):
                        verdicts.append(False)
                mine = schema.check_setting(spec, value) is None
                checked += 1
                if not (verdicts[0] == verdicts[1] == mine) and (name, value) not in KNOWN_DIFFERENCES:
                    problems.append("%s (%s=%r): Dify %s, rebuilt model %s, dify_schema %s" % (
                        name, env_name, value, *("accepts" if v else "refuses" for v in (verdicts + [mine]))))
            for key in env_names:
                os.environ.pop(key, None)
    # the whole DifyConfig: defaults validate, and an empty REDIS_PORT is refused as the data says
    DifyConfig(_env_file=None)
    os.environ["REDIS_PORT"] = ""
    try:
        DifyConfig(_env_file=None)
        problems.append("DifyConfig accepted REDIS_PORT=''")
    except ValidationError:
        pass
    if schema.check_setting(settings["REDIS_PORT"], "") is None:
        problems.append("dify_schema accepts REDIS_PORT=''")
    json.dump({"checked": checked, "problems": problems}, sys.stdout)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_in_tree(api_dir, mode, *args):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": api_dir, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
           "HOME": api_dir}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), mode, api_dir] + list(args), cwd=api_dir,
                          env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        fail("%s failed:\n%s" % (mode, proc.stderr.decode(errors="replace")[-4000:]))
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- Go sources

_GO_FIELD = re.compile(r"^\s*([A-Z][A-Za-z0-9_]*)\s+(\*?(?:\[\])?[A-Za-z0-9_.]+)\s+`([^`]*)`\s*(//.*)?$")


def go_struct(text, struct):
    m = re.search(r"^type %s struct \{\n(.*?)^\}" % struct, text, re.S | re.M)
    if not m:
        fail("struct %s not found" % struct)
    fields = []
    for line in m.group(1).splitlines():
        if not line.strip() or line.strip().startswith("//"):
            continue
        fm = _GO_FIELD.match(line)
        if not fm:
            fail("struct %s: cannot parse %r" % (struct, line))
        tags = dict(re.findall(r'(\w+):"([^"]*)"', fm.group(3)))
        fields.append((fm.group(1), fm.group(2), tags))
    return fields


def go_named_string_types(text):
    out = {}
    for name in re.findall(r"^type (\w+) string$", text, re.M):
        out[name] = re.findall(r"^\s*\w+\s+%s\s*=\s*\"([^\"]*)\"" % name, text, re.M)
    return out


def _go_value(expr):
    expr = expr.strip()
    if re.match(r'^"[^"]*"$', expr):
        return expr[1:-1]
    if re.match(r"^[0-9*+ ()]+$", expr):
        return int(eval(compile(ast.Expression(ast.parse(expr, mode="eval").body), "<go>", "eval"),
                        {"__builtins__": {}}))
    return expr


def go_set_defaults(text):
    """SetDefault(): {field: value} for unconditional defaults, {field: [{"when", "value"}]} for conditional ones."""
    m = re.search(r"func \(config \*Config\) SetDefault\(\) \{\n(.*?)^\}", text, re.S | re.M)
    if not m:
        fail("SetDefault not found")
    out, conditional = {}, {}
    lines = m.group(1).splitlines()
    for i, line in enumerate(lines):
        dm = re.match(r"^(\t+)setDefault(?:String|Int)\(&config\.(\w+),\s*(.+)\)\s*$", line)
        if not dm:
            continue
        value = _go_value(dm.group(3))
        depth = len(dm.group(1))
        if depth == 1:
            out.setdefault(dm.group(2), value)
            continue
        when = ""
        for prev in reversed(lines[:i]):
            pm = re.match(r"^(\t*)(?:\} else )?(if (.*) \{|case (.*):)\s*$", prev)
            if pm and len(pm.group(1)) < depth:
                if pm.group(4) is not None:
                    subject = next((re.match(r"^\t*switch (.*) \{", q).group(1) for q in reversed(lines[:i])
                                    if re.match(r"^\t*switch (.*) \{", q)), "?")
                    when = "%s in (%s)" % (subject, pm.group(4))
                else:
                    when = pm.group(3)
                break
        conditional.setdefault(dm.group(2), []).append({"when": when, "value": value})
    return out, conditional


def go_reads(repo, commit, exclude=()):
    out = {}
    text = git(repo, "grep", "-n", "-E", r'os\.(Getenv|LookupEnv)\("[A-Za-z_][A-Za-z0-9_]*"\)', commit, "--", "*.go",
               check=False)
    for line in text.splitlines():
        _commit, path, lineno, code = line.split(":", 3)
        if path.endswith("_test.go") or any(path.startswith(e) for e in exclude):
            continue
        for name in re.findall(r'os\.(?:Getenv|LookupEnv)\("([A-Za-z_][A-Za-z0-9_]*)"\)', code):
            out.setdefault(name, []).append("%s:%s" % (path, lineno))
    return {k: out[k] for k in sorted(out)}


def daemon_data(repo, ref, envconfig_repo):
    commit = resolve(repo, ref)
    config_path = "internal/types/app/config.go"
    text = show(repo, commit, config_path)
    named = go_named_string_types(text)
    set_defaults, conditional = go_set_defaults(show(repo, commit, "internal/types/app/default.go"))
    fields = {}
    for fname, gotype, tags in go_struct(text, "Config"):
        if tags.get("ignored") == "true" or tags.get("split_words"):
            fail("daemon field %s: ignored/split_words tags are not supported" % fname)
        key = (tags.get("envconfig") or fname).upper()
        spec = {"field": fname, "go": gotype}
        if gotype in named:
            spec["kind"] = "string"
            spec["values"] = named[gotype]
        elif gotype.lstrip("*[]") not in ("string", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8",
                                          "uint16", "uint32", "uint64", "float32", "float64", "time.Duration"):
            fail("daemon field %s: Go type %s is not supported" % (fname, gotype))
        if tags.get("default"):
            spec["default"] = tags["default"]
        if fname in set_defaults:
            spec["set_default"] = set_defaults[fname]
        if fname in conditional:
            spec["set_default_if"] = conditional[fname]
        if tags.get("validate"):
            spec["validate"] = tags["validate"]
        if tags.get("required"):
            spec["required"] = tags["required"]
        fields[key] = spec
    gomod = show(repo, commit, "go.mod")
    m = re.search(r"github.com/kelseyhightower/envconfig (v[0-9.]+)", gomod)
    if not m:
        fail("the daemon's go.mod does not pin kelseyhightower/envconfig")
    envconfig = {"repository": "kelseyhightower/envconfig", "ref": m.group(1),
                 "commit": resolve(envconfig_repo, m.group(1))}
    return commit, envconfig, {k: fields[k] for k in sorted(fields)}


_SANDBOX_READ = re.compile(r'os\.Getenv\("([A-Za-z_][A-Za-z0-9_]*)"\)')


def sandbox_reads(repo, commit):
    out = {}
    for path in ls_files(repo, commit, "."):
        if not path.endswith(".go") or path.endswith("_test.go") or path.startswith("tests/"):
            continue
        text = show(repo, commit, path)
        if "os.Getenv(" not in text:
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            for name in _SANDBOX_READ.findall(line):
                entry = {"src": "%s:%d" % (path, i + 1)}
                entry.update(_classify_go_read(name, line, lines[i + 1:i + 16]))
                out.setdefault(name, []).append(entry)
    return {k: out[k] for k in sorted(out)}


def _classify_go_read(name, line, after):
    inline = re.search(r'(\w+), (\w+) :?= strconv\.(ParseBool|Atoi)\(os\.Getenv\("%s"\)\)' % name, line)
    if inline:
        parse = {"ParseBool": "parse_bool", "Atoi": "atoi"}[inline.group(3)]
        follow = "\n".join(after[:2])
        on_error = "keep" if re.search(r"if %s == nil" % inline.group(2), follow) else \
            "fatal" if re.search(r"if %s != nil \{\s*\n?\s*return" % inline.group(2), "\n".join(after[:3])) else "ignored"
        return {"parse": parse, "on_error": on_error, "always": True}
    var = re.match(r'\s*(\w+) :?= os\.Getenv\("%s"\)' % name, line)
    if not var:
        return {"parse": "str"}
    v = var.group(1)
    block = []
    for nxt in after:
        if re.search(r'os\.Getenv\("', nxt):
            break
        block.append(nxt)
    body = "\n".join(block)
    split = re.search(r"(\w+) :?= strings\.Split\(%s, \",\"\)" % v, body)
    if split and re.search(r"strconv\.Atoi\(%s\[" % split.group(1), body):
        fatal = re.search(r"strconv\.Atoi\(%s\[[^\]]*\]\)\s*\n\s*if err != nil \{\s*\n\s*return" % split.group(1), body)
        return {"parse": "atoi_list", "on_error": "fatal" if fatal else "ignored"}
    conv = re.search(r"(, _ |, err )?:?= strconv\.(Atoi|ParseBool)\(%s\)" % v, body)
    if conv:
        return {"parse": {"Atoi": "atoi", "ParseBool": "parse_bool"}[conv.group(2)],
                "on_error": "ignored" if conv.group(1) == ", _ " else "fatal"}
    return {"parse": "str"}


# ---------------------------------------------------------------- Go verification (optional, needs `go`)

_GO_CHECK = r"""
package main

import (
    "bufio"
    "encoding/json"
    "fmt"
    "os"
    "strconv"
    "time"

    "github.com/kelseyhightower/envconfig"
)

type S struct {
    String   string        `envconfig:"X_STRING"`
    PString  *string       `envconfig:"X_PSTRING"`
    Bool     bool          `envconfig:"X_BOOL"`
    Int      int           `envconfig:"X_INT"`
    Int64    int64         `envconfig:"X_INT64"`
    Uint16   uint16        `envconfig:"X_UINT16"`
    Float64  float64       `envconfig:"X_FLOAT64"`
    Duration time.Duration `envconfig:"X_DURATION"`
    Strings  []string      `envconfig:"X_STRINGS"`
}

var keys = map[string]string{"string": "X_STRING", "*string": "X_PSTRING", "bool": "X_BOOL", "int": "X_INT",
    "int64": "X_INT64", "uint16": "X_UINT16", "float64": "X_FLOAT64", "time.Duration": "X_DURATION",
    "[]string": "X_STRINGS"}

func main() {
    in := bufio.NewScanner(os.Stdin)
    in.Buffer(make([]byte, 1<<20), 1<<20)
    for in.Scan() {
        var item [2]string
        if err := json.Unmarshal(in.Bytes(), &item); err != nil {
            panic(err)
        }
        kind, value := item[0], item[1]
        var err error
        switch kind {
        case "atoi":
            _, err = strconv.Atoi(value)
        case "parse_bool":
            _, err = strconv.ParseBool(value)
        default:
            os.Clearenv()
            os.Setenv(keys[kind], value)
            var s S
            err = envconfig.Process("", &s)
        }
        if err != nil {
            fmt.Println("ERR")
        } else {
            fmt.Println("OK")
        }
    }
}
"""


def go_corpus():
    """Deterministic strings that exercise Go's number, bool and duration syntax."""
    import random
    rng = random.Random(20261201)
    fixed = ["", " ", "0", "1", "-1", "+1", "01", "08", "0x1F", "0X1f", "0o17", "0b101", "0b", "0x", "0_1", "1_000",
             "1__0", "_1", "1_", "0x_1", "65535", "65536", "-0", "9223372036854775807", "9223372036854775808",
             "-9223372036854775808", "1.5", ".5", "5.", "1e3", "1E-3", "1e", "inf", "+Inf", "-infinity", "NaN",
             "+nan", "0x1p-2", "0x1.8p1", "0x1p", "1e400", "1_0.5", "true", "True", "TRUE", "tRue", "t", "T", "yes",
             "f", "F", "false", "False", "FALSE", "on", "300ms", "1h30m", "1.5h", "-2s", "2", "1us", "1\u00b5s",
             "a,b", ",", " , ", "x"]
    alphabet = "0123456789+-_.xXoObBeEpPaAfFiInNtTrRuUsSmh ,"
    out = list(fixed)
    for _count in range(4000):
        out.append("".join(rng.choice(alphabet) for _pos in range(rng.randint(1, 7))))
    return out


def verify_go(envconfig_repo, envconfig_commit, tmpdir=None):
    """Run the real envconfig (and strconv) on the corpus and compare with dify_schema; mismatches."""
    go = shutil.which("go")
    if not go:
        fail("--verify-go needs a Go toolchain (apt-get install golang-go)")
    schema = _load(SCHEMA_PATH, "dify_schema")
    work = tempfile.mkdtemp(prefix="dify-contract-go-", dir=tmpdir)
    try:
        pkg = os.path.join(work, "src", "github.com", "kelseyhightower", "envconfig")
        os.makedirs(pkg)
        archive(envconfig_repo, envconfig_commit, ["."], pkg)
        main_dir = os.path.join(work, "src", "check")
        os.makedirs(main_dir)
        with open(os.path.join(main_dir, "main.go"), "w", encoding="utf-8") as fh:
            fh.write(_GO_CHECK)
        env = dict(os.environ, GOPATH=work, GO111MODULE="off", GOFLAGS="", GOCACHE=os.path.join(work, "cache"))
        binary = os.path.join(work, "check")
        subprocess.run([go, "build", "-o", binary, "check"], env=env, check=True, cwd=work)
        cases = []
        for value in go_corpus():
            for kind in ("string", "*string", "bool", "int", "int64", "uint16", "float64", "time.Duration",
                         "[]string", "atoi", "parse_bool"):
                cases.append((kind, value))
        proc = subprocess.run([binary], input="\n".join(json.dumps(c) for c in cases) + "\n",
                              capture_output=True, text=True, check=True)
        results = proc.stdout.split()
        mismatches = []
        for (kind, value), go_ok in zip(cases, results):
            try:
                if kind == "atoi":
                    schema.go_atoi(value)
                elif kind == "parse_bool":
                    schema.go_parse_bool(value)
                else:
                    schema.envconfig_parse(kind, value)
                mine = "OK"
            except ValueError:
                mine = "ERR"
            if mine != go_ok:
                mismatches.append("%s %r: Go %s, dify_schema %s" % (kind, value, go_ok, mine))
        return len(cases), mismatches
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- Dify Agent services (1.16 on)
# agent_backend (image langgenius/dify-agent-backend, tree dify-agent/), local_sandbox
# (langgenius/dify-agent-local-sandbox, tree dify-agent-runtime/) and agent_ssrf_proxy (squid with
# upstream's agent config). A release without them has none of these keys.

AGENT_TREE = "dify-agent"
# The pydantic-settings class the agent backend builds from its environment: create_app() (uvicorn
# dify_agent.server.app:app) calls ServerSettings(). ShellAdapterSettings is built from ServerSettings'
# values (init arguments beat the environment), so only its model validator applies.
AGENT_SETTINGS = ("dify-agent/src/dify_agent/server/settings.py", "ServerSettings")
AGENT_SHELL_SETTINGS = ("dify-agent/src/dify_agent/adapters/shell/config.py", "ShellAdapterSettings")
# Why the data is not read from an imported ServerSettings as DifyConfig's is: settings.py imports the
# Agent Stub token codec, which needs jwcrypto (pinned by dify-agent/uv.lock, absent from the release
# venv). The class body (fields, Field() constraints, model_config) is compiled on its own with the real
# pydantic-settings, and its validators are read from the source (AGENT_VALIDATORS); the verification
# then imports the real class with jwcrypto and httpx2 replaced by empty modules (verify_agent).

# ServerSettings field validators (all mode "after", on the string pydantic accepted), by function name.
AGENT_VALIDATORS = {
    # strip; blank -> None; http(s) values must pass AnyHttpUrl, then parse_agent_stub_endpoint: scheme
    # http/https/grpc, a host, no user info/query/fragment, http(s) path empty or /agent-stub, grpc an
    # explicit port and no path
    "normalize_agent_stub_api_base_url_value": {"strip": True, "blank": "none", "check": "agent_stub_url"},
    # strip; blank -> None; parse_agent_stub_grpc_bind_address: host:port, explicit port, nothing else
    "normalize_agent_stub_grpc_bind_address_value": {"strip": True, "blank": "none", "check": "grpc_bind_address"},
    # strip; blank -> None; decode_server_secret_key: unpadded base64url text decoding to exactly 32 bytes
    "validate_server_secret_key": {"strip": True, "blank": "none", "check": "base64url_32"},
    # strip; empty raises; AnyHttpUrl; no '?' or '#' after rstrip('/')
    "normalize_inner_api_url": {"strip": True, "check": "inner_api_url"},
    # strip; blank -> None
    "normalize_inner_api_key": {"strip": True, "blank": "none"},
    # strip().rstrip('/'); empty raises (so "/" does too); must start with '/'
    "normalize_shell_home_root": {"check": "absolute_path"},
}
# Values the server parses at start outside the validators: field -> (check, where).
AGENT_RUNTIME_CHECKS = {
    "shell_redact_patterns": ("json_list", "ServerSettings.get_shell_redact_patterns, called by create_app"),
    # redis-py's from_url accepts redis://, rediss:// and unix:// only (no Sentinel); a bad port raises
    "redis_url": ("redis_url", "redis.asyncio.Redis.from_url in create_app's lifespan (dify_agent/server/app.py)"),
}
# Model validators: "Class.function" -> the cross-field rules they apply (docs/CONTRACT.md, agent_backend).
AGENT_MODEL_RULES = {
    "ServerSettings.validate_agent_stub_requirements": [
        {"if_set": "DIFY_AGENT_STUB_API_BASE_URL", "requires": "DIFY_AGENT_SERVER_SECRET_KEY"},
        {"if_set": "DIFY_AGENT_STUB_GRPC_BIND_ADDRESS", "requires": "DIFY_AGENT_STUB_API_BASE_URL",
         "requires_scheme": "grpc"},
    ],
    # build_shell_provider() skips it when the endpoint is None or ""; otherwise ShellAdapterSettings
    # wants a non-blank http(s) URL with a host (urlparse)
    "ShellAdapterSettings.validate_provider_fields": [
        {"when": {"DIFY_AGENT_SHELL_PROVIDER": "shellctl"}, "if_nonempty": "DIFY_AGENT_SHELLCTL_ENTRYPOINT",
         "check": "http_url_netloc"},
        {"when": {"DIFY_AGENT_SHELL_PROVIDER": "enterprise"},
         "if_nonempty": "DIFY_AGENT_ENTERPRISE_SANDBOX_GATEWAY_ENDPOINT", "check": "http_url_netloc"},
    ],
}
AGENT_LIBRARY = {
    "LANG": "glibc / Python locale", "LC_ALL": "glibc / Python locale", "TZ": "glibc time zone",
    "PYTHONIOENCODING": "CPython", "PYTHONDONTWRITEBYTECODE": "CPython", "PYTHONUNBUFFERED": "CPython",
    "HTTP_PROXY": "httpx trust_env", "HTTPS_PROXY": "httpx trust_env", "NO_PROXY": "httpx trust_env",
    "ALL_PROXY": "httpx trust_env", "WEB_CONCURRENCY": "uvicorn --workers",
}
AGENT_PREFIXES = {
    "LOGFIRE_": "logfire.configure() (dify-agent/src/dify_agent/server/observability.py) reads LOGFIRE_*",
    "UVICORN_": "uvicorn's command line reads UVICORN_<OPTION> (the image's CMD passes --host and --port)",
}

# Every environment read of the local sandbox's Go code (dify-agent-runtime/), by name: how the value
# is used. A read that is not listed here fails the extraction.
LOCAL_SANDBOX_READS = {
    "SHELLCTL_AUTH_TOKEN": {"parse": "str", "unset": "",
                            "means": "bearer token for shellctl serve's /v1 API; empty: no authentication"},
    "SHELLCTL_ENABLE_PATH_ISOLATION": {"parse": "eq_true", "unset": "true",
                                       "means": "Landlock for jobs: unset is on, set it is on only for exactly 'true'"},
    "SHELLCTL_LANDLOCK_RW_PATHS": {"parse": "path_list", "means": "set (even empty) replaces the default list"},
    "SHELLCTL_LANDLOCK_RO_PATHS": {"parse": "path_list", "means": "set (even empty) replaces the default list"},
    "SHELLCTL_LANDLOCK_RW_DEV_PATHS": {"parse": "path_list", "means": "set (even empty) replaces the default list"},
    "XDG_DATA_HOME": {"parse": "str", "means": "non-empty: shellctl's state directory is $XDG_DATA_HOME/shellctl"},
    "HOME": {"parse": "str", "means": "the job's home directory (runner)"},
    "DIFY_AGENT_STUB_API_BASE_URL": {"parse": "trim", "means": "dify-agent CLI inside jobs (set per job)"},
    "DIFY_AGENT_STUB_AUTH_JWE": {"parse": "trim", "means": "dify-agent CLI inside jobs (set per job)"},
    "DIFY_AGENT_STUB_DRIVE_BASE": {"parse": "trim", "means": "dify-agent CLI inside jobs; empty: /mnt/drive"},
}
LOCAL_SANDBOX_LIBRARY = {"TZ": "Go time zone", "PATH": "exec.LookPath in the runner"}


def _settings_class(text, class_name, rel):
    """(class built from the fields and model_config only, field validators, model validators)."""
    from typing import ClassVar, Literal, Optional

    from pydantic import AnyHttpUrl, Field, HttpUrl, SecretStr
    from pydantic_settings import BaseSettings, SettingsConfigDict

    tree = ast.parse(text)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        fail("%s: class %s not found" % (rel, class_name))
    consts = [n for n in tree.body if isinstance(n, ast.Assign)
              and all(isinstance(t, ast.Name) and t.id.isupper() for t in n.targets)]
    body = [n for n in cls.body if isinstance(n, ast.AnnAssign)]
    field_validators, model_validators = {}, []
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            kind = getattr(dec.func, "id", "") if isinstance(dec, ast.Call) else ""
            if kind not in ("field_validator", "model_validator"):
                continue
            mode = next((k.value.value for k in dec.keywords if k.arg == "mode"), "after")
            if kind == "model_validator":
                model_validators.append("%s:%s.%s" % (mode, class_name, node.name))
                continue
            for arg in dec.args:
                field_validators.setdefault(arg.value, []).append("%s:%s" % (mode, node.name))
    new = ast.ClassDef(name=class_name, bases=[ast.Name("BaseSettings", ast.Load())], keywords=[], body=body,
                       decorator_list=[], type_params=[])
    module = ast.fix_missing_locations(ast.Module(body=consts + [new], type_ignores=[]))
    namespace = {"ClassVar": ClassVar, "Literal": Literal, "Optional": Optional, "AnyHttpUrl": AnyHttpUrl,
                 "HttpUrl": HttpUrl, "SecretStr": SecretStr, "Field": Field, "BaseSettings": BaseSettings,
                 "SettingsConfigDict": SettingsConfigDict}
    exec(compile(module, rel, "exec", dont_inherit=True), namespace)  # pylint: disable=exec-used
    return namespace[class_name], field_validators, sorted(model_validators)


def agent_backend_data(repo, commit, compose, images, tmp):
    from pydantic_settings import EnvSettingsSource

    rel, class_name = AGENT_SETTINGS
    cls, field_validators, model_validators = _settings_class(show(repo, commit, rel), class_name, rel)
    shell_rel, shell_name = AGENT_SHELL_SETTINGS
    _shell_cls, _shell_fields, shell_models = _settings_class(show(repo, commit, shell_rel), shell_name, shell_rel)
    source = EnvSettingsSource(cls)
    settings = {}
    for fname, field in cls.model_fields.items():
        envs = [info[1].upper() for info in source._extract_field_info(field, fname)]  # pylint: disable=protected-access
        spec = {"type": type_node(field.annotation, list(field.metadata)), "default": jsonable(field.default)}
        if len(envs) > 1:
            spec["env"] = envs
        spec["field"] = fname
        spec["src"] = rel
        if field_validators.get(fname):
            spec["validators"] = field_validators[fname]
            for entry in field_validators[fname]:
                func = entry.split(":", 1)[1]
                if func not in AGENT_VALIDATORS:
                    fail("%s.%s: field validator %s has no modelled semantics (read it, add it to AGENT_VALIDATORS)"
                         % (class_name, fname, func))
                spec.update(AGENT_VALIDATORS[func])
        if fname in AGENT_RUNTIME_CHECKS:
            spec["check"] = AGENT_RUNTIME_CHECKS[fname][0]
        settings[envs[0]] = spec
    rules = []
    for entry in model_validators + shell_models:
        key = entry.split(":", 1)[1]
        if key not in AGENT_MODEL_RULES:
            fail("model validator %s has no modelled rules (read it, add it to AGENT_MODEL_RULES)" % key)
        src = rel if key.startswith(class_name + ".") else shell_rel
        rules.extend(dict(rule, src="%s:%s" % (src, key)) for rule in AGENT_MODEL_RULES[key])
    for rule in rules:
        for name in [rule.get("if_set"), rule.get("requires"), rule.get("if_nonempty")] + list(rule.get("when", {})):
            if name and name not in settings:
                fail("AGENT_MODEL_RULES names %s, which %s does not read" % (name, class_name))
    archive(repo, commit, [AGENT_TREE + "/src"], tmp)
    reads, dynamic, _prefixes = scan_python_reads(os.path.join(tmp, AGENT_TREE, "src"), AGENT_TREE + "/src/")
    dockerfile = show(repo, commit, AGENT_TREE + "/Dockerfile")
    lock = show(repo, commit, AGENT_TREE + "/uv.lock")
    example = env_example(show(repo, commit, "docker/.env.example"))
    data = {
        "src": rel,
        "settings_class": class_name,
        "env_prefix": cls.model_config.get("env_prefix", ""),
        "env_file": list(cls.model_config.get("env_file") or []),
        "pins": lock_pins(lock, ("pydantic", "pydantic-settings")),
        "settings": {k: settings[k] for k in sorted(settings)},
        "model_validators": model_validators + shell_models,
        "rules": rules,
        "runtime_checks": {k: v[1] for k, v in sorted(AGENT_RUNTIME_CHECKS.items())},
        "reads": {k: reads[k] for k in sorted(reads)},
        "dynamic_reads": dynamic,
        "image": images.get("agent_backend", ""),
        "image_env": dockerfile_env(dockerfile),
        "dockerfile": dict(dockerfile_runtime(dockerfile), src=AGENT_TREE + "/Dockerfile"),
        "library": dict(sorted(AGENT_LIBRARY.items())),
        "prefixes": dict(sorted(AGENT_PREFIXES.items())),
        "compose": {"agent_backend": compose["agent_backend"]},
    }
    names = set(data["settings"]) | set(data["reads"]) | set(data["image_env"]) | set(data["library"])
    for spec in settings.values():
        names.update(spec.get("env", []))
    data["names"] = sorted(n for n in names if re.match(r"^[A-Z_][A-Z0-9_]*$", n))
    data["env_example"] = _example_for(example, data["names"], compose["agent_backend"])
    return data


def _example_for(example, names, compose_entry):
    """.env.example values of the names a family reads or its compose entry interpolates."""
    wanted = set(names)
    for value in (compose_entry.get("environment") or {}).values():
        wanted.update(m[2] for m in _shell_expansions(value))
    return {k: example[k] for k in sorted(example) if k in wanted}


# Imports the real ServerSettings may not find in the release venv, replaced by empty modules when it is
# imported for the verification: jwcrypto is used by the Agent Stub token codec only, never by the settings'
# validation (decode_server_secret_key is base64 and re); httpx2 is the shell providers' HTTP client, which
# build_shell_provider() constructs without connecting. Any other missing import fails the verification.
AGENT_STUBBED_IMPORTS = ("jwcrypto", "httpx2")


def _agent_corpus():
    out = list(CORPUS) + ["/", "/home/", "home", "  /srv/x/ ", '["a", 1]', '"a"', "[oops", "shellctl", "enterprise",
                          "docker", "http://h/agent-stub", "http://h:5050", "https://h/agent-stub/", "http://h/x",
                          "http://u:p@h/agent-stub", "http://h/agent-stub?a=1", "grpc://h:7000", "grpc://h",
                          "grpc://h:7000/x", "grpc://[::1]:7000", "0.0.0.0:7000", "h", "[::]:7000", "h:0", "h:x",
                          "redis://h:6379/2"]
    for size in (16, 31, 32, 33):
        raw = bytes(range(7, 7 + size))
        out.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
        out.append(base64.urlsafe_b64encode(raw).decode())
        out.append(base64.b64encode(bytes([0xfb, 0xff] * (size // 2))).rstrip(b"=").decode())
    return out


# Multi-variable environments for the cross-field rules (names without the DIFY_AGENT_ prefix).
AGENT_RULE_CASES = [
    {"STUB_API_BASE_URL": "http://h:5050/agent-stub"},
    {"STUB_API_BASE_URL": "http://h:5050/agent-stub", "SERVER_SECRET_KEY": "%(key)s"},
    {"STUB_API_BASE_URL": "grpc://h:7000", "SERVER_SECRET_KEY": "%(key)s", "STUB_GRPC_BIND_ADDRESS": "0.0.0.0:7000"},
    {"STUB_API_BASE_URL": "http://h:5050", "SERVER_SECRET_KEY": "%(key)s", "STUB_GRPC_BIND_ADDRESS": "0.0.0.0:7000"},
    {"STUB_GRPC_BIND_ADDRESS": "0.0.0.0:7000"},
    {"STUB_API_BASE_URL": " ", "STUB_GRPC_BIND_ADDRESS": " "},
    {"SHELL_PROVIDER": "enterprise", "SHELLCTL_ENTRYPOINT": "x"},
    {"SHELL_PROVIDER": "enterprise", "ENTERPRISE_SANDBOX_GATEWAY_ENDPOINT": "gw"},
    {"SHELL_PROVIDER": "enterprise", "ENTERPRISE_SANDBOX_GATEWAY_ENDPOINT": "https://gw"},
    {"SHELL_PROVIDER": "shellctl", "SHELLCTL_ENTRYPOINT": "local_sandbox:5004"},
    {"SHELL_PROVIDER": "shellctl", "SHELLCTL_ENTRYPOINT": "http://local_sandbox:5004"},
    {"AGENT_STUB_API_BASE_URL": "http://h/agent-stub", "SERVER_SECRET_KEY": "%(key)s"},
    {"STUB_API_BASE_URL": "http://h/agent-stub", "AGENT_STUB_API_BASE_URL": "ftp://h", "SERVER_SECRET_KEY": "%(key)s"},
]


def verify_agent(src_dir, data_path):
    """Runs in a child process: the real ServerSettings (its validators, its model validators, then what
    create_app parses) against dify_schema.validate_env, value by value; JSON on stdout."""
    import importlib.abc
    import importlib.machinery
    import types

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):  # pylint: disable=unused-argument
            if name.split(".")[0] not in AGENT_STUBBED_IMPORTS:
                return None
            return importlib.machinery.ModuleSpec(name, self, is_package=True)

        def create_module(self, spec):
            class _Stub(types.ModuleType):
                def __getattr__(self, attr):
                    if attr.startswith("__"):
                        raise AttributeError(attr)
                    return type(attr, (Exception,), {})
            module = _Stub(spec.name)
            module.__path__ = []
            return module

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, _Finder())
    sys.path.insert(0, src_dir)
    from pydantic_settings import EnvSettingsSource

    from dify_agent.server.settings import ServerSettings

    schema = _load(SCHEMA_PATH, "dify_schema")
    release = _load(data_path, "release_data").RELEASE
    data = release["agent_backend"]
    problems = []
    # the static extraction is the real class: names, types, defaults
    source = EnvSettingsSource(ServerSettings)
    real_names = {}
    for fname, field in ServerSettings.model_fields.items():
        envs = [i[1].upper() for i in source._extract_field_info(field, fname)]  # pylint: disable=protected-access
        real_names[envs[0]] = fname
        spec = data["settings"].get(envs[0])
        if spec is None or spec["field"] != fname or (spec.get("env") or [envs[0]]) != envs \
                or spec["type"] != type_node(field.annotation, list(field.metadata)) \
                or spec["default"] != jsonable(field.default):
            problems.append("%s: the data differs from the imported ServerSettings" % fname)
    if sorted(real_names) != sorted(data["settings"]):
        problems.append("settings: %s vs %s" % (sorted(real_names), sorted(data["settings"])))

    def real_accepts(env):
        for key in [k for k in os.environ if k.upper().startswith("DIFY_AGENT_")]:
            del os.environ[key]
        os.environ.update(env)
        try:
            settings = ServerSettings(_env_file=None)
            settings.get_shell_redact_patterns()
            settings.build_shell_provider()
            return True
        except Exception:  # pylint: disable=broad-except
            return False

    def mine_accepts(env):
        errors = schema.validate_env(release, "agent_backend", env)
        return not errors

    cases = []
    for name, spec in sorted(data["settings"].items()):
        if spec.get("check") == "redis_url":
            continue  # redis-py is not in the release venv; its from_url runs in the lifespan
        for env_name in spec.get("env") or [name]:
            cases.extend({env_name: value} for value in _agent_corpus())
    key = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
    for case in AGENT_RULE_CASES:
        cases.append({"DIFY_AGENT_" + k: v % {"key": key} for k, v in case.items()})
    refused = 0
    for env in cases:
        real, mine = real_accepts(env), mine_accepts(env)
        refused += not real
        if real != mine:
            shown = {k: (v if "SECRET" not in k else "<%d chars>" % len(v)) for k, v in env.items()}
            problems.append("%r: ServerSettings %s, dify_schema %s" % (
                shown, "accepts" if real else "refuses", "accepts" if mine else "refuses"))
    json.dump({"checked": len(cases), "refused": refused, "problems": problems}, sys.stdout)


def _verify_agent(src_dir, data_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "HOME": src_dir}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--verify-agent", src_dir, data_path],
                          cwd=src_dir, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        fail("--verify-agent failed:\n%s" % proc.stderr.decode(errors="replace")[-4000:])
    result = json.loads(proc.stdout)
    if result["problems"]:
        for p in result["problems"][:50]:
            print("  MISMATCH " + p)
        fail("%d mismatches between dify_schema and the agent backend's ServerSettings" % len(result["problems"]))
    print("verified %d agent backend environments against the real ServerSettings (%d refused by both)"
          % (result["checked"], result["refused"]))


def dockerfile_runtime(text):
    """EXPOSE, USER, WORKDIR and CMD/ENTRYPOINT (exec form) of a Dockerfile's final stage."""
    text = re.sub(r"\\\n", " ", _strip_comments(text))
    out = {}
    for raw in text.splitlines():
        word, _sep, rest = raw.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            out = {}
        elif word == "EXPOSE":
            out.setdefault("expose", []).extend(int(p.split("/")[0]) for p in rest.split())
        elif word in ("USER", "WORKDIR"):
            out[word.lower()] = rest.strip()
        elif word in ("CMD", "ENTRYPOINT"):
            out[word.lower()] = json.loads(rest) if rest.strip().startswith("[") else ["/bin/sh", "-c", rest.strip()]
    return {k: out[k] for k in sorted(out)}


def _go_constants(repo, commit, root):
    """{Name: "value"} of the string constants of a Go tree (aliases like A = pkg.B resolved)."""
    raw = {}
    for path in ls_files(repo, commit, root):
        if not path.endswith(".go") or path.endswith("_test.go"):
            continue
        for m in re.finditer(r'^\s*(\w+)\s*=\s*("[^"]*"|\w+\.\w+|\w+)\s*(?://.*)?$', show(repo, commit, path), re.M):
            raw.setdefault(m.group(1), set()).add(m.group(2))
    out = {}
    for name, values in raw.items():
        value = next(iter(values)) if len(values) == 1 else None
        for _hop in range(5):
            if value is None or value.startswith('"'):
                break
            target = raw.get(value.rsplit(".", 1)[-1])
            value = next(iter(target)) if target and len(target) == 1 else None
        if value and value.startswith('"'):
            out[name] = value[1:-1]
    return out


def local_sandbox_data(repo, commit, compose, images):
    root = "dify-agent-runtime"
    consts = _go_constants(repo, commit, root)
    reads = {}
    for path in ls_files(repo, commit, root):
        if not path.endswith(".go") or path.endswith("_test.go"):
            continue
        for i, line in enumerate(show(repo, commit, path).splitlines()):
            for how, arg in re.findall(r"os\.(Getenv|LookupEnv)\(([^()]*)\)", line):
                arg = arg.strip()
                name = arg[1:-1] if arg.startswith('"') else consts.get(arg.rsplit(".", 1)[-1])
                if not name:
                    fail("%s:%d: cannot resolve the environment name %s" % (path, i + 1, arg))
                if name not in LOCAL_SANDBOX_READS:
                    fail("%s:%d: local sandbox reads %s, which LOCAL_SANDBOX_READS does not describe"
                         % (path, i + 1, name))
                reads.setdefault(name, []).append({"src": "%s:%d" % (path, i + 1), "how": how})
    config = show(repo, commit, root + "/internal/landlock/config.go")
    defaults = {}
    for var, name in (("DefaultRWPaths", "SHELLCTL_LANDLOCK_RW_PATHS"), ("DefaultROPaths", "SHELLCTL_LANDLOCK_RO_PATHS"),
                      ("DefaultRWDevPaths", "SHELLCTL_LANDLOCK_RW_DEV_PATHS")):
        m = re.search(r"%s = \[\]string\{(.*?)\}" % var, config, re.S)
        if not m:
            fail("landlock config: %s not found" % var)
        defaults[name] = re.findall(r'"([^"]*)"', m.group(1))
    described = {}
    for name in sorted(reads):
        entry = dict(LOCAL_SANDBOX_READS[name], reads=reads[name])
        if name in defaults:
            entry["default"] = defaults[name]
        described[name] = entry
    dockerfile = show(repo, commit, root + "/docker/Dockerfile")
    api = show(repo, commit, root + "/internal/server/api.go")
    health = re.search(r'HandleFunc\("GET (/\w+)", handleHealthz\)', api)
    open_routes = re.findall(r'HandleFunc\("([A-Z]+ [^"]+)", (?!auth\()', api)
    data = {
        "src": root,
        "reads": described,
        "image": images.get("local_sandbox", ""),
        "image_env": dockerfile_env(dockerfile),
        "dockerfile": dict(dockerfile_runtime(dockerfile), src=root + "/docker/Dockerfile"),
        "server": {"src": root + "/internal/server", "listen_default": consts.get("DefaultListen", ""),
                   "health": health.group(1) if health else "", "unauthenticated": open_routes},
        "library": dict(sorted(LOCAL_SANDBOX_LIBRARY.items())),
        "compose": {"local_sandbox": compose["local_sandbox"]},
    }
    names = set(described) | set(data["image_env"]) | set(data["library"])
    data["names"] = sorted(names)
    return data


def _squid_lines(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            yield line.split()


def agent_ssrf_proxy_data(repo, commit, compose, images):
    entry = compose["agent_ssrf_proxy"]
    mounts = {}
    for volume in entry.get("volumes", []):
        host, _sep, target = str(volume).partition(":")
        mounts[target.split(":")[0]] = "docker/" + os.path.normpath(host)
    template = mounts.get("/etc/squid/squid.conf.template")
    if not template:
        fail("agent_ssrf_proxy mounts no /etc/squid/squid.conf.template")
    texts = {path: show(repo, commit, path) for path in sorted(mounts.values()) if path.endswith(".template")}
    acls = {}
    for path, text in texts.items():
        for words in _squid_lines(text):
            if words[0] == "acl" and len(words) >= 3:
                acls.setdefault(words[1], {"kind": words[2], "values": [], "src": path})["values"].extend(words[3:])
    access, ports, includes = [], [], []
    for words in _squid_lines(texts[template]):
        if words[0] == "http_access":
            access.append(words[1:])
        elif words[0] == "http_port":
            ports.append(" ".join(words[1:]))
        elif words[0] == "include":
            includes.append(words[1])
    used = sorted({w.lstrip("!") for rule in access for w in rule[1:]} - {"all"})
    missing = [a for a in used if a not in acls]
    if missing:
        fail("agent squid config uses undefined ACLs %s" % missing)
    template_vars = sorted({m[2] for text in texts.values() for m in _shell_expansions(text)})
    entrypoint = next((p for p in mounts.values() if p.endswith(".sh")), "")
    data = {
        "image": images.get("agent_ssrf_proxy", ""),
        "mounts": {k: mounts[k] for k in sorted(mounts)},
        "squid": {"src": template, "http_port": ports, "include": includes, "http_access": access,
                  "acls": {a: acls[a] for a in used}},
        "entrypoint": {"src": entrypoint, "expands": template_vars},
        "compose": {"agent_ssrf_proxy": entry},
        "names": template_vars,
    }
    return data


# ---------------------------------------------------------------- assembling a release

def extract(args):
    dify = args.dify
    commit = resolve(dify, args.commit)
    if args.ref and resolve(dify, args.ref) != commit:
        fail("%s resolves to %s, not %s" % (args.ref, resolve(dify, args.ref), commit))
    compose_text = show(dify, commit, "docker/docker-compose.yaml")
    images, compose = compose_data(compose_text)
    daemon_image = images.get("plugin_daemon", "")
    sandbox_image = images.get("sandbox", "")
    daemon_tag = daemon_image.rpartition(":")[2]
    daemon_ref = daemon_tag.split("-")[0]
    sandbox_ref = sandbox_image.rpartition(":")[2]
    if not daemon_ref or not sandbox_ref:
        fail("the compose file pins no plugin_daemon or sandbox image")

    tmp = tempfile.mkdtemp(prefix="dify-contract-", dir=args.tmpdir)
    try:
        archive(dify, commit, ["api"], tmp)
        api_dir = os.path.join(tmp, "api")
        dumped = _run_in_tree(api_dir, "--dump-config")
        lock = show(dify, commit, "api/uv.lock")
        for pkg, key in (("pydantic", "pydantic"), ("pydantic-settings", "pydantic_settings"),
                         ("pydantic-core", "pydantic_core")):
            pinned = re.search(r'\[\[package\]\]\nname = "%s"\nversion = "([^"]+)"' % pkg, lock)
            if pinned and pinned.group(1) != dumped["toolchain"][key] and not args.allow_toolchain_mismatch:
                fail("api/uv.lock pins %s %s but this Python has %s: build the venv for this release "
                     "(make-venv.sh) or pass --allow-toolchain-mismatch" % (pkg, pinned.group(1),
                                                                            dumped["toolchain"][key]))
        api = {"field_count": dumped["field_count"], "model_validators": dumped["model_validators"]}
        settings = dumped["settings"]
        unmodelled = set()
        for name, spec in settings.items():
            for entry in spec.get("validators", []):
                func = entry.split(":", 1)[1]
                if func not in KNOWN_VALIDATORS:
                    unmodelled.add(func)
                else:
                    spec.update(KNOWN_VALIDATORS[func])
        if unmodelled:
            fail("field validators with no modelled semantics (add them to KNOWN_VALIDATORS after reading them): %s"
                 % ", ".join(sorted(unmodelled)))
        api["settings"] = settings
        reads, dynamic, prefixes = scan_python_reads(api_dir, "api/")
        api["reads"] = {k: reads[k] for k in sorted(reads)}
        api["dynamic_reads"] = dynamic
        api["prefixes"] = {k: prefixes[k] for k in sorted(prefixes)}
        entry = api_entrypoint(show(dify, commit, "api/docker/entrypoint.sh"))
        entry["src"] = "api/docker/entrypoint.sh"
        api["entrypoint"] = entry
        api["image_env"] = dockerfile_env(show(dify, commit, "api/Dockerfile"))
        files = [f for f in ls_files(dify, commit, "api")
                 if f.count("/") == 1 or (f.startswith("api/docker/") and f.count("/") == 2)]
        api["files"] = sorted(files)
        api["runtime_choices"] = {}
        for name, (path, cls) in sorted(RUNTIME_CHOICES.items()):
            api["runtime_choices"][name] = {"values": enum_values(show(dify, commit, path), cls),
                                            "src": "%s:%s" % (path, cls)}
        api["library"] = dict(sorted(LIBRARY_NAMES["api"].items()))
        api["compose"] = {s: compose[s] for s in ("api", "worker", "worker_beat", "api_websocket") if s in compose}
        names = set()
        for fname, spec in settings.items():
            names.update(spec.get("env") or [fname])
        names.update(api["reads"])
        names.update(api["entrypoint"]["reads"])
        names.update(api["image_env"])
        names.update(api["library"])
        api["names"] = sorted(n for n in names if re.match(r"^[A-Z_][A-Z0-9_]*$", n))

        # web
        web = {"image_env": dockerfile_env(show(dify, commit, "web/Dockerfile"))}
        web_entry = parse_shell(show(dify, commit, "web/docker/entrypoint.sh"))
        web["entrypoint"] = {"src": "web/docker/entrypoint.sh", "reads": web_entry["reads"],
                             "exports": web_entry["exports"]}
        web["reads"] = _web_reads(dify, commit)
        web["library"] = dict(sorted(LIBRARY_NAMES["web"].items()))
        web["compose"] = {"web": compose.get("web", {})}
        wnames = set(web["image_env"]) | set(web["entrypoint"]["reads"]) | set(web["reads"]) | set(web["library"])
        web["names"] = sorted(n for n in wnames if re.match(r"^[A-Z_][A-Z0-9_]*$", n))

        # plugin daemon
        daemon_commit, envconfig, fields = daemon_data(args.plugin_daemon, daemon_ref, args.envconfig)
        flavour = daemon_tag.split("-", 1)[1] if "-" in daemon_tag else "local"
        daemon = {"src": "internal/types/app/config.go", "fields": fields,
                  "reads": go_reads(args.plugin_daemon, daemon_commit,
                                    exclude=("cmd/commandline/", "pkg/slim/", "pkg/plugin_packager/",
                                             "internal/core/testutils/")),
                  "image_env": dockerfile_env(show(args.plugin_daemon, daemon_commit, "docker/%s.dockerfile" % flavour)),
                  "library": dict(sorted(LIBRARY_NAMES["plugin_daemon"].items())),
                  "compose": {"plugin_daemon": compose.get("plugin_daemon", {})}}
        if exists(args.plugin_daemon, daemon_commit, "entrypoint.sh"):
            daemon["entrypoint"] = {"src": "entrypoint.sh",
                                    "reads": parse_shell(show(args.plugin_daemon, daemon_commit, "entrypoint.sh"))["reads"]}
        dnames = set(fields) | set(daemon["reads"]) | set(daemon["image_env"]) | set(daemon["library"])
        dnames |= set(daemon.get("entrypoint", {}).get("reads", {}))
        daemon["names"] = sorted(n for n in dnames if re.match(r"^[A-Z_][A-Z0-9_]*$", n))

        # sandbox
        sandbox_commit = resolve(args.sandbox, sandbox_ref)
        sandbox = {"reads": sandbox_reads(args.sandbox, sandbox_commit),
                   "image_env": dockerfile_env(show(args.sandbox, sandbox_commit,
                                                    "docker/templates/production.dockerfile")),
                   "entrypoint": {"src": "docker/entrypoint.sh", "reads": parse_shell(
                       show(args.sandbox, sandbox_commit, "docker/entrypoint.sh"))["reads"]},
                   "library": dict(sorted(LIBRARY_NAMES["sandbox"].items())),
                   "compose": {"sandbox": compose.get("sandbox", {})}}
        snames = set(sandbox["reads"]) | set(sandbox["image_env"]) | set(sandbox["entrypoint"]["reads"]) | \
            set(sandbox["library"])
        sandbox["names"] = sorted(n for n in snames if re.match(r"^[A-Z_][A-Z0-9_]*$", n))

        agent = {}
        if "agent_backend" in compose and exists(dify, commit, AGENT_SETTINGS[0]):
            agent["agent_backend"] = agent_backend_data(dify, commit, compose, images, tmp)
        if "local_sandbox" in compose and exists(dify, commit, "dify-agent-runtime"):
            agent["local_sandbox"] = local_sandbox_data(dify, commit, compose, images)
        if "agent_ssrf_proxy" in compose:
            agent["agent_ssrf_proxy"] = agent_ssrf_proxy_data(dify, commit, compose, images)

        release = {
            "format": FORMAT,
            "release": args.release,
            "sources": {
                "dify": {"repository": "langgenius/dify", "ref": args.ref or "", "commit": commit},
                "plugin_daemon": {"repository": "langgenius/dify-plugin-daemon", "ref": daemon_ref,
                                  "commit": daemon_commit},
                "sandbox": {"repository": "langgenius/dify-sandbox", "ref": sandbox_ref, "commit": sandbox_commit},
                "envconfig": envconfig,
            },
            "toolchain": dumped["toolchain"],
            "client_libraries": lock_pins(lock, CLIENT_LIBRARIES),
            "images": images,
            "api": api,
            "web": web,
            "plugin_daemon": daemon,
            "sandbox": sandbox,
        }
        release.update(agent)
        release["compose_networks"] = compose_networks(compose_text)
        if args.expect_fields is not None and api["field_count"] != args.expect_fields:
            fail("DifyConfig has %d fields, expected %d" % (api["field_count"], args.expect_fields))
        text = render_module(release)
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        summary(release, args.output)
        if not args.no_verify:
            result = _run_in_tree(api_dir, "--verify-config", os.path.abspath(args.output))
            print("verified %d (field, value) pairs against the real DifyConfig" % result["checked"])
            if result["problems"]:
                for p in result["problems"]:
                    print("  MISMATCH " + p)
                fail("%d mismatches between dify_schema / the rebuilt model and the real DifyConfig"
                     % len(result["problems"]))
        if not args.no_verify and "agent_backend" in release:
            _verify_agent(os.path.join(tmp, AGENT_TREE, "src"), os.path.abspath(args.output))
        if args.verify_go:
            checked, mismatches = verify_go(args.envconfig, envconfig["commit"], args.tmpdir)
            print("verified %d (Go type, value) pairs against envconfig %s and strconv" % (checked, envconfig["ref"]))
            if mismatches:
                for m in mismatches[:50]:
                    print("  MISMATCH " + m)
                fail("%d mismatches between dify_schema and Go" % len(mismatches))
    finally:
        if not args.keep_tree:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("tree kept in %s" % tmp)


def _web_reads(repo, commit):
    text = git(repo, "grep", "-n", "-E", r"process\.env\.[A-Z_][A-Z0-9_]*", commit, "--", "web", check=False)
    out = {}
    for line in text.splitlines():
        _commit, path, _lineno, code = line.split(":", 3)
        if re.search(r"(__tests__|__mocks__|\.spec\.|\.test\.|\.stories\.|/\.storybook/|/e2e/)", path):
            continue
        for name in re.findall(r"process\.env\.([A-Z_][A-Z0-9_]*)", code):
            out.setdefault(name, set()).add(path)
    return {k: sorted(out[k]) for k in sorted(out)}


def summary(release, output):
    api = release["api"]
    print("%s: Dify %s (%s)" % (output, release["release"], release["sources"]["dify"]["commit"]))
    print("  DifyConfig fields %d, api names %d (direct reads %d, entrypoint %d, image ENV %d)" % (
        api["field_count"], len(api["names"]), len(api["reads"]), len(api["entrypoint"]["reads"]),
        len(api["image_env"])))
    print("  web names %d, plugin daemon %s fields %d names %d, sandbox %s names %d" % (
        len(release["web"]["names"]), release["sources"]["plugin_daemon"]["ref"],
        len(release["plugin_daemon"]["fields"]), len(release["plugin_daemon"]["names"]),
        release["sources"]["sandbox"]["ref"], len(release["sandbox"]["names"])))
    for name, reads in sorted(release["sandbox"]["reads"].items()):
        shown = ["%s %s %s" % (r["src"], r["parse"], r.get("on_error", "")) for r in reads]
        print("  sandbox %s: %s" % (name, "; ".join(shown)))
    for d in api["dynamic_reads"]:
        print("  api dynamic read %s: %s" % (d["src"], d["expr"]))
    for fam in ("agent_backend", "local_sandbox", "agent_ssrf_proxy"):
        if fam not in release:
            print("  %s: not in this release" % fam)
            continue
        print("  %s names %d%s" % (fam, len(release[fam]["names"]), "".join(
            ", %s %d" % (k, len(release[fam][k])) for k in ("settings", "reads", "rules") if k in release[fam])))


# ---------------------------------------------------------------- output module

WIDTH = 159


def _lit(value):
    if isinstance(value, str):
        return json.dumps(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (_lit(k), _lit(v)) for k, v in value.items()) + "}"
    raise TypeError(value)


def _fmt(value, indent, prefix, suffix):
    """Lines for ``prefix + value + suffix`` at ``indent``, broken to fit WIDTH."""
    pad = " " * indent
    one = pad + prefix + _lit(value) + suffix
    if len(one) <= WIDTH:
        return [one]
    if isinstance(value, dict) and value:
        lines = [pad + prefix + "{"]
        for k, v in value.items():
            lines.extend(_fmt(v, indent + 4, _lit(k) + ": ", ","))
        lines.append(pad + "}" + suffix)
        return lines
    if isinstance(value, list) and value:
        lines = [pad + prefix + "["]
        for v in value:
            lines.extend(_fmt(v, indent + 4, "", ","))
        lines.append(pad + "]" + suffix)
        return lines
    if isinstance(value, str):
        room = max(WIDTH - indent - 8, 40)
        chunks = [value[i:i + room] for i in range(0, len(value), room)]
        lines = [pad + prefix + "("]
        for chunk in chunks:
            lines.append(pad + "    " + json.dumps(chunk))
        lines.append(pad + ")" + suffix)
        return lines
    return [one]


_FIELD_ORDER = ("type", "default", "default_expr", "env", "field", "src", "validators", "blank", "strip",
                "reject_substring", "check")


def _order(value):
    """Type nodes with "t" first, field specs in _FIELD_ORDER; everything else as built."""
    if isinstance(value, list):
        return [_order(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "t" in value:
        keys = ["t"] + sorted(k for k in value if k != "t")
    elif "type" in value and "src" in value:
        extra = sorted(k for k in value if k not in _FIELD_ORDER)
        if extra:
            raise SystemExit("field spec keys %s are not in _FIELD_ORDER" % extra)
        keys = [k for k in _FIELD_ORDER if k in value]
    else:
        keys = list(value)
    return {k: _order(value[k]) for k in keys}


def render_module(release):
    src = release["sources"]
    head = [
        "# -*- coding: utf-8 -*-",
        "# Copyright: difyops.fleet contributors",
        "# Apache License 2.0",
        "# Generated by scripts/dify-contract/extract.py; do not edit (regenerate: scripts/dify-contract/README.md).",
        '"""Dify %s\'s environment contract, extracted from Dify\'s own source.' % release["release"],
        "",
        "Format: docs/CONTRACT.md. Sources (every fact below comes from these commits):",
        "",
    ]
    for key in ("dify", "plugin_daemon", "sandbox", "envconfig"):
        s = src[key]
        head.append("- %s %s: %s" % (s["repository"], s["ref"] or "(no tag)", s["commit"]))
    tc = release["toolchain"]
    head += ["", "DifyConfig imported with Python %s, pydantic %s (core %s), pydantic-settings %s."
             % (tc["python"], tc["pydantic"], tc["pydantic_core"], tc["pydantic_settings"]), '"""', "",
             "from __future__ import annotations", ""]
    body = _fmt(_order(release), 0, "RELEASE = ", "")
    return "\n".join(head + body) + "\n"


# ---------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--dump-config":
        dump_config(argv[1])
        return 0
    if argv and argv[0] == "--verify-agent":
        verify_agent(argv[1], argv[2])
        return 0
    if argv and argv[0] == "--verify-config":
        verify_config(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--release", required=True, help="the Dify release, e.g. 1.13.3")
    parser.add_argument("--dify", required=True, help="git directory of a Dify mirror")
    parser.add_argument("--commit", required=True, help="the release commit (or a ref resolving to it)")
    parser.add_argument("--ref", default="", help="the release tag; must resolve to --commit")
    parser.add_argument("--plugin-daemon", required=True, help="git directory of langgenius/dify-plugin-daemon")
    parser.add_argument("--sandbox", required=True, help="git directory of langgenius/dify-sandbox")
    parser.add_argument("--envconfig", required=True, help="git directory of kelseyhightower/envconfig")
    parser.add_argument("--output", required=True, help="the data module to write")
    parser.add_argument("--expect-fields", type=int, help="fail unless DifyConfig has this many fields")
    parser.add_argument("--allow-toolchain-mismatch", action="store_true")
    parser.add_argument("--no-verify", action="store_true", help="skip the comparison with the real DifyConfig")
    parser.add_argument("--verify-go", action="store_true",
                        help="also run the real envconfig/strconv (needs go) and compare with dify_schema")
    parser.add_argument("--keep-tree", action="store_true")
    parser.add_argument("--tmpdir", default=None)
    extract(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

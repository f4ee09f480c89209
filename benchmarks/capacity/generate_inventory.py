# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Write a YAML inventory of N hosts (default 1000) in the difyops.fleet groups.

Hosts carry difyops_memory_mb/difyops_cpus instead of gathered facts, so the
plan can be computed without reaching them. Layout for N=1000: 3 PostgreSQL,
3 Redis (+ Sentinel on the same hosts), 300 api, 600 worker (one of them
beat), 40 web, 30 sandbox, 10 plugin daemon, 8 ssrf proxy, 6 edge.

    python3 benchmarks/capacity/generate_inventory.py 1000 > /tmp/fleet1000.yml
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import sys


def layout(n):
    counts = [("dify_postgres", "pg", 3), ("dify_redis", "redis", 3), ("dify_plugin_daemon", "daemon", 10),
              ("dify_ssrf_proxy", "proxy", 8), ("dify_edge", "edge", 6), ("dify_web", "web", 40),
              ("dify_sandbox", "sandbox", 30)]
    fixed = sum(entry[2] for entry in counts)
    api = max(1, (n - fixed) // 3)
    worker = max(1, n - fixed - api)
    counts += [("dify_api", "api", api), ("dify_worker", "worker", worker)]
    return counts


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    sizes = {"pg": (524288, 64), "redis": (16384, 4), "api": (8192, 4), "worker": (8192, 4),
             "web": (4096, 2), "sandbox": (4096, 2), "daemon": (8192, 4), "proxy": (2048, 2),
             "edge": (2048, 2)}
    children = {}
    for group, prefix, count in layout(n):
        mem, cpus = sizes[prefix]
        names = ["%s%04d" % (prefix, i) for i in range(1, count + 1)]
        children[group] = {"hosts": dict((name, {"difyops_memory_mb": mem, "difyops_cpus": cpus})
                                         for name in names)}
    children["dify_sentinel"] = {"hosts": dict((h, {}) for h in children["dify_redis"]["hosts"])}
    children["dify_beat"] = {"hosts": {"worker0001": {}}}
    inventory = {"all": {
        "vars": {
            # a fleet this size keeps each process's pool small and its vectors
            # outside PostgreSQL; without these the plan refuses it (as it should)
            "dify_gunicorn_workers": 2,
            "dify_sqlalchemy_pool_size": 2,
            "dify_sqlalchemy_max_overflow": 0,
            "dify_celery_concurrency": 8,
            "dify_vector_store": "weaviate",
        },
        "children": children,
    }}
    json.dump(inventory, sys.stdout, indent=1)  # JSON is YAML
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

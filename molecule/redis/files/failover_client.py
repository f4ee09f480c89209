#!/usr/bin/python3
"""Write to Redis through redis-py's Sentinel support, as Dify does, and log
what happens while the master fails over.

Usage: failover_client.py CONFIG.json RESULT.json
CONFIG: sentinels ["h:p", ...], master_name, password, sentinel_password,
duration (s), interval (s).
RESULT: every write's time and outcome summarised, plus the master the
Sentinels named over time.
"""
import json
import sys
import time

import redis
from redis.sentinel import Sentinel


def main():
    cfg = json.load(open(sys.argv[1]))
    hosts = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in cfg["sentinels"]]
    # The same calls as Dify's ext_redis: sentinel_kwargs carry the Sentinels'
    # password and a short socket timeout; master_for gets the master's.
    sentinel = Sentinel(hosts, sentinel_kwargs={"password": cfg["sentinel_password"], "socket_timeout": 0.1})
    master = sentinel.master_for(cfg["master_name"], password=cfg["password"], db=0,
                                 socket_timeout=0.5, socket_connect_timeout=0.5)
    end = time.time() + cfg["duration"]
    writes = []  # [time, ok, error]
    masters = []  # [time, "h:p"]
    last_master = None
    next_probe = 0.0
    seq = 0
    while time.time() < end:
        now = time.time()
        if now >= next_probe:
            try:
                addr = "%s:%d" % sentinel.discover_master(cfg["master_name"])
            except redis.RedisError as exc:
                addr = "unknown (%s)" % type(exc).__name__
            if addr != last_master:
                masters.append([now, addr])
                last_master = addr
            next_probe = now + 0.2
        seq += 1
        try:
            master.set("failover:last", seq)
            master.incr("failover:acked")
            writes.append([now, True, None])
        except redis.RedisError as exc:
            writes.append([now, False, type(exc).__name__])
        time.sleep(cfg["interval"])

    ok = [w[0] for w in writes if w[1]]
    failed = [w[0] for w in writes if not w[1]]
    result = {
        "writes": len(writes),
        "ok_writes": len(ok),
        "failed_writes": len(failed),
        "error_types": sorted(set(w[2] for w in writes if w[2])),
        "first_failure": failed[0] if failed else None,
        "last_failure": failed[-1] if failed else None,
        "last_ok_before_failure": max([t for t in ok if failed and t < failed[0]] or [None], key=lambda x: x or 0),
        "first_ok_after_failure": min([t for t in ok if failed and t > failed[-1]] or [None], key=lambda x: x or 0),
        "ok_after_last_failure": len([t for t in ok if failed and t > failed[-1]]),
        "masters": masters,
        "acked_increments": len(ok),
    }
    if result["last_ok_before_failure"] and result["first_ok_after_failure"]:
        result["write_outage_seconds"] = round(result["first_ok_after_failure"] - result["last_ok_before_failure"], 3)
    else:
        result["write_outage_seconds"] = None
    try:
        result["counter_after"] = int(master.get("failover:acked") or 0)
    except redis.RedisError:
        result["counter_after"] = None
    json.dump(result, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()

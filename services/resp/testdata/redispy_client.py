"""redis-py against kv: the commands of the README, as a Python program
uses them. Run by TestRedisPy (redispy_test.go) with kv's port and password;
it prints OK at the end, and fails on the first assertion or error."""

import sys
import time

import redis

port, password = int(sys.argv[1]), sys.argv[2]

try:
    redis.Redis(port=port, socket_timeout=10).ping()
    raise AssertionError("a client without the password was served")
except redis.exceptions.AuthenticationError:
    pass

r = redis.Redis(port=port, password=password, decode_responses=True, socket_timeout=10)
assert r.ping()
assert r.client_setname("py")
assert r.client_getname() == "py"
info = r.client_info()
assert info["name"] == "py", info
assert any(c["name"] == "py" for c in r.client_list())

# Hashes.
assert r.hset("cart", mapping={"apples": "3", "pears": "4"}) == 2
assert r.hget("cart", "apples") == "3"
assert r.hget("cart", "plums") is None
assert r.hmget("cart", ["apples", "plums"]) == ["3", None]
assert r.hgetall("cart") == {"apples": "3", "pears": "4"}
assert r.hincrby("cart", "apples", 2) == 5
assert r.hincrbyfloat("cart", "weight", 1.5) == 1.5
assert r.hsetnx("cart", "apples", "9") == 0
assert r.hexists("cart", "pears")
assert r.hlen("cart") == 3
assert sorted(r.hkeys("cart")) == ["apples", "pears", "weight"]
assert sorted(r.hvals("cart")) == ["1.5", "4", "5"]
assert r.hstrlen("cart", "pears") == 1
assert dict(r.hscan_iter("cart", match="p*")) == {"pears": "4"}
assert r.hrandfield("cart") in ("apples", "pears", "weight")
assert r.hdel("cart", "weight") == 1

# Keys (buckets).
assert r.exists("cart", "nope") == 1
assert r.type("cart") == "hash"
assert r.keys("c*") == ["cart"]
assert list(r.scan_iter(match="ca*", count=10)) == ["cart"]
assert r.rename("cart", "basket")
assert r.dbsize() == 1
assert r.ttl("basket") == -1
assert r.delete("basket") == 1
assert r.exists("basket") == 0

# Errors as Redis words them, mapped to redis-py's exceptions.
r.hset("h", "f", "v")
try:
    r.get("h")
    raise AssertionError("GET on a hash was served")
except redis.exceptions.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
try:
    r.hincrby("h", "f", 1)
    raise AssertionError("HINCRBY on a non-integer was served")
except redis.exceptions.ResponseError as e:
    assert "not an integer" in str(e), e

# Pipelines: without a transaction, and with one (MULTI/EXEC), and WATCH.
p = r.pipeline(transaction=False)
for i in range(100):
    p.hset("pipe", "f%d" % i, i)
assert p.execute() == [1] * 100
assert r.hlen("pipe") == 100
with r.pipeline() as p:
    p.hincrby("pipe", "f1", 10)
    p.hget("pipe", "f1")
    assert p.execute() == [11, "11"]
with r.pipeline() as p:
    p.watch("pipe")
    redis.Redis(port=port, password=password).hset("pipe", "f1", "changed")
    p.multi()
    p.hget("pipe", "f1")
    try:
        p.execute()
        raise AssertionError("EXEC ran although a watched key changed")
    except redis.exceptions.WatchError:
        pass

# The lifecycle events, through redis-py's pub/sub.
ps = r.pubsub(ignore_subscribe_messages=True)
ps.subscribe("kv:created")
ps.psubscribe("kv:bucket:*")
# The subscriptions are sent, not yet served: the HSET below, on another
# connection, could run first and its events reach no one. Wait until
# the server counts both.
deadline = time.monotonic() + 10
while r.pubsub_numsub("kv:created")[0][1] < 1 or r.pubsub_numpat() < 1:
    assert time.monotonic() < deadline, "not subscribed within 10 s"
    ps.get_message(timeout=0.1)
r.hset("fresh", "f", "v")
seen = []
deadline = time.monotonic() + 10
while len(seen) < 2:
    assert time.monotonic() < deadline, "no event within 10 s: %r" % seen
    # None for a subscription's confirmation too, which it skips.
    m = ps.get_message(timeout=1)
    if m is not None:
        seen.append((m["type"], m["channel"]))
assert ("message", "kv:created") in seen, seen
assert ("pmessage", "kv:bucket:fresh") in seen, seen
ps.close()

# The server, as tools read it.
assert r.info("server")["redis_version"]
assert r.config_get("maxclients") == {"maxclients": "10000"}
assert r.flushall()
assert r.dbsize() == 0
print("OK")

#!/usr/bin/env python3
"""Decodes the KV-event payloads test_kv_events_zmq captured, with python3-msgpack and vLLM's
field names, as a consumer written for vLLM would: every batch must be vLLM's array-like
EventBatch [ts, events, data_parallel_rank], every event a map tagged by "type" whose keys are
fields vLLM declares (vllm/distributed/kv_events.py) with the types vLLM gives them. The blocks
rebuilt per medium from the events, in seq order, must be exactly the snapshot the test wrote.

Usage: decode_vllm_kv_events.py CAPTURE_DIR. Exits 77 (skipped) without python3-msgpack, unless
PAGEDKV_REQUIRE_ZMQ is set (CI), where that is a failure.
"""
import json
import os
import re
import sys

try:
    import msgpack
except ImportError:
    message = "python3-msgpack is not installed (Debian: apt-get install python3-msgpack)"
    if os.environ.get("PAGEDKV_REQUIRE_ZMQ"):
        sys.exit("FAILED: " + message + ", and PAGEDKV_REQUIRE_ZMQ is set")
    print("skipped: " + message)
    sys.exit(77)

# vLLM's event structs: required fields (no default) and the optional ones, with their types.
INT = int
OPTIONAL_INT = (int, type(None))
OPTIONAL_STR = (str, type(None))
VLLM_EVENTS = {
    "BlockStored": {
        "required": {"block_hashes": list, "parent_block_hash": OPTIONAL_INT, "token_ids": list,
                     "block_size": INT, "lora_id": OPTIONAL_INT, "medium": OPTIONAL_STR,
                     "lora_name": OPTIONAL_STR},
        "optional": {"extra_keys": (list, type(None)), "group_idx": OPTIONAL_INT,
                     "kv_cache_spec_kind": OPTIONAL_STR, "kv_cache_spec_sliding_window": OPTIONAL_INT},
    },
    "BlockRemoved": {
        "required": {"block_hashes": list, "medium": OPTIONAL_STR},
        "optional": {"group_idx": OPTIONAL_INT},
    },
    "AllBlocksCleared": {"required": {}, "optional": {}},
}


def fail(where, what):
    sys.exit(f"FAILED: {where}: {what}")


def check_event(where, event):
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        fail(where, f"an event is not a map tagged by 'type': {event!r:.200}")
    schema = VLLM_EVENTS.get(event["type"])
    if schema is None:
        fail(where, f"unknown event type {event['type']!r}")
    for name, kind in schema["required"].items():
        if name not in event:
            fail(where, f"{event['type']} has no {name}")
        if not isinstance(event[name], kind):
            fail(where, f"{event['type']}.{name} = {event[name]!r:.80} has the wrong type")
    for name, value in event.items():
        if name == "type" or name in schema["required"]:
            continue
        if name not in schema["optional"]:
            fail(where, f"{event['type']} has a field vLLM does not declare: {name}")
        if not isinstance(value, schema["optional"][name]):
            fail(where, f"{event['type']}.{name} has the wrong type")
    for h in event.get("block_hashes", []):
        if not isinstance(h, int) or not 0 <= h < 2**63:
            fail(where, f"block hash {h!r} is not an int64 >= 0")


def main(directory):
    files = [f for f in os.listdir(directory) if re.fullmatch(r"batch-\d+\.msgpack", f)]
    seqs = sorted(int(f[6:-8]) for f in files)
    if not seqs or seqs != list(range(seqs[0], seqs[0] + len(seqs))) or seqs[0] != 0:
        fail(directory, f"the captured batches are not 0..n-1 ({len(seqs)} files)")
    blocks = {}  # medium -> {hash: (parent, tokens)}
    counts = {name: 0 for name in VLLM_EVENTS}
    for seq in seqs:
        where = f"batch {seq}"
        with open(os.path.join(directory, f"batch-{seq}.msgpack"), "rb") as f:
            batch = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
        if not (isinstance(batch, list) and len(batch) == 3 and isinstance(batch[0], float)
                and isinstance(batch[1], list) and isinstance(batch[2], int)):
            fail(where, f"not vLLM's EventBatch [ts, events, data_parallel_rank]: {batch!r:.200}")
        for event in batch[1]:
            check_event(where, event)
            counts[event["type"]] += 1
            if event["type"] == "AllBlocksCleared":
                blocks.clear()
                continue
            medium = blocks.setdefault(event["medium"], {})
            if event["type"] == "BlockRemoved":
                for h in event["block_hashes"]:
                    if medium.pop(h, None) is None:
                        fail(where, f"removed unknown block {h}")
                continue
            size = event["block_size"]
            tokens = event["token_ids"]
            if len(tokens) != size * len(event["block_hashes"]):
                fail(where, "token_ids do not cover the blocks")
            parent = event["parent_block_hash"]
            for i, h in enumerate(event["block_hashes"]):
                if parent is not None and parent not in medium:
                    fail(where, f"block {h} stored under unknown parent {parent}")
                medium[h] = (parent, tokens[i * size:(i + 1) * size])
                parent = h
    with open(os.path.join(directory, "snapshot.json")) as f:
        snapshot = json.load(f)
    expected = {}
    for b in snapshot["blocks"]:
        expected.setdefault(b["medium"], {})[b["block_hash"]] = (b["parent_block_hash"], b["token_ids"])
    rebuilt = {medium: found for medium, found in blocks.items() if found}
    if rebuilt != expected:
        fail(directory, f"the events rebuild {sum(map(len, rebuilt.values()))} blocks, "
                        f"the snapshot has {sum(map(len, expected.values()))} (or they differ)")
    print(f"decoded {len(seqs)} batches with vLLM's field names ({counts}); "
          f"{sum(map(len, expected.values()))} blocks per medium equal the snapshot")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

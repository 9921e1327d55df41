"""Check a PUJA INDAH audit export (JSON lines) offline, with nothing but Python (docs/audit.md):
    python verify_export.py export.jsonl [POSITION:HASH]
Exit status 0 when every event links to the one before it and its hash is that of its content; given a head
published earlier, also when the export holds that position with that hash."""

import hashlib
import json
import sys

head = sys.argv[2].split(":") if len(sys.argv) > 2 else None
prev, count, found = None, 0, None
with open(sys.argv[1], encoding="utf-8") as lines:
    for line in lines:
        event = json.loads(line)
        content = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if prev is None:  # an export that starts later links to the event before it
            prev = "0" * 64 if event["position"] == 1 else event["prev_hash"]
        digest = hashlib.sha256(f"{prev}\n{canonical}".encode()).hexdigest()
        if event["prev_hash"] != prev or event["hash"] != digest:
            sys.exit(f"NOT VERIFIED at position {event['position']}")
        prev, count = digest, count + 1
        if head and str(event["position"]) == head[0]:
            found = digest
if head and found != head[1]:
    sys.exit(f"NOT VERIFIED: the export does not hold the published head {':'.join(head)}")
print(f"verified: {count} events, last hash {prev}")

"""A minimal subscriber of the PUJA INDAH event stream (docs/integrators.md).

    pip install "kafka-python>=3.0.12,<4"
    python examples/subscriber.py --bootstrap 127.0.0.1:9092 --group my-dashboard

It reads both topics from the beginning (replay), skips events it has already handled (at-least-once delivery:
deduplicate by the CloudEvents `id`), and commits its offsets only after handling.
"""

from __future__ import annotations

import argparse
import json

from kafka import KafkaConsumer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="example-subscriber")
    parser.add_argument("--prefix", default="puja")
    args = parser.parse_args()

    consumer = KafkaConsumer(
        f"{args.prefix}.innovations.v1",
        f"{args.prefix}.replications.v1",
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",  # a new group replays the stream from the beginning
        enable_auto_commit=False,
    )
    seen: set[str] = set()  # keep this in your own database, in the same transaction as your writes
    try:
        while True:
            for batch in consumer.poll(timeout_ms=1000).values():
                for message in batch:
                    event = json.loads(message.value)
                    if event["id"] in seen:
                        continue  # a re-delivery after a relay restart
                    seen.add(event["id"])
                    print(event["position"], event["type"].split(".")[-2], event["subject"], event["data"])
            consumer.commit()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()

"""Lag is visible: `GET /api/v1/projections`, `/metrics` and `/readyz` show each projection's and the relay's
position, head, lag and time since the last advance, and in streaming mode each consumer group's committed
offsets against the topics' end offsets. `/readyz` answers 503 once a projection (or, streaming, the relay) has
been behind without advancing for longer than PUJA_STALL_SECONDS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conftest import free_port
from streaming import Stream, record_burst, wait_until

from app import create_app
from app.runtime import Runtime
from app.settings import Settings


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in\n{text}")


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_readyz_answers_503_while_an_in_process_projection_is_stalled_and_200_once_it_catches_up(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"PUJA_DATA_DIR": str(tmp_path / "var"), "PUJA_STALL_SECONDS": "0.5"})
    assert settings.stall_seconds == 0.5
    runtime = Runtime.open(settings)
    try:
        client = create_app(runtime=runtime).test_client()
        runtime.runner.stop()  # nothing applies what is recorded next
        record_burst(runtime.network, 100)
        head = runtime.network.head_position()

        stalled = wait_until(
            lambda: (r := client.get("/readyz")).status_code == 503 and r, 10, "/readyz to answer 503"
        )
        assert stalled.mimetype == "application/problem+json"
        rows = by_name(stalled.get_json()["projections"])
        assert {n: (r["lag"], r["status"]) for n, r in rows.items()} == {
            "index": (head, "stalled"),
            "audit": (head, "stalled"),
        }
        assert "index" in stalled.get_json()["detail"] and "audit" in stalled.get_json()["detail"]
        text = client.get("/metrics").get_data(as_text=True)
        assert metric(text, "puja_projection_stalled", projection="index") == 1
        assert metric(text, "puja_projection_lag", projection="audit") == head

        runtime.runner.catch_up()
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert {(r["lag"], r["status"]) for r in ready.get_json()["projections"]} == {(0, "ok")}
        text = client.get("/metrics").get_data(as_text=True)
        assert metric(text, "puja_projection_stalled", projection="index") == 0
        assert 0 <= metric(text, "puja_projection_seconds_since_advance", projection="audit") < 10
    finally:
        runtime.close()


def test_a_projection_that_was_idle_and_current_is_not_stalled_by_a_new_event(tmp_path: Path) -> None:
    settings = Settings.from_env({"PUJA_DATA_DIR": str(tmp_path / "var"), "PUJA_STALL_SECONDS": "30"})
    runtime = Runtime.open(settings)
    try:
        client = create_app(runtime=runtime).test_client()
        runtime.runner.stop()
        record_burst(runtime.network, 10)
        runtime.runner.catch_up()
        # the last advance was a moment ago; what matters is that the pending event is new, not the advance
        record_burst(runtime.network, 10, seed=4)
        rows = by_name(client.get("/api/v1/projections").get_json()["items"])
        assert rows["index"]["status"] == "catching_up"
        assert rows["index"]["pending_since"] is not None
        assert client.get("/readyz").status_code == 200
    finally:
        runtime.close()


def test_streaming_lag_is_shown_per_consumer_group_and_readyz_follows_the_relay_and_consumers(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    stream = Stream(tmp_path, kafka_bootstrap, PUJA_STALL_SECONDS="1")
    runtime = Runtime.open(stream.settings())
    try:
        assert not runtime.settings.project_in_process
        client = create_app(runtime=runtime).test_client()
        stored = record_burst(runtime.network, 300)
        head = runtime.network.head_position()

        # nothing runs: the relay and both projections stall
        stalled = wait_until(
            lambda: (r := client.get("/readyz")).status_code == 503 and r, 15, "/readyz to answer 503"
        )
        rows = by_name(stalled.get_json()["projections"])
        assert {n: r["status"] for n, r in rows.items()} == {
            "index": "stalled",
            "audit": "stalled",
            "relay": "stalled",
        }
        assert rows["relay"]["lag"] == head and rows["relay"]["required"]

        stream.start("relay")
        stream.start("consume", "index")
        stream.start("consume", "audit")

        def caught_up() -> Any:
            items = by_name(client.get("/api/v1/projections").get_json()["items"])
            streams = [items[n].get("stream") or {} for n in ("index", "audit")]
            done = all(i["lag"] == 0 for i in items.values()) and all(
                s.get("lag_messages") == 0 and s.get("end_offset") == stored for s in streams
            )
            return done and items

        try:
            items = wait_until(caught_up, 90, "the relay and consumers to catch up", every=0.2)
        except AssertionError as error:
            raise AssertionError(
                f"{error}\n{client.get('/api/v1/projections').get_json()}\n{stream.logs()}"
            ) from None
        for name in ("index", "audit"):
            group = items[name]["stream"]
            assert group["group"] == f"{stream.prefix}-{name}"
            assert group["committed_offset"] == group["end_offset"] == stored
            assert group["error"] is None
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.get_json()
        text = client.get("/metrics").get_data(as_text=True)
        for name in ("index", "audit"):
            labels = {"projection": name, "group": f"{stream.prefix}-{name}"}
            assert metric(text, "puja_consumer_group_lag_messages", **labels) == 0
            assert metric(text, "puja_consumer_group_end_offset", **labels) == stored
        assert metric(text, "puja_projection_position", projection="relay") == head
        assert metric(text, "puja_projection_stalled", projection="relay") == 0
    finally:
        stream.stop_all()
        runtime.close()


def test_a_broker_that_is_down_does_not_make_the_status_endpoints_wait(tmp_path: Path) -> None:
    nothing_listens = f"127.0.0.1:{free_port()}"
    settings = Settings.from_env(
        {"PUJA_DATA_DIR": str(tmp_path / "var"), "PUJA_KAFKA_BOOTSTRAP": nothing_listens}
    )
    runtime = Runtime.open(settings)
    try:
        client = create_app(runtime=runtime).test_client()
        record_burst(runtime.network, 10)
        for path in ("/api/v1/projections", "/api/v1/projections", "/metrics", "/readyz"):
            started = time.monotonic()
            answer = client.get(path)
            assert time.monotonic() - started < 3.0, f"{path} waited on the broker"
            assert answer.status_code in (200, 503)
        items = by_name(client.get("/api/v1/projections").get_json()["items"])
        assert items["index"]["stream"]["lag_messages"] is None
        assert wait_until(
            lambda: by_name(client.get("/api/v1/projections").get_json()["items"])["index"]["stream"][
                "error"
            ],
            10,
            "the lookup to report the broker unreachable",
        )
        assert "puja_consumer_group_lag_messages{" not in client.get("/metrics").get_data(as_text=True)
    finally:
        runtime.close()

"""Schema evolution (docs/audit.md): events and snapshots stored by release 1, when an innovation had
one `urusan_utama`, are read as release 2's list `urusan` — by the aggregate, from a snapshot, in the
notification log's EventRecords, in the history endpoint and in the projections — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from conftest import days_ago, innovation_fields
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.innovation import Innovation
from service import audit
from service.network import InnovationNetwork, read_records
from service.store import open_network

INNOVATIONS = "/api/v1/innovations"


# --- writing as release 1 did -------------------------------------------------------------------


def v1_state(event: Any) -> dict[str, Any]:
    """The state release 1's mapper encoded for this event: no class_version, one `urusan_utama`."""
    state = dict(vars(event))
    state.pop("originator_id")
    state.pop("originator_version")
    if "urusan" in state:
        (state["urusan_utama"],) = state.pop("urusan")
    changes = state.get("changes")
    if changes is not None and "urusan" in changes:
        changes = dict(changes)
        (changes["urusan_utama"],) = changes.pop("urusan")
        state["changes"] = changes
    return state


def stored_bytes(network: InnovationNetwork, state: dict[str, Any]) -> bytes:
    """Encoded as the library's mapper encodes state: transcoder, then compressor and cipher when configured."""
    mapper = network.mapper
    data = mapper.transcoder.encode(state)
    if mapper.compressor:
        data = mapper.compressor.compress(data)
    if mapper.cipher:
        data = mapper.cipher.encrypt(data)
    return data


def store_as_release_1(network: InnovationNetwork, innovation: Innovation) -> None:
    """Store the aggregate's pending events in release 1's shape, through the store's own recorder."""
    events = innovation.collect_events()
    network.recorder.insert_events(
        [
            StoredEvent(
                originator_id=event.originator_id,
                originator_version=event.originator_version,
                topic=get_topic(type(event)),
                state=stored_bytes(network, v1_state(event)),
            )
            for event in events
        ]
    )


def register_v1(network: InnovationNetwork, urusan: str, **overrides: Any) -> UUID:
    fields = innovation_fields(urusan=[urusan], stage="uji_coba", **overrides)
    innovation = Innovation.register(**fields)
    store_as_release_1(network, innovation)
    return innovation.id


def revise_v1(network: InnovationNetwork, innovation_id: UUID, urusan: str) -> None:
    innovation = network.innovation(innovation_id)
    innovation.revise({"urusan": [urusan]}, "Urusan utama dikoreksi.")
    store_as_release_1(network, innovation)


def snapshot_as_release_1(network: InnovationNetwork, innovation_id: UUID) -> int:
    """A snapshot of the aggregate's state as release 1 kept it (one `urusan_utama`, no class_version)."""
    taken = Snapshot.take(network.innovation(innovation_id))
    state = dict(taken.state)
    assert state.pop("class_version") == 2
    (state["urusan_utama"],) = state.pop("urusan")
    old = Snapshot(
        originator_id=taken.originator_id,
        originator_version=taken.originator_version,
        timestamp=taken.timestamp,
        topic=taken.topic,
        state=state,
    )
    assert network.snapshots is not None
    network.snapshots.put([old])
    return taken.originator_version


def raw_states(network: InnovationNetwork, innovation_id: UUID) -> list[dict[str, Any]]:
    """The stored states of one aggregate, decrypted but not upcast."""
    mapper = network.mapper
    states = []
    for stored in network.recorder.select_events(innovation_id):
        data = stored.state
        if mapper.cipher:
            data = mapper.cipher.decrypt(data)
        if mapper.compressor:
            data = mapper.compressor.decompress(data)
        states.append(json.loads(data))
    return states


# --- the aggregate ------------------------------------------------------------------------------


def test_release_1_events_are_stored_in_their_old_shape(network, admin):
    innovation_id = register_v1(network, "kesehatan")
    revise_v1(network, innovation_id, "sosial")
    registered, revised = raw_states(network, innovation_id)
    assert "class_version" not in registered and "urusan" not in registered
    assert registered["urusan_utama"] == "kesehatan"
    assert revised["changes"] == {"urusan_utama": "sosial"}


def test_an_aggregate_recorded_by_release_1_rebuilds_with_a_list_of_urusan(network, admin):
    innovation_id = register_v1(network, "kesehatan")
    revise_v1(network, innovation_id, "sosial")
    innovation = network.innovation(innovation_id)
    assert innovation.urusan == ["sosial"]
    assert innovation.version == 2
    assert "urusan_utama" not in vars(innovation)
    assert network.innovation(innovation_id, version=1).urusan == ["kesehatan"]


def test_commands_on_an_upcast_aggregate_are_stored_as_version_2(network, admin):
    innovation_id = register_v1(network, "kesehatan")
    network.revise_innovation(innovation_id, {"urusan": ["kesehatan", "sosial"]}, "Dua urusan.")
    network.advance_innovation_stage(innovation_id, "penerapan", days_ago(10))
    states = raw_states(network, innovation_id)
    assert states[1]["class_version"] == 2
    assert states[1]["changes"] == {"urusan": ["kesehatan", "sosial"]}
    assert "class_version" not in states[2]  # InnovationStageAdvanced did not change shape
    assert network.innovation(innovation_id).urusan == ["kesehatan", "sosial"]


def test_an_aggregate_rebuilds_from_a_release_1_snapshot_and_release_1_events_after_it(
    network, admin, tmp_path, database_url
):
    innovation_id = register_v1(network, "kesehatan")
    revise_v1(network, innovation_id, "sosial")
    at = snapshot_as_release_1(network, innovation_id)
    revise_v1(network, innovation_id, "pendidikan")  # after the snapshot, still release 1

    assert network.snapshots is not None
    (stored_snapshot,) = network.snapshots.get(innovation_id)
    assert stored_snapshot.originator_version == at == 2
    assert stored_snapshot.state["urusan_utama"] == "sosial"  # what the store holds
    assert stored_snapshot.mutate(None).urusan == ["sosial"]  # Innovation.upcast_v1_v2

    fresh = open_network(database_url, tmp_path / "events.sqlite")  # no cached aggregates
    try:
        innovation = fresh.innovation(innovation_id)
        assert innovation.urusan == ["pendidikan"]
        assert innovation.version == 3
        assert innovation.name == innovation_fields()["name"]
        assert fresh.innovation(innovation_id, version=2).urusan == ["sosial"]
    finally:
        fresh.close()


def test_notification_log_records_show_the_upcast_shape(network, admin):
    innovation_id = register_v1(network, "kesehatan")
    revise_v1(network, innovation_id, "sosial")
    registered, revised = read_records(network, 0, 10)
    assert registered.type == "InnovationRegistered"
    assert registered.data["urusan"] == ["kesehatan"]
    assert "urusan_utama" not in registered.data and "class_version" not in registered.data
    assert revised.data["changes"] == {"urusan": ["sosial"]}


# --- the API and the projections ----------------------------------------------------------------


def test_history_and_projections_show_release_1_events_in_the_new_shape(api, admin):
    network = api.runtime.network
    innovation_id = register_v1(network, "kesehatan", name="Posyandu Digital Lama")
    other = register_v1(network, "pendidikan", name="Sekolah Lapang")
    revise_v1(network, innovation_id, "sosial")
    api.settle()
    auditor = api.token("bpk", "auditor")

    history = api.get(f"{INNOVATIONS}/{innovation_id}/history", auditor)
    assert history.status_code == 200
    registered, revised = history.get_json()["items"]
    assert registered["data"]["urusan"] == ["kesehatan"] and "urusan_utama" not in registered["data"]
    assert revised["data"]["changes"] == {"urusan": ["sosial"]}

    document = api.get(f"{INNOVATIONS}/{innovation_id}").get_json()
    assert document["urusan"] == ["sosial"]
    by_urusan = api.get(f"{INNOVATIONS}?urusan=sosial").get_json()["items"]
    assert [item["id"] for item in by_urusan] == [str(innovation_id)]
    by_old_urusan = api.get(f"{INNOVATIONS}?urusan=pendidikan").get_json()["items"]
    assert [item["id"] for item in by_old_urusan] == [str(other)]


def test_a_release_1_innovation_takes_commands_through_the_api(api, admin):
    innovation_id = register_v1(api.runtime.network, "kesehatan")
    admin_token = api.token("admin-test", "admin")
    response = api.post(
        f"{INNOVATIONS}/{innovation_id}/revisions",
        {"urusan": ["kesehatan", "pangan"], "reason": "Juga urusan pangan."},
        admin_token,
        **{"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["urusan"] == ["kesehatan", "pangan"]
    api.settle(response)
    listed = api.get(f"{INNOVATIONS}?urusan=pangan").get_json()["items"]
    assert [item["id"] for item in listed] == [str(innovation_id)]


# --- the hash chain ----------------------------------------------------------------------------


def test_the_chain_covers_events_as_recorded_so_upcasting_never_breaks_it(network, admin):
    """The chain was computed over each event as it was recorded; an event class that later changed shape is
    verified and exported in its recorded shape, while readers of the log see the current one."""
    innovation_id = register_v1(network, "kesehatan")
    revise_v1(network, innovation_id, "sosial")
    network.revise_innovation(innovation_id, {"urusan": ["sosial", "pangan"]}, "Juga urusan pangan.")

    verdict = audit.verify(network)
    assert verdict.ok and verdict.checked == 3, verdict

    registered, revised, current = audit.records(network)
    assert registered.data["urusan_utama"] == "kesehatan" and "urusan" not in registered.data
    assert revised.data["changes"] == {"urusan_utama": "sosial"}
    assert current.data["changes"] == {"urusan": ["sosial", "pangan"]}
    upcast = read_records(network, 0, 10)
    assert upcast[0].data["urusan"] == ["kesehatan"]
    assert [r.hash for r in upcast] == [registered.hash, revised.hash, current.hash]
    assert registered.expected_hash(registered.prev_hash or "") == registered.hash
    assert upcast[0].expected_hash(upcast[0].prev_hash or "") != upcast[0].hash

"""The AsyncAPI document describes every event the relay publishes, and real envelopes validate against it."""

from __future__ import annotations

from typing import Any

import jsonschema
from conftest import days_ago, innovation_fields

from consumers.asyncapi import document, event_classes
from consumers.envelope import cloudevent
from service.network import InnovationNetwork, read_records


def test_every_event_type_of_both_aggregates_has_a_message_schema() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {"puja.innovations.v1", "puja.replications.v1"}
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == {
        "InnovationRegistered",
        "InnovationStageAdvanced",
        "InnovationRevised",
        "InnovationEvaluated",
        "InnovationRetired",
        "ReplicationProposed",
        "AgreementSigned",
        "ReplicationRejected",
        "ModificationRecorded",
        "AdoptionAdvanced",
        "EvaluationRecorded",
        "ReplicationDiscontinued",
    }
    assert len(event_classes()) == 12


def test_published_envelopes_validate_against_their_schemas(network: InnovationNetwork, admin: Any) -> None:
    innovation = network.register_innovation(**innovation_fields()).aggregate
    replication = network.propose_replication(
        innovation_id=innovation.id, adopting_region="35.05", rationale="x", proposed_on=days_ago(10)
    ).aggregate
    network.sign_agreement(replication.id, document="pks", document_number="1", signed_on=days_ago(9))
    network.advance_adoption(
        replication.id, stage="uji_coba", effective_on=days_ago(8), evidence_urls=["https://x.id/a"]
    )
    network.revise_innovation(innovation.id, {"name": "Baru"}, "rename")
    messages = document()["components"]["messages"]
    records = read_records(network, 0, 100)
    assert len(records) == 5
    for record in records:
        schema = messages[f"{record.aggregate_type.lower()}.{record.type}"]["payload"]
        jsonschema.validate(cloudevent(record), schema, format_checker=jsonschema.FormatChecker())


def test_an_envelope_with_a_missing_field_does_not_validate(network: InnovationNetwork, admin: Any) -> None:
    network.register_innovation(**innovation_fields())
    (record,) = read_records(network, 0, 10)
    envelope = cloudevent(record)
    del envelope["data"]["region"]
    schema = document()["components"]["messages"]["innovation.InnovationRegistered"]["payload"]
    try:
        jsonschema.validate(envelope, schema)
    except jsonschema.ValidationError as error:
        assert "region" in error.message
    else:
        raise AssertionError("a missing field validated")


def test_the_api_serves_the_document(api: Any) -> None:
    response = api.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.get_json()["asyncapi"] == "3.0.0"

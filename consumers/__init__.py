"""Kafka: the relay from the event store's notification log to the topics of events.md."""

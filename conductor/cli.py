"""The `conductor` command."""

from __future__ import annotations

import os
import time

import click


@click.group()
@click.version_option(package_name="conductor")
def main() -> None:
    """Kafka to Elasticsearch and Cassandra, routed by KCQL."""


@main.command("produce-readings")
@click.option("--bootstrap-servers", envvar="CONDUCTOR_KAFKA_BOOTSTRAP", default="127.0.0.1:19092",
              show_default=True, help="Kafka bootstrap servers (env CONDUCTOR_KAFKA_BOOTSTRAP).")
@click.option("--topic", default="temperatures.aggregated", show_default=True)
@click.option("--partitions", default=6, show_default=True, help="Used when the topic is created.")
@click.option("--count", default=10_000, show_default=True)
@click.option("--sensors", default=1000, show_default=True)
def produce_readings(bootstrap_servers: str, topic: str, partitions: int, count: int, sensors: int) -> None:
    """Produce sample temperature readings (JSON, keyed by sensor id) to a topic."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from conductor.readings import readings

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    started = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, batch_size=256 * 1024,
                             compression_type=None, acks="all")
    for key, value in readings(count, sensors=sensors):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    elapsed = time.monotonic() - started
    click.echo(f"produced {count} readings to {topic} in {elapsed:.1f}s ({count / max(elapsed, 1e-9):,.0f}/s)")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(__file__))

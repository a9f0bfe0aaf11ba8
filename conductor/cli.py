"""The `conductor` command."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from conductor.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


@click.group()
@click.version_option(package_name="conductor")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """Kafka to Elasticsearch and Cassandra, routed by KCQL."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def _load(config_path: str, bootstrap_servers: str | None):
    from conductor.config import load_config
    from conductor.connector import build_connector

    overrides = {"bootstrap.servers": bootstrap_servers} if bootstrap_servers else None
    config = load_config(config_path, overrides=overrides)
    return build_connector(config)


_config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Connector config: .properties, .json (Kafka Connect REST) or .yaml.",
)
_bootstrap_option = click.option(
    "--bootstrap-servers", default=None, help="Kafka bootstrap servers, over the config's bootstrap.servers."
)


@main.command()
@_config_option
@_bootstrap_option
def validate(config_path: str, bootstrap_servers: str | None) -> None:
    """Print the routes a config describes, or every problem in it (exit 1)."""
    try:
        connector = _load(config_path, bootstrap_servers)
        schema_problems = connector.sink.check_schema() if hasattr(connector.sink, "check_schema") else []
        if schema_problems:
            raise ConfigError(schema_problems, source=connector.config.source)
    except ConfigError as error:
        click.echo(f"{error.source}: {len(error.problems)} problem(s)", err=True)
        for problem in error.problems:
            click.echo("  - " + problem.replace("\n", "\n    "), err=True)
        sys.exit(1)
    config = connector.config
    click.echo(
        f"connector {config.name}: {config.sink} sink, consumer group {config.group_id}, "
        f"{config.tasks_max} worker(s) by default"
    )
    click.echo(f"  topics: {config.topics_regex or ', '.join(config.topics)}")
    for number, statement in enumerate(connector.statements, start=1):
        fields = ", ".join(
            f.dotted
            + (".*" if f.wildcard and f.path else "*" if f.wildcard else "")
            + (f" AS {f.alias}" if f.alias else "")
            for f in statement.fields
        )
        click.echo(
            f"  route {number}: {statement.topic} -> {statement.target.name}"
            f"{statement.index_suffix or ''} ({statement.write_mode})"
        )
        click.echo(f"    fields: {fields}")
        if statement.ignored:
            click.echo(f"    ignore: {', '.join(i.dotted for i in statement.ignored)}")
        pk = ", ".join(k.dotted for k in statement.primary_keys)
        if config.elastic is not None:
            document_id = (
                f"{pk} joined by {config.elastic.pk_separator!r}" if pk else "topic-partition-offset"
            )
            click.echo(f"    document id: {document_id}")
        else:
            click.echo(
                f"    table: {statement.target.name} in keyspace {config.cassandra.keyspace} "
                "(primary key from the table's schema)"
            )
        for clause, value in (
            ("autocreate", statement.autocreate),
            ("pipeline", statement.pipeline),
            ("batch", statement.batch_size),
            ("ttl", statement.ttl),
            ("properties", dict(statement.properties) or None),
        ):
            if value:
                click.echo(f"    {clause}: {value}")
    retry = (
        f" (max.retries={config.max_retries}, retry.interval={config.retry_interval_ms} ms)"
        if config.error_policy == "RETRY"
        else ""
    )
    click.echo(
        f"  error policy: {config.error_policy}{retry}; dead-letter topic: {config.dlq_topic or 'none'}"
        f"; errors.tolerance={config.errors_tolerance}"
    )
    for warning in config.warnings:
        click.echo(f"  warning: {warning}")


def _write_timeout_s(config) -> float:
    if config.elastic is not None:
        return config.elastic.write_timeout_ms / 1000
    return 60.0  # the Cassandra sink's retry deadline within one write


@main.command()
@_config_option
@_bootstrap_option
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the config's tasks.max).",
)
def start(config_path: str, bootstrap_servers: str | None, workers: int | None) -> None:
    """Run the connector: a supervisor and N workers in the connector's consumer group."""
    from conductor.status import state_dir_for
    from conductor.supervisor import Supervisor, SupervisorSettings
    from tasks.worker import SinkWorker

    try:
        connector = _load(config_path, bootstrap_servers)
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(2)
    config = connector.config
    for warning in config.warnings:
        logging.getLogger("conductor.config").warning("%s", warning)
    settings = SupervisorSettings(
        workers=workers or config.tasks_max,
        # A write may legitimately take up to the sink's write timeout without a heartbeat.
        heartbeat_timeout_s=max(config.worker.heartbeat_timeout_s, _write_timeout_s(config) + 30),
        drain_timeout_s=config.worker.drain_timeout_s,
        rss_limit_mb=config.worker.rss_limit_mb,
        restart_backoff_initial_s=config.worker.restart_backoff_initial_s,
        restart_backoff_max_s=config.worker.restart_backoff_max_s,
        restart_max=config.worker.restart_max,
        name=config.name,
        state_dir=state_dir_for(config.name),
    )
    worker = SinkWorker(config, connector.routes, connector.sink, supervisor_pid=os.getpid())
    sys.exit(Supervisor(settings, worker).run())


@main.command("produce-readings")
@click.option(
    "--bootstrap-servers",
    envvar="CONDUCTOR_KAFKA_BOOTSTRAP",
    default="127.0.0.1:19092",
    show_default=True,
    help="Kafka bootstrap servers (env CONDUCTOR_KAFKA_BOOTSTRAP).",
)
@click.option("--topic", default="temperatures.aggregated", show_default=True)
@click.option("--partitions", default=6, show_default=True, help="Used when the topic is created.")
@click.option("--count", default=10_000, show_default=True)
@click.option("--sensors", default=1000, show_default=True)
def produce_readings(bootstrap_servers: str, topic: str, partitions: int, count: int, sensors: int) -> None:
    """Produce sample temperature readings (JSON, keyed by sensor id) to a topic."""
    from kafka import KafkaProducer

    from conductor.admin import admin_client, ensure_topic
    from conductor.readings import readings

    admin = admin_client({"bootstrap_servers": bootstrap_servers})
    try:
        ensure_topic(admin, topic, partitions, replication_factor=1)
    finally:
        admin.close()
    started = time.monotonic()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type=None,
        acks="all",
    )
    for key, value in readings(count, sensors=sensors):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    elapsed = time.monotonic() - started
    click.echo(
        f"produced {count} readings to {topic} in {elapsed:.1f}s ({count / max(elapsed, 1e-9):,.0f}/s)"
    )


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(__file__))

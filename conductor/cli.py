"""The `conductor` command."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from conductor import exitcodes
from conductor.errors import ConfigError

log = logging.getLogger("conductor.config")


@click.group()
@click.version_option(package_name="conductor")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="CONDUCTOR_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"], case_sensitive=False),
    help="json: one JSON object per line, for log shippers (env CONDUCTOR_LOG_FORMAT).",
)
def main(log_level: str, log_format: str) -> None:
    """Kafka to Elasticsearch and Cassandra, routed by KCQL."""
    from conductor.logs import configure

    configure(log_level, log_format)


def _load(config_path: str, bootstrap_servers: str | None):
    from conductor import envconfig
    from conductor.config import load_config, parse_config
    from conductor.connector import build_connector

    overrides = {"bootstrap.servers": bootstrap_servers} if bootstrap_servers else None
    if config_path == envconfig.SELECTOR:
        raw = {**envconfig.config_from_env(os.environ), **(overrides or {})}
        config = parse_config(raw, source=envconfig.SOURCE)
    else:
        config = load_config(config_path, overrides=overrides)
    return build_connector(config)


_config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Connector config: .properties, .json (Kafka Connect REST) or .yaml.",
)
# What start and validate read: a file, or env: (a container's variables, conductor/envconfig.py).
_run_config_option = click.option(
    "--config",
    "config_path",
    envvar="CONDUCTOR_CONFIG",
    required=True,
    type=click.Path(dir_okay=False),
    help="Connector config: .properties, .json (Kafka Connect REST) or .yaml; or env: for the "
    "CONNECTOR_* and CONNECT_* variables (deploy/container/README.md). Env CONDUCTOR_CONFIG.",
)
_bootstrap_option = click.option(
    "--bootstrap-servers", default=None, help="Kafka bootstrap servers, over the config's bootstrap.servers."
)


@main.command()
@_run_config_option
@_bootstrap_option
def validate(config_path: str, bootstrap_servers: str | None) -> None:
    """Print the routes a config describes, or every problem in it (exit 1)."""
    try:
        connector = _load(config_path, bootstrap_servers)
        servers, server_problems = connector.check_servers()
        schema_problems = [] if server_problems else connector.check_schema()
        if server_problems or schema_problems:
            raise ConfigError(server_problems + schema_problems, source=connector.config.source)
    except ConfigError as error:
        click.echo(f"{error.source}: {len(error.problems)} problem(s)", err=True)
        for problem in error.problems:
            click.echo("  - " + problem.replace("\n", "\n    "), err=True)
        sys.exit(exitcodes.INVALID)
    config = connector.config
    kind = "aggregator" if config.aggregate is not None else f"{config.sink} sink"
    click.echo(
        f"connector {config.name}: {kind}, consumer group {config.group_id}, "
        f"{config.tasks_max} worker(s) by default"
    )
    click.echo(f"  topics: {config.topics_regex or ', '.join(config.topics)}")
    if config.transforms is not None:
        click.echo(f"  transforms: {config.transforms.describe()}")
    for line in connector.describe():
        click.echo(f"  {line}")
    for line in servers:
        click.echo(f"  server: {line}")
    errors = config.errors
    retry = (
        f" (max.retries={errors.max_retries}, retry.interval={errors.retry_interval_ms} ms)"
        if errors.policy == "RETRY"
        else ""
    )
    dead_letter = errors.dead_letter.topic if errors.dead_letter else "none"
    policy = "" if config.aggregate is not None else f"error policy: {errors.policy}{retry}; "
    click.echo(f"  {policy}errors.tolerance={errors.tolerance}; dead-letter topic: {dead_letter}")
    for notice in config.notices:
        click.echo(f"  note: {notice}")
    for warning in config.warnings:
        click.echo(f"  warning: {warning}")


@main.command()
@_run_config_option
@_bootstrap_option
@click.option(
    "--workers",
    envvar="CONDUCTOR_WORKERS",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the config's tasks.max). Env CONDUCTOR_WORKERS.",
)
def start(config_path: str, bootstrap_servers: str | None, workers: int | None) -> None:
    """Run the connector: a supervisor and N workers in the connector's consumer group."""
    from conductor.api import ApiServer
    from conductor.supervisor import Supervisor

    try:
        connector = _load(config_path, bootstrap_servers)
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(exitcodes.CONFIG_ERROR)
    config = connector.config
    for notice in config.notices:
        log.info("%s: %s", config.source, notice)
    for warning in config.warnings:
        log.warning("%s: %s", config.source, warning)
    settings = connector.supervisor_settings(workers)
    try:
        server = ApiServer(config, settings.state_dir)
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(exitcodes.CONFIG_ERROR)
    log.info("%s: REST API, page and metrics at %s (/ui, /metrics)", config.name, server.url)
    supervisor = Supervisor(settings, connector.worker(), server)
    sys.exit(supervisor.run())


@main.command()
@_config_option
@click.option("--dry-run", is_flag=True, help="Say what would be closed and deleted; change nothing.")
def retention(config_path: str, dry_run: bool) -> None:
    """Close and delete the connector's dated indexes once (conductor.index.*.after.days)."""
    from conductor.errors import ConductorError

    try:
        connector = _load(config_path, None)
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(exitcodes.CONFIG_ERROR)
    upkeep = connector.sink.upkeep() if hasattr(connector, "sink") else None
    if upkeep is None or upkeep.name != "retention":
        click.echo(
            f"{config_path}: no index retention to run: it applies to an Elasticsearch sink's dated indexes "
            f"(WITHINDEXSUFFIX) once conductor.index.close.after.days or conductor.index.delete.after.days is set",
            err=True,
        )
        sys.exit(exitcodes.CONFIG_ERROR)
    click.echo(f"retention of connector {connector.config.name}: {upkeep.describe()}")
    try:
        run = upkeep.apply(dry_run=dry_run)
    except ConductorError as error:
        click.echo(f"conductor retention: {error}", err=True)
        sys.exit(exitcodes.FAILED)
    finally:
        upkeep.close()
    for line in run.lines():
        click.echo(line)
    sys.exit(exitcodes.FAILED if run.failed else exitcodes.OK)


@main.command()
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="The running connector's config: its state names the URL, else its listeners do.",
)
@click.option("--url", default=None, help="The conductor's REST URL, such as http://127.0.0.1:8083.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON (GET /conductor/state).")
@click.option("--trace", is_flag=True, help="Print failed tasks' whole traces, not their first lines.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds.")
@click.option(
    "--token", envvar="CONDUCTOR_REST_TOKEN", default=None, help="Bearer token (env CONDUCTOR_REST_TOKEN)."
)
@click.option(
    "--cafile",
    envvar="CONDUCTOR_CA_FILE",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificates (PEM) that an https conductor's certificate is checked against (env CONDUCTOR_CA_FILE).",
)
def status(
    config_path: str | None,
    url: str | None,
    as_json: bool,
    trace: bool,
    timeout: float,
    token: str | None,
    cafile: str | None,
) -> None:
    """Show a running connector: its tasks, their partitions and lag, and their last errors."""
    import orjson

    from conductor import statusview

    if (config_path is None) == (url is None):
        raise click.UsageError("give either --config or --url")
    try:
        target = statusview.given(url) if url else statusview.locate(config_path)
        state = statusview.fetch(target.using(token, cafile), timeout)
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(exitcodes.CONFIG_ERROR)
    except statusview.Unreachable as error:
        click.echo(f"conductor status: {error}", err=True)
        sys.exit(exitcodes.FAILED)
    if as_json:
        click.echo(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(statusview.render(state, trace=trace))


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
@click.option(
    "--start-ms",
    type=int,
    default=None,
    help="Event time of the first reading, epoch ms (default: the readings end now).",
)
def produce_readings(
    bootstrap_servers: str, topic: str, partitions: int, count: int, sensors: int, start_ms: int | None
) -> None:
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
    for key, value in readings(count, sensors=sensors, start_ms=start_ms):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    elapsed = time.monotonic() - started
    click.echo(
        f"produced {count} readings to {topic} in {elapsed:.1f}s ({count / max(elapsed, 1e-9):,.0f}/s)"
    )


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(__file__))

"""conductor: Kafka to Elasticsearch and Cassandra, routed by KCQL."""

__version__ = "0.1.0"

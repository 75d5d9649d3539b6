"""Run the cdc connector until SIGTERM."""
from connectors.cdc.connector import CdcConfig, CdcConnector
from connectors.runtime import main

if __name__ == "__main__":
    main("PostgreSQL change data capture to Kafka (Debezium envelope, Avro)", CdcConfig, CdcConnector)

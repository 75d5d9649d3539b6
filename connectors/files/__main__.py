"""Run the files connector until SIGTERM."""
from connectors.files.connector import FilesConfig, FilesConnector
from connectors.runtime import main

if __name__ == "__main__":
    main("Publish rows of CSV, JSON Lines and Parquet files to Kafka as Avro", FilesConfig, FilesConnector)

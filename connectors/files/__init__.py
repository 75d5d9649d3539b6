"""``kappa connector files --config files.toml``: publish rows of CSV, JSON Lines and Parquet files.

Also an AWS Lambda handler for S3 ``ObjectCreated`` notifications (:mod:`connectors.files.lambda_handler`)
sharing the same manifest.
"""

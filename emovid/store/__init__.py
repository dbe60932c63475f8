"""Results on disk: the declared schema, rows, atomic Parquet sinks, the manifest, reading back."""

"""The aggregation and validation core: Ibis expressions on the contract's tables, run on
DuckDB (embedded, the default) or Spark."""

"""Where queries meet the data: the embedded DuckDB engine, its worker pool, Spark, and execution of
a checked plan with its bounding. Imports governance (dataset versions and policies) and store."""

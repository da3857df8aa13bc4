"""Storage: the asyncpg pool, plain-SQL migrations, the batched writer and the local spool for database outages."""

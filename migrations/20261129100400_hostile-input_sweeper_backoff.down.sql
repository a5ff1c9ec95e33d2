DROP TABLE sweeper_backoff;

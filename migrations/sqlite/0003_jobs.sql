-- The embedded job queue (production uses RabbitMQ), and how many times each session was written, so
-- that "analysed exactly once" is something a test can read.

CREATE TABLE huixi_jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    priority     INTEGER NOT NULL,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL,          -- ready | leased | dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,          -- ms, a retried job waits until then
    lease_until  INTEGER NOT NULL DEFAULT 0,-- ms, a job leased by a worker that died comes back after it
    last_error   TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX huixi_jobs_ready ON huixi_jobs (queue, state, priority, id);

ALTER TABLE huixi_sessions ADD COLUMN writes INTEGER NOT NULL DEFAULT 1;

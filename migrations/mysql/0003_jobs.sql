-- The embedded job queue (production uses RabbitMQ), and how many times each session was written, so
-- that "analysed exactly once" is something a test can read.

CREATE TABLE huixi_jobs (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue        VARCHAR(128) NOT NULL,
    priority     INT          NOT NULL,
    payload      MEDIUMTEXT   NOT NULL,
    state        VARCHAR(16)  NOT NULL,
    attempts     INT          NOT NULL DEFAULT 0,
    available_at BIGINT       NOT NULL,
    lease_until  BIGINT       NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   BIGINT       NOT NULL,
    KEY huixi_jobs_ready (queue, state, priority, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE huixi_sessions ADD COLUMN writes BIGINT NOT NULL DEFAULT 1;

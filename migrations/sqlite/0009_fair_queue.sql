-- Fair share between tenants in the embedded queue. Each job carries a virtual time (fair_rank): a
-- tenant's jobs are numbered on from that tenant's last one, but never below the first job still
-- waiting in the lane, so a tenant that arrives behind another's long backlog is interleaved with it
-- instead of queued after it. Claims read the index in (priority, fair_rank, id) order.
--
-- huixi_job_ranks holds each tenant's last rank per queue and lane. huixi_queue_tenants lists the
-- tenants that published batch jobs to a RabbitMQ queue, so every worker finds their queues.

ALTER TABLE huixi_jobs ADD COLUMN fair_rank INTEGER NOT NULL DEFAULT 0;
DROP INDEX huixi_jobs_due;
CREATE INDEX huixi_jobs_fair ON huixi_jobs (queue, state, priority DESC, fair_rank, id);

CREATE TABLE huixi_job_ranks (
    queue     TEXT    NOT NULL,
    priority  INTEGER NOT NULL,
    tenant    TEXT    NOT NULL,
    last_rank INTEGER NOT NULL,
    PRIMARY KEY (queue, priority, tenant)
);
CREATE INDEX huixi_job_ranks_last ON huixi_job_ranks (queue, priority, last_rank);

CREATE TABLE huixi_queue_tenants (
    queue  TEXT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (queue, tenant)
);

//! huixi's one integration-test binary (one link instead of one per file). Each module drives the real
//! `huixi` binary or the real services (SQLite files, this machine's MariaDB) from the outside.

mod analyze;
mod api;
mod behaviours;
mod customers;
mod evals;
mod helpers;
mod ingest;
mod kb;
mod llm;
mod mariadb;
mod mock_llm;
mod queue;
mod scale;
mod telemetry;
mod tenants;
mod webhooks;
mod wecom;
mod words;

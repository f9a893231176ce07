//! Worker-pool definitions (`workers/pools.toml`): the queue a pool consumes, how many jobs it runs at
//! once, and its retry policy. The shipped file is embedded; `--pools FILE` reads another.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

const SHIPPED: &str = include_str!("../../workers/pools.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    pools: BTreeMap<String, PoolDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolDef {
    pub queue: String,
    pub concurrency: usize,
    pub prefetch: u16,
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    pub retry: RetryPolicy,
}

fn default_lease() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Deliveries before the job goes to the dead letters.
    pub max_tries: u32,
    /// The delay before the n-th retry; the last one repeats.
    pub delays_secs: Vec<f64>,
}

impl RetryPolicy {
    /// The delay after the `attempts`-th failed delivery.
    pub fn delay(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) - 1) as usize;
        let secs = self.delays_secs[i.min(self.delays_secs.len() - 1)];
        Duration::from_secs_f64(secs)
    }

    pub fn delays(&self) -> Vec<Duration> {
        self.delays_secs
            .iter()
            .map(|s| Duration::from_secs_f64(*s))
            .collect()
    }
}

impl PoolDef {
    /// The pool `name` from `file`, or from the shipped definitions.
    pub fn load(file: Option<&Path>, name: &str) -> anyhow::Result<PoolDef> {
        let (source, text) = match file {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
            ),
            None => ("workers/pools.toml".to_string(), SHIPPED.to_string()),
        };
        // toml's message names the line, column and field of the problem.
        let parsed: PoolFile =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let Some(pool) = parsed.pools.get(name) else {
            let known: Vec<&str> = parsed.pools.keys().map(String::as_str).collect();
            anyhow::bail!("{source}: no pool {name:?} (pools: {})", known.join(", "));
        };
        let bad = |field: &str, why: &str| anyhow::anyhow!("{source}: pools.{name}.{field} {why}");
        if pool.concurrency == 0 {
            return Err(bad("concurrency", "must be at least 1"));
        }
        if pool.prefetch == 0 {
            return Err(bad("prefetch", "must be at least 1"));
        }
        if pool.retry.max_tries == 0 {
            return Err(bad("retry.max_tries", "must be at least 1"));
        }
        if pool.retry.delays_secs.is_empty()
            || pool
                .retry
                .delays_secs
                .iter()
                .any(|d| !d.is_finite() || *d <= 0.0 || *d > 86_400.0)
        {
            return Err(bad(
                "retry.delays_secs",
                "must list delays between 0 and 86400 seconds",
            ));
        }
        Ok(pool.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_pool_loads_and_its_delays_grow_then_repeat() {
        let p = PoolDef::load(None, "analysis").unwrap();
        assert!(p.concurrency >= 1);
        assert!(p.retry.delay(1) < p.retry.delay(2));
        assert_eq!(
            p.retry.delay(99),
            p.retry.delay(p.retry.delays_secs.len() as u32)
        );
    }

    #[test]
    fn bad_definitions_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        std::fs::write(
            &f,
            "[pools.a]\nqueue='q'\nconcurrency=0\nprefetch=1\n[pools.a.retry]\nmax_tries=1\ndelays_secs=[1]\n",
        )
        .unwrap();
        let e = PoolDef::load(Some(&f), "a").unwrap_err().to_string();
        assert!(
            e.contains("p.toml") && e.contains("pools.a.concurrency"),
            "{e}"
        );
        std::fs::write(
            &f,
            "[pools.a]\nqueue='q'\nconcurrency=1\nprefetch=1\nretries=3\n",
        )
        .unwrap();
        let e = PoolDef::load(Some(&f), "a").unwrap_err().to_string();
        assert!(e.contains("retries"), "{e}");
        let e = PoolDef::load(None, "nope").unwrap_err().to_string();
        assert!(e.contains("analysis"), "{e}");
    }
}

//! Engines per tenant, shared by every worker as `Arc<Engine>` and swapped whole on change: a new
//! automaton is built first, then replaces the old one under a short write lock, so a tenant is never
//! without one and scans already running finish on the engine they started with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::lexicon::{Lexicon, LineError};
use super::matcher::Engine;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read lexicon {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// What a watched file looked like when last read.
type Stamp = Option<(SystemTime, u64)>;

struct Watch {
    lexicon: PathBuf,
    whitelist: Option<PathBuf>,
    stamps: (Stamp, Stamp),
}

pub struct Registry {
    default: Arc<Engine>,
    engines: RwLock<HashMap<String, Arc<Engine>>>,
    watches: RwLock<HashMap<String, Watch>>,
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })
}

impl Registry {
    pub fn new(default: Lexicon) -> Registry {
        Registry {
            default: Arc::new(Engine::build(&default)),
            engines: RwLock::default(),
            watches: RwLock::default(),
        }
    }

    /// The tenant's engine, or the default one.
    pub fn engine(&self, tenant: &str) -> Arc<Engine> {
        self.engines
            .read()
            .expect("registry lock")
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }

    /// Replaces a tenant's lexicon. The automaton is built before the lock is taken.
    pub fn set(&self, tenant: &str, lexicon: Lexicon) {
        let engine = Arc::new(Engine::build(&lexicon));
        self.engines
            .write()
            .expect("registry lock")
            .insert(tenant.to_string(), engine);
    }

    /// Loads a tenant's lexicon files now and remembers them for [`Registry::reload_changed`].
    pub fn watch_files(
        &self,
        tenant: &str,
        lexicon: PathBuf,
        whitelist: Option<PathBuf>,
    ) -> Result<Vec<LineError>, Error> {
        let stamps = (stamp(&lexicon), whitelist.as_deref().and_then(stamp));
        let errors = self.load(tenant, &lexicon, whitelist.as_deref())?;
        self.watches.write().expect("registry lock").insert(
            tenant.to_string(),
            Watch {
                lexicon,
                whitelist,
                stamps,
            },
        );
        Ok(errors)
    }

    fn load(
        &self,
        tenant: &str,
        lexicon: &Path,
        whitelist: Option<&Path>,
    ) -> Result<Vec<LineError>, Error> {
        let (mut lex, mut errors) = Lexicon::parse(&lexicon.display().to_string(), &read(lexicon)?);
        if let Some(w) = whitelist {
            let (words, more) = Lexicon::parse_whitelist(&w.display().to_string(), &read(w)?);
            lex.whitelist = words;
            errors.extend(more);
        }
        self.set(tenant, lex);
        Ok(errors)
    }

    /// Re-reads the files of tenants whose lexicon or whitelist changed (by modification time and
    /// length) since last read. Cheap when nothing changed: two `stat` calls per watched tenant.
    pub fn reload_changed(&self) -> Vec<(String, Result<Vec<LineError>, Error>)> {
        let changed: Vec<(String, Watch)> = self
            .watches
            .read()
            .expect("registry lock")
            .iter()
            .filter_map(|(tenant, w)| {
                let now = (stamp(&w.lexicon), w.whitelist.as_deref().and_then(stamp));
                (now != w.stamps).then(|| {
                    let watch = Watch {
                        lexicon: w.lexicon.clone(),
                        whitelist: w.whitelist.clone(),
                        stamps: now,
                    };
                    (tenant.clone(), watch)
                })
            })
            .collect();
        let mut results = Vec::new();
        for (
            tenant,
            Watch {
                lexicon,
                whitelist,
                stamps: now,
            },
        ) in changed
        {
            let result = self.load(&tenant, &lexicon, whitelist.as_deref());
            if result.is_ok() {
                if let Some(w) = self
                    .watches
                    .write()
                    .expect("registry lock")
                    .get_mut(&tenant)
                {
                    w.stamps = now;
                }
            }
            results.push((tenant, result));
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn changed_lexicon_file_takes_effect_without_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.txt");
        std::fs::write(&path, "飞单,违规,high\n").unwrap();
        let registry = Arc::new(Registry::new(Lexicon::default()));
        assert!(registry
            .watch_files("acme", path.clone(), None)
            .unwrap()
            .is_empty());
        let before = registry.engine("acme");
        assert_eq!(before.scan_words("别飞单").len(), 1);
        assert!(before.scan_words("私下交易").is_empty());
        assert!(registry.reload_changed().is_empty(), "nothing changed yet");

        // A reader scanning the whole time must always find an engine with the tenant's words.
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (registry, stop) = (registry.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut scans = 0;
                while !stop.load(Ordering::Relaxed) {
                    let hits = registry.engine("acme").scan_words("别飞单，私下交易");
                    assert!(
                        !hits.is_empty(),
                        "a scan found the tenant without its lexicon"
                    );
                    scans += 1;
                }
                scans
            })
        };
        for round in 0..5 {
            let extra = "x".repeat(round);
            std::fs::write(
                &path,
                format!("飞单,违规,high\n私下交易,违规,high\n# {extra}\n"),
            )
            .unwrap();
            let reloaded = registry.reload_changed();
            assert_eq!(reloaded.len(), 1, "round {round}");
            assert!(reloaded[0].1.as_ref().unwrap().is_empty());
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(registry.engine("acme").scan_words("私下交易").len(), 1);
        assert!(
            before.scan_words("私下交易").is_empty(),
            "an engine taken earlier is unchanged"
        );
        assert!(
            registry.engine("other").scan_words("飞单").is_empty(),
            "tenants do not share lexicons"
        );
    }
}

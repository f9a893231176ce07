//! The one place a deployment is put together from its [`Settings`]: the store, the queue and its
//! pool, the tenant registry (the defaults under every tenant, the offline analysers, the model
//! endpoint) and the knowledge base. Every subcommand builds what it needs here, so `analyze`,
//! `worker` and `serve` cannot drift apart in how they read the same setting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::agents::llm::Prices;
use crate::agents::offline::OfflineAnalysers;
use crate::agents::Sources;
use crate::kb::{EmbedConfig, Embedder, Knowledge};
use crate::llm::{AnswerCache, Endpoint, LlmConfig};
use crate::queue::{AmqpQueue, EmbeddedQueue, Queue};
use crate::sensitive::{Lexicon, LineError};
use crate::settings::{KbSettings, Settings};
use crate::store::Store;
use crate::tenant::{Defaults, Models, Tenants};
use crate::worker::pool::PoolDef;
use crate::worker::Context;

pub async fn store(settings: &Settings) -> anyhow::Result<Store> {
    let key = match &settings.master_key {
        Some(hex) if !hex.trim().is_empty() => Some(crate::secrets::MasterKey::from_hex(hex)?),
        _ => None,
    };
    Ok(Store::connect(&settings.store.db)
        .await?
        .with_master_key(key)
        .with_plaintext_messages(settings.store.plaintext_messages))
}

/// The pool's definition and the queue it consumes.
pub async fn queue(settings: &Settings, store: &Store) -> anyhow::Result<(PoolDef, Arc<Queue>)> {
    let q = &settings.queue;
    let mut pool = PoolDef::load(q.pools.as_deref(), &q.pool)?;
    if let Some(name) = &q.queue {
        pool.queue = name.clone();
    }
    let queue = match &q.amqp {
        Some(url) => Queue::Amqp(Box::new(
            AmqpQueue::connect(
                url,
                &pool.queue,
                &pool.retry.delays(),
                pool.prefetch,
                store.clone(),
            )
            .await?,
        )),
        None => Queue::Embedded(EmbeddedQueue::new(
            store.clone(),
            &pool.queue,
            Duration::from_secs(pool.lease_secs.max(1)),
        )),
    };
    Ok((pool, Arc::new(queue)))
}

/// What every job shares: the store and every tenant's configuration over the deployment's defaults.
pub fn context(settings: &Settings, store: &Store) -> anyhow::Result<Context> {
    Ok(Context {
        store: store.clone(),
        tenants: tenants(settings, store)?,
    })
}

pub fn tenants(settings: &Settings, store: &Store) -> anyhow::Result<Tenants> {
    let d = &settings.defaults;
    if d.idle_gap_minutes <= 0 {
        bail!(
            "--idle-gap-minutes (HUIXI_IDLE_GAP_MINUTES) must be positive, got {}",
            d.idle_gap_minutes
        );
    }
    for (name, yuan) in [
        ("--redpacket-threshold-yuan", d.redpacket_threshold_yuan),
        ("--transfer-threshold-yuan", d.transfer_threshold_yuan),
    ] {
        if !yuan.is_finite() || yuan < 0.0 {
            bail!("{name} must be a non-negative amount of yuan, got {yuan}");
        }
    }
    let lexicon = load_lexicon(d.lexicon.as_deref(), d.whitelist.as_deref())?;
    // The competitor file is read once: its text is both the default list and what the offline
    // analysers match with.
    let (offline, errors) = OfflineAnalysers::load();
    warn_lines(&errors);
    let competitors = match &d.competitors {
        Some(path) => (path.display().to_string(), read(path)?),
        None => (
            "lexicons/competitors.example.txt".to_string(),
            crate::agents::offline::COMPETITORS_EXAMPLE.to_string(),
        ),
    };
    let (offline, errors) = offline.with_competitors(&competitors.0, &competitors.1);
    warn_lines(&errors);
    let defaults = Defaults {
        lexicon,
        competitors,
        redpacket_threshold_yuan: d.redpacket_threshold_yuan,
        transfer_threshold_yuan: d.transfer_threshold_yuan,
        idle_gap_minutes: d.idle_gap_minutes,
        agents: Sources {
            agents_dir: d.agents_dir.clone(),
            prompts_dir: d.prompts_dir.clone(),
        },
    };
    let models = match &settings.llm.llm_base_url {
        Some(url) => Some(models(settings, url, store)?),
        None => None,
    };
    let kb = knowledge(settings)?;
    let tenants = Tenants::new(store.clone(), defaults, offline, models, kb);
    // The defaults are checked now, not at the first job: a bad agent file fails the start.
    tenants.build("", &Default::default())?;
    Ok(tenants)
}

fn models(settings: &Settings, url: &str, store: &Store) -> anyhow::Result<Models> {
    let l = &settings.llm;
    let mut config = LlmConfig::new(url, &l.llm_model);
    config.api_key = l.llm_api_key.clone();
    config.timeout = Duration::from_secs(l.llm_timeout_secs.max(1));
    config.max_retries = l.llm_max_retries;
    config.concurrency = l.llm_concurrency;
    config.tenant_concurrency = l.llm_tenant_concurrency;
    config.json_schema = !l.llm_no_json_schema;
    Ok(Models {
        endpoint: Arc::new(Endpoint::new(config)?),
        combined: l.llm_combined,
        triage: l.llm_triage,
        cache: AnswerCache::new(Some(store.clone()), 10_000),
        prices: Prices {
            input_per_million: l.llm_price_input,
            output_per_million: l.llm_price_output,
        },
    })
}

/// Tenants' knowledge bases, when the deployment keeps them (`--data-dir`).
pub fn knowledge(settings: &Settings) -> anyhow::Result<Option<Knowledge>> {
    let Some(dir) = &settings.kb.data_dir else {
        return Ok(None);
    };
    Ok(Some(Knowledge::new(
        dir,
        settings.kb.qdrant_url.as_deref(),
        embedder(settings)?,
    )))
}

/// The embeddings endpoint, if a model is configured; the chat endpoint's URL and key are its default.
pub fn embedder(settings: &Settings) -> anyhow::Result<Option<Embedder>> {
    let KbSettings {
        embeddings_model,
        embeddings_base_url,
        embeddings_api_key,
        ..
    } = &settings.kb;
    let Some(model) = embeddings_model else {
        return Ok(None);
    };
    if model.trim().is_empty() {
        bail!("--embeddings-model (HUIXI_EMBEDDINGS_MODEL) is empty");
    }
    let Some(base_url) = embeddings_base_url
        .as_deref()
        .or(settings.llm.llm_base_url.as_deref())
    else {
        bail!(
            "--embeddings-model {model} needs an endpoint: --embeddings-base-url \
             (HUIXI_EMBEDDINGS_BASE_URL) or the chat model's --llm-base-url (HUIXI_LLM_BASE_URL)"
        );
    };
    let config = EmbedConfig {
        base_url: base_url.trim_end_matches('/').to_string(),
        api_key: embeddings_api_key
            .clone()
            .unwrap_or_else(|| settings.llm.llm_api_key.clone()),
        model: model.clone(),
        timeout: Duration::from_secs(60),
        max_retries: 4,
    };
    Embedder::new(config)
        .map_err(|e| anyhow::anyhow!("embeddings endpoint {base_url}: {e}"))
        .map(Some)
}

/// Loads a lexicon (and whitelist), warning about bad lines without failing on them.
pub fn load_lexicon(
    lexicon: Option<&std::path::Path>,
    whitelist: Option<&std::path::Path>,
) -> anyhow::Result<Lexicon> {
    let mut lex = match lexicon {
        Some(path) => {
            let (lex, errors) = Lexicon::parse(&path.display().to_string(), &read(path)?);
            warn_lines(&errors);
            lex
        }
        None => Lexicon::starter(),
    };
    if let Some(path) = whitelist {
        let (words, errors) = Lexicon::parse_whitelist(&path.display().to_string(), &read(path)?);
        warn_lines(&errors);
        lex.whitelist.extend(words);
    }
    Ok(lex)
}

pub fn read(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn warn_lines(errors: &[LineError]) {
    for e in errors {
        tracing::warn!("skipped line: {e}");
        eprintln!("warning: skipped {e}");
    }
}

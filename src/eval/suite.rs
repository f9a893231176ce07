//! Eval suites and their datasets. A suite (`evals/NAME/suite.toml`) names the agents under test, a
//! dataset of labelled conversations, and the variants to compare; a dataset is JSONL, one case a line.
//! Bad files are reported with file, line and field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{sessionize, Message, Session};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Agents under test: what an LLM variant asks the model; also which expectations are scored.
    pub agents: Vec<String>,
    /// The dataset, relative to the suite file.
    pub dataset: PathBuf,
    pub variants: Vec<Variant>,
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// `offline` (lexicons, jieba, rules) or `llm` (an OpenAI-compatible endpoint).
    pub kind: VariantKind,
    /// LLM: the model; the command line's `--llm-model` when absent.
    pub model: Option<String>,
    /// LLM: overrides every agent's temperature.
    pub temperature: Option<f32>,
    /// LLM: directory of edited prompt templates, relative to the suite.
    pub prompts_dir: Option<PathBuf>,
    /// LLM: directory of edited agent definitions, relative to the suite.
    pub agents_dir: Option<PathBuf>,
    /// LLM: all agents in one call.
    #[serde(default)]
    pub combined: bool,
    /// LLM: triage, as `--llm-triage`: cases the offline analysers read at least this surely keep
    /// that reading, and the prompt tokens they would have taken are reported as saved.
    pub triage: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantKind {
    Offline,
    Llm,
}

/// What a case should come out as. Only the fields given are scored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub customer_emotion: Option<String>,
    pub staff_emotion: Option<String>,
    pub staff_score: Option<ScoreExpect>,
    pub keywords: Option<Vec<String>>,
    pub competitors: Option<Vec<String>>,
    pub opportunity: Option<OpportunityExpect>,
    /// Alert categories (引流, 违规, 隐私, …) the session must raise, and no others.
    pub alerts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreExpect {
    pub value: f64,
    pub tolerance: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpportunityExpect {
    pub detected: bool,
    pub stage: Option<String>,
}

/// One message of a case written compactly; roles follow WeCom ids (wm/wo customer, else staff).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    from: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    id: String,
    #[serde(default)]
    note: String,
    /// Either compact messages …
    messages: Option<Vec<Line>>,
    /// … or raw WeCom archive objects.
    archive: Option<Vec<serde_json::Value>>,
    expect: Expect,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub note: String,
    pub session: Session,
    pub expect: Expect,
}

const TENANT: &str = "eval";

impl Suite {
    /// `path` is the suite file or its directory.
    pub fn load(path: &Path) -> anyhow::Result<Suite> {
        let file = if path.is_dir() {
            path.join("suite.toml")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("cannot read suite {}: {e}", file.display()))?;
        let mut suite: Suite =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        suite.dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        if suite.variants.is_empty() {
            anyhow::bail!("{}: variants: at least one is needed", file.display());
        }
        let mut names = std::collections::BTreeSet::new();
        for v in &suite.variants {
            if !names.insert(&v.name) {
                anyhow::bail!(
                    "{}: variants: the name {:?} is used twice",
                    file.display(),
                    v.name
                );
            }
        }
        Ok(suite)
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.dir.join(p)
    }

    pub fn cases(&self) -> anyhow::Result<Vec<Case>> {
        let path = self.resolve(&self.dataset);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read dataset {}: {e}", path.display()))?;
        let mut cases = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", path.display(), i + 1);
            let raw: CaseFile =
                serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            let session =
                session_of(&raw).map_err(|e| anyhow::anyhow!("{at}: case {}: {e}", raw.id))?;
            cases.push(Case {
                id: raw.id,
                note: raw.note,
                session,
                expect: raw.expect,
            });
        }
        if cases.is_empty() {
            anyhow::bail!("{}: no cases", path.display());
        }
        Ok(cases)
    }
}

fn session_of(raw: &CaseFile) -> Result<Session, String> {
    let lines: Vec<String> = match (&raw.messages, &raw.archive) {
        (Some(msgs), None) => {
            let customer = msgs
                .iter()
                .map(|m| m.from.as_str())
                .find(|f| f.starts_with("wm") || f.starts_with("wo"))
                .unwrap_or("wmEvalCustomer")
                .to_string();
            let staff = msgs
                .iter()
                .map(|m| m.from.as_str())
                .find(|f| !(f.starts_with("wm") || f.starts_with("wo")))
                .unwrap_or("evalStaff")
                .to_string();
            msgs.iter()
                .enumerate()
                .map(|(i, m)| {
                    let to = if m.from == customer {
                        &staff
                    } else {
                        &customer
                    };
                    serde_json::json!({
                        "msgid": format!("{}_{:02}", raw.id, i + 1), "action": "send",
                        "from": m.from, "tolist": [to], "roomid": "",
                        "msgtime": 1_795_136_400_000i64 + i as i64 * 60_000,
                        "msgtype": "text", "text": {"content": m.text},
                    })
                    .to_string()
                })
                .collect()
        }
        (None, Some(objects)) => objects.iter().map(|o| o.to_string()).collect(),
        _ => return Err("give exactly one of messages, archive".into()),
    };
    let mut messages = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        messages.push(Message::parse(l).map_err(|e| format!("message {}: {e}", i + 1))?);
    }
    // One case is one session, however long its pauses.
    let mut sessions = sessionize(TENANT, messages, i64::MAX / 4);
    match sessions.len() {
        1 => Ok(sessions.remove(0)),
        n => Err(format!(
            "the messages form {n} conversations; a case is one"
        )),
    }
}

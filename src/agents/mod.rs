//! The analysis agents: emotion, staff score, keywords, competitors, opportunity and summary of a session.
//!
//! Results are plain data with the evidence msgids of every finding, so the store, the API and the CRM
//! write-back never depend on which backend produced them. The offline analysers (lexicons, jieba, rules)
//! are the default backend and need no model.

mod definition;
pub mod llm;
mod merge;
pub mod offline;
mod prompt;

pub use prompt::Passage;
mod result;

pub use definition::{AgentFile, AgentSet, Sources};
pub use result::{
    AgentFailure, CompetitorMention, Emotion, EmotionLabel, EmotionPair, Keyword, Opportunity,
    ScoreBreakdown, SessionResult, SideDeal, SideDealSignal, Signal, StaffScore, Stage, StageStep,
    StageTrack, Summary,
};

/// Whether every prompt template of the set compiles: a tenant's override is checked before it is
/// stored, whether or not this process talks to a model.
pub fn check_templates(set: &AgentSet) -> Result<(), String> {
    prompt::Renderer::new(set)
        .map(|_| ())
        .map_err(|e| format!("{}: {}", e.template, e.message))
}

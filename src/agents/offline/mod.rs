//! The offline analysers: the default backend, needing no model. Each is an honest, explainable method
//! (a sentiment lexicon with negation, jieba TF-IDF, the tenant's competitor list, buying cues, a scoring
//! rubric), so results are reproducible and a prompt engineer has a baseline to beat.
//!
//! Shipped lexicons are embedded in the binary; a tenant's own competitor list replaces the example.

mod competitors;
mod datafile;
mod emotion;
mod emotion_model;
mod keywords;
mod opportunity;
pub mod side_deal;
mod staff_score;
mod summary;
pub mod text;

use std::sync::Arc;

pub use competitors::CompetitorList;
pub use emotion::SentimentLexicon;
pub use emotion_model::EmotionModel;
pub use keywords::KeywordExtractor;
pub use opportunity::OpportunityCues;

use crate::agents::{EmotionPair, SessionResult};
use crate::archive::{Role, Session};
use crate::digest::hash_parts;
use crate::sensitive::{Alert, LineError};

/// Bumped whenever an analyser changes what it outputs for the same input, so stored results are redone.
pub const VERSION: &str = "offline@3";

const SENTIMENT: &str = include_str!("../../../lexicons/sentiment.txt");
const EMOTION_MODEL: &str = include_str!("../../../lexicons/emotion/model.tsv");
const STOPWORDS: &str = include_str!("../../../lexicons/stopwords.txt");
const OPPORTUNITY: &str = include_str!("../../../lexicons/opportunity.txt");
/// The competitor list a deployment that names none gets.
pub const COMPETITORS_EXAMPLE: &str = include_str!("../../../lexicons/competitors.example.txt");

/// The shipped lexicons and jieba's dictionary are loaded once per process and shared by every
/// tenant; only the competitor list is the tenant's own ([`OfflineAnalysers::with_competitors`]).
#[derive(Clone)]
pub struct OfflineAnalysers {
    sentiment: Arc<SentimentLexicon>,
    emotion: Arc<EmotionModel>,
    keywords: Arc<KeywordExtractor>,
    competitors: Arc<CompetitorList>,
    opportunity: Arc<OpportunityCues>,
    fingerprint: String,
}

impl OfflineAnalysers {
    /// Loads the shipped lexicons, with the example competitor list; a tenant's own list comes in
    /// through [`OfflineAnalysers::with_competitors`]. Bad lines are returned, not fatal.
    pub fn load() -> (OfflineAnalysers, Vec<LineError>) {
        let (competitor_source, competitor_text) =
            ("lexicons/competitors.example.txt", COMPETITORS_EXAMPLE);
        let mut errors = Vec::new();
        let (sentiment, e) = SentimentLexicon::parse("lexicons/sentiment.txt", SENTIMENT);
        errors.extend(e);
        // The model is generated and embedded: a file that does not parse is a build that is broken,
        // and tests catch it; the analysers then read with the lexicon alone rather than not at all.
        let emotion = EmotionModel::parse("lexicons/emotion/model.tsv", EMOTION_MODEL)
            .unwrap_or_else(|e| {
                errors.push(e);
                EmotionModel::empty()
            });
        let (opportunity, e) = OpportunityCues::parse("lexicons/opportunity.txt", OPPORTUNITY);
        errors.extend(e);
        let (competitors, e) = CompetitorList::parse(competitor_source, competitor_text);
        errors.extend(e);
        (
            OfflineAnalysers {
                sentiment: Arc::new(sentiment),
                emotion: Arc::new(emotion),
                keywords: Arc::new(KeywordExtractor::new(STOPWORDS)),
                competitors: Arc::new(competitors),
                opportunity: Arc::new(opportunity),
                fingerprint: hash_parts([
                    VERSION,
                    SENTIMENT,
                    EMOTION_MODEL,
                    STOPWORDS,
                    OPPORTUNITY,
                    competitor_text,
                ]),
            },
            errors,
        )
    }

    /// The same analysers with another competitor list (`name,alias|alias` lines, as in the files).
    pub fn with_competitors(&self, source: &str, text: &str) -> (OfflineAnalysers, Vec<LineError>) {
        let (competitors, errors) = CompetitorList::parse(source, text);
        let analysers = OfflineAnalysers {
            sentiment: self.sentiment.clone(),
            emotion: self.emotion.clone(),
            keywords: self.keywords.clone(),
            competitors: Arc::new(competitors),
            opportunity: self.opportunity.clone(),
            fingerprint: hash_parts([
                VERSION,
                SENTIMENT,
                EMOTION_MODEL,
                STOPWORDS,
                OPPORTUNITY,
                text,
            ]),
        };
        (analysers, errors)
    }

    /// Changes whenever the analysers or their data change: part of every session's input hash.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn analyse(&self, session: &Session, alerts: &[Alert]) -> SessionResult {
        let msgs = &session.messages;
        let emotion = EmotionPair {
            customer: self.sentiment.side(
                &self.emotion,
                msgs.iter().filter(|m| m.role() == Role::Customer),
            ),
            staff: self.sentiment.side(
                &self.emotion,
                msgs.iter().filter(|m| m.role() == Role::Staff),
            ),
        };
        let staff_score = staff_score::score(
            msgs,
            alerts,
            emotion.customer.as_ref(),
            emotion.staff.as_ref(),
        );
        let keywords = self.keywords.extract(msgs);
        let competitors = self.competitors.mentions(msgs);
        let opportunity = self.opportunity.assess(msgs);
        let summary = summary::summarize(summary::Inputs {
            kind: session.kind,
            messages: msgs,
            emotion: &emotion,
            staff_score: staff_score.as_ref(),
            competitors: &competitors,
            opportunity: &opportunity,
            alerts,
        });
        SessionResult {
            session: session.id.clone(),
            kind: session.kind,
            participants: session.participants.clone(),
            start: china_time(session.start),
            end: china_time(session.end),
            emotion,
            staff_score,
            keywords,
            competitors,
            opportunity: Some(opportunity),
            summary: Some(summary),
            analyser: VERSION.to_string(),
            failures: Vec::new(),
            extra: Default::default(),
            knowledge: Vec::new(),
            side_deal: side_deal::assess(session, alerts),
        }
    }
}

/// RFC 3339 in China time, as every result prints its times.
pub(crate) fn china_time(ms: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&offset).to_rfc3339())
        .unwrap_or_default()
}

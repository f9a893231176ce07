//! What an analysis of one session says. Every finding carries `evidence`: the msgids that support it,
//! which is what lets a manager click from a score or an alert to the messages behind it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::archive::SessionKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmotionLabel {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Emotion {
    pub label: EmotionLabel,
    /// −1 (very negative) … 1 (very positive).
    pub score: f64,
    /// Messages of this side that were read.
    pub messages: usize,
    /// Of those, the ones read as negative on their own: for staff, how often they were rude or
    /// impatient.
    #[serde(default)]
    pub negative_messages: usize,
    /// 0–1: how sure the offline reading is (a clear sentence is sure; a label resting on faint or
    /// mixed evidence is not). Absent from a model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct EmotionPair {
    pub customer: Option<Emotion>,
    pub staff: Option<Emotion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreBreakdown {
    /// 0–30: how fast staff answered the customer.
    pub responsiveness: f64,
    /// 0–20: courtesy of staff messages.
    pub politeness: f64,
    /// 0–30: minus what the sensitive engine caught staff saying.
    pub compliance: f64,
    /// 0–20: how the customer felt.
    pub outcome: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StaffScore {
    /// 0–100, the sum of the breakdown.
    pub score: f64,
    pub staff: Vec<String>,
    pub breakdown: ScoreBreakdown,
    /// Seconds from the customer's first message to the first staff reply.
    pub first_response_secs: Option<i64>,
    pub median_response_secs: Option<i64>,
    /// Customer messages with no staff reply after them in the session.
    pub unanswered: usize,
    /// Why points were lost, in words a manager reads.
    pub notes: Vec<String>,
    pub evidence: Vec<String>,
    /// 0–1: how sure the offline reading is. Absent from a model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Knowledge-base chunks the finding rests on (ids from `knowledge`), e.g. the price list a quote
    /// contradicts. Only chunks the agent was shown: an id the model made up is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Keyword {
    pub word: String,
    pub weight: f64,
    pub evidence: Vec<String>,
    /// 0–1: how sure the offline reading is. Absent from a model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompetitorMention {
    pub name: String,
    pub mentions: usize,
    pub by_customer: usize,
    pub by_staff: usize,
    pub evidence: Vec<String>,
    /// 0–1: how sure the offline reading is. Absent from a model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Knowledge-base chunks the finding rests on (ids from `knowledge`), e.g. the price list a quote
    /// contradicts. Only chunks the agent was shown: an id the model made up is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
}

/// Sales stages in order; a session's stage is the furthest it reached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    None,
    /// 初步接触
    InitialContact,
    /// 需求确认
    NeedsConfirmed,
    /// 报价
    Quoted,
    /// 谈判
    Negotiating,
    /// 成交
    Won,
    /// 战败
    Lost,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::None => "无",
            Stage::InitialContact => "初步接触",
            Stage::NeedsConfirmed => "需求确认",
            Stage::Quoted => "报价",
            Stage::Negotiating => "谈判",
            Stage::Won => "成交",
            Stage::Lost => "战败",
        }
    }

    /// The stage a buying signal shows the deal has reached (a session's stage is the furthest).
    pub fn reached_by(signal_kind: &str) -> Stage {
        match signal_kind {
            "need" | "price_ask" => Stage::InitialContact,
            "requirement" | "quantity" | "price" => Stage::NeedsConfirmed,
            "quote" => Stage::Quoted,
            // "closing" is what analysers before offline@3 called a purchase cue.
            "bargain" | "purchase" | "closing" => Stage::Negotiating,
            "won" => Stage::Won,
            "lost" => Stage::Lost,
            _ => Stage::None,
        }
    }

    /// The stage signals in talk order show: the furthest reached, except that the last of 成交 and
    /// 战败 decides (a customer who declined and then paid is won; one who paid and then walked away
    /// from a second purchase is lost).
    pub fn of_signals<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Stage {
        let mut track = StageTrack::default();
        for kind in kinds {
            track.push(kind);
        }
        track.stage()
    }
}

/// [`Stage::of_signals`] one signal at a time, for who wants the stage after each.
#[derive(Debug, Clone, Copy)]
pub struct StageTrack {
    furthest: Stage,
    outcome: Option<Stage>,
}

impl Default for StageTrack {
    fn default() -> StageTrack {
        StageTrack {
            furthest: Stage::None,
            outcome: None,
        }
    }
}

impl StageTrack {
    pub fn push(&mut self, kind: &str) {
        match Stage::reached_by(kind) {
            s @ (Stage::Won | Stage::Lost) => self.outcome = Some(s),
            s => self.furthest = self.furthest.max(s),
        }
    }

    pub fn stage(&self) -> Stage {
        self.outcome.unwrap_or(self.furthest)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    /// need, price_ask, requirement, quantity, price (a budget), quote, bargain, purchase, won,
    /// lost, objection; `lexicons/opportunity.txt` says which stage each shows.
    pub kind: String,
    pub text: String,
    pub msgid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Opportunity {
    pub detected: bool,
    pub stage: Stage,
    pub stage_label: String,
    /// 0–1: strength of the buying signals.
    pub score: f64,
    pub signals: Vec<Signal>,
    pub evidence: Vec<String>,
    /// How the stage moved, each move with the message that made it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<StageStep>,
    /// 0–1: how sure the offline reading is of the stage (a strong cue, or none at all, is sure; a
    /// stage resting on one faint cue is not). Absent from a model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Knowledge-base chunks the finding rests on (ids from `knowledge`), e.g. the price list a quote
    /// contradicts. Only chunks the agent was shown: an id the model made up is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
}

/// One move of the stage: the stage reached and the message that showed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageStep {
    pub stage: Stage,
    pub msgid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub text: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionResult {
    pub session: String,
    pub kind: SessionKind,
    pub participants: Vec<String>,
    /// RFC 3339 in China time (+08:00), where WeCom tenants live.
    pub start: String,
    pub end: String,
    pub emotion: EmotionPair,
    pub staff_score: Option<StaffScore>,
    pub keywords: Vec<Keyword>,
    pub competitors: Vec<CompetitorMention>,
    /// `None` only when the agent failed (see `failures`).
    pub opportunity: Option<Opportunity>,
    pub summary: Option<Summary>,
    /// Which analyser produced the result, with its version (e.g. `offline@2`).
    pub analyser: String,
    /// Agents that gave no valid answer; their fields are empty rather than guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<AgentFailure>,
    /// Answers of agents huixi has no typed field for (added by a prompt engineer), by agent name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Knowledge-base chunks the agents were shown (ids from `huixi kb search`); findings cite them in
    /// their `chunks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledge: Vec<String>,
    /// 飞单 suspected: the session's staff taking the deal or the customer to a private channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_deal: Option<SideDeal>,
}

/// A suspected 飞单, with what shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SideDeal {
    /// 0–100: how strongly the signals together point at it (50 and up is reported).
    pub score: u32,
    /// The staff members whose messages show it.
    pub staff: Vec<String>,
    pub signals: Vec<SideDealSignal>,
    pub evidence: Vec<String>,
}

/// One alert that counts towards a 飞单, and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SideDealSignal {
    pub msgid: String,
    pub kind: String,
    pub category: String,
    pub word: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentFailure {
    pub agent: String,
    pub error: String,
}

/// One row of `huixi_findings`: a result field with its evidence, as the CRM reads it.
pub struct Finding {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub evidence: Vec<String>,
    pub analyser: String,
}

impl SessionResult {
    /// The least sure of the offline readings a manager acts on (emotion of either side, the staff
    /// score, the opportunity): low means the offline analysers were guessing, and a model, when one
    /// is configured, should read the session. 1 when nothing carries a confidence (a model's answer).
    pub fn confidence(&self) -> f64 {
        [
            self.emotion.customer.as_ref().and_then(|e| e.confidence),
            self.emotion.staff.as_ref().and_then(|e| e.confidence),
            self.staff_score.as_ref().and_then(|s| s.confidence),
            self.opportunity.as_ref().and_then(|o| o.confidence),
        ]
        .into_iter()
        .flatten()
        .fold(1.0, f64::min)
    }

    pub fn findings(&self) -> Vec<Finding> {
        let flat = |lists: &[&Vec<String>]| -> Vec<String> {
            let mut all: Vec<String> = Vec::new();
            for l in lists {
                for id in l.iter() {
                    if !all.contains(id) {
                        all.push(id.clone());
                    }
                }
            }
            all
        };
        let emotion_evidence: Vec<&Vec<String>> = [&self.emotion.customer, &self.emotion.staff]
            .into_iter()
            .flatten()
            .map(|e| &e.evidence)
            .collect();
        let kw: Vec<&Vec<String>> = self.keywords.iter().map(|k| &k.evidence).collect();
        let comp: Vec<&Vec<String>> = self.competitors.iter().map(|c| &c.evidence).collect();
        let finding = |kind, payload, evidence| Finding {
            kind,
            payload,
            evidence,
            analyser: self.analyser.clone(),
        };
        vec![
            finding("emotion", to_json(&self.emotion), flat(&emotion_evidence)),
            finding(
                "staff_score",
                to_json(&self.staff_score),
                self.staff_score
                    .as_ref()
                    .map(|s| s.evidence.clone())
                    .unwrap_or_default(),
            ),
            finding("keywords", to_json(&self.keywords), flat(&kw)),
            finding("competitors", to_json(&self.competitors), flat(&comp)),
            finding(
                "opportunity",
                to_json(&self.opportunity),
                self.opportunity
                    .as_ref()
                    .map(|o| o.evidence.clone())
                    .unwrap_or_default(),
            ),
            finding(
                "summary",
                to_json(&self.summary),
                self.summary
                    .as_ref()
                    .map(|s| s.evidence.clone())
                    .unwrap_or_default(),
            ),
        ]
        .into_iter()
        .chain(
            self.side_deal
                .as_ref()
                .map(|d| finding("side_deal", to_json(d), d.evidence.clone())),
        )
        .collect()
    }
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("results serialize")
}

//! 商机AI分析 across sessions: one customer (external id), all their sessions with every staff member.
//!
//! Each analysed session leaves a [`Contribution`] per customer in it: the buying signals, objections,
//! competitors, emotion, stage and identifiers that session showed. A customer's [`CustomerProfile`] is
//! folded from their contributions in time order. When a session is analysed again only its own
//! contributions are rebuilt; the others come from the store as they were, so a profile is never
//! recomputed from the messages of every session the customer ever had.
//!
//! Around the profile: tag suggestions from the tenant's tag library ([`tags`]) and 撞单, the same
//! customer served by several staff members ([`duplicates`]).

mod contribution;
pub mod duplicates;
mod identity;
mod profile;
mod refresh;
pub mod tags;

use serde::{Deserialize, Serialize};

pub use contribution::contributions;
pub use duplicates::Duplicate;
pub use profile::{fold, CustomerProfile, NextAction, StageMove};
pub use refresh::{refresh, refresh_many};
pub use tags::{TagLibrary, TagSuggestion};

use crate::agents::{EmotionLabel, Stage};
use crate::archive::SessionKind;

/// What one session showed about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub customer: String,
    pub session: String,
    pub kind: SessionKind,
    pub start: i64,
    pub end: i64,
    /// Staff members in the session.
    pub staff: Vec<String>,
    /// Needs, objections, budgets, quantities and the other buying signals, in message order.
    pub facts: Vec<Fact>,
    pub competitors: Vec<Seen>,
    pub emotion: Option<Mood>,
    /// The furthest stage the session reached, and the messages that show it.
    pub stage: Stage,
    pub stage_evidence: Vec<String>,
    /// Phones and names the customer wrote, hashed, for 撞单.
    pub identifiers: Vec<Identifier>,
    /// What the customer wrote, masked, for matching the tag library.
    pub said: Vec<Said>,
    /// A 飞单 suspected in the session: its score, staff and evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_deal: Option<crate::agents::SideDeal>,
}

/// A buying signal, with the message it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fact {
    /// need, objection, price (a budget the customer named), quote (a price staff gave), quantity,
    /// price_ask, requirement, bargain, purchase, won, lost.
    pub kind: String,
    /// The cue that was recognised.
    pub cue: String,
    /// The message, masked and shortened.
    pub text: String,
    pub msgid: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub name: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mood {
    pub label: EmotionLabel,
    pub score: f64,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// phone or name.
    pub kind: String,
    /// SHA-256 of the normalized value: compared, never shown.
    pub hash: String,
    /// 138****5678, 张*.
    pub masked: String,
    pub msgid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Said {
    pub msgid: String,
    pub text: String,
}

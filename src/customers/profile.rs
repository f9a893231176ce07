//! A customer's running profile, folded from their sessions' contributions in time order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Contribution, Duplicate, Fact, TagSuggestion};
use crate::agents::offline::china_time;
use crate::agents::{EmotionLabel, Stage};

/// Lists keep the latest of each kind; older ones are still in the sessions.
const KEEP_FACTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerProfile {
    pub customer: String,
    pub sessions: usize,
    /// Staff members who talked with the customer, in the order they first did.
    pub staff: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub stage: Stage,
    pub stage_label: String,
    /// Every change of stage, oldest first, with the messages that moved it.
    pub stage_history: Vec<StageMove>,
    pub needs: Vec<Fact>,
    pub objections: Vec<Fact>,
    /// Budgets the customer named and prices staff quoted.
    pub budget: Vec<Fact>,
    pub quantity: Vec<Fact>,
    pub competitors: Vec<CompetitorTrend>,
    pub emotion_trend: Vec<EmotionPoint>,
    /// improving, worsening, steady, or unknown (fewer than two sessions with an emotion).
    pub emotion_direction: String,
    pub next_best_action: NextAction,
    pub tags: Vec<TagSuggestion>,
    pub duplicates: Vec<Duplicate>,
    /// Sessions with a suspected 飞单, newest first: who, when, how strongly, and the messages.
    #[serde(default)]
    pub side_deals: Vec<SideDealSeen>,
    /// offline@2, or the model that refined the profile.
    pub analyser: String,
}

/// A session of the customer where 飞单 is suspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SideDealSeen {
    pub session: String,
    pub at: String,
    pub score: u32,
    pub staff: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageMove {
    pub from: Stage,
    pub to: Stage,
    pub label: String,
    pub session: String,
    pub at: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompetitorTrend {
    pub name: String,
    pub sessions: usize,
    pub first_seen: String,
    pub last_seen: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmotionPoint {
    pub session: String,
    pub at: String,
    pub label: EmotionLabel,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NextAction {
    pub action: String,
    pub reason: String,
    pub evidence: Vec<String>,
}

/// A competitor's mentions across a customer's sessions, while folding.
struct Mentions<'a> {
    sessions: BTreeSet<&'a str>,
    first: i64,
    last: i64,
    evidence: Vec<String>,
}

/// Folds contributions (any order) into a profile, with the customer's 撞单 (the caller knows the
/// other customers). Tags are added by the caller, which knows the tenant's library.
pub fn fold(
    customer: &str,
    contributions: &[Contribution],
    duplicates: Vec<Duplicate>,
) -> CustomerProfile {
    let mut ordered: Vec<&Contribution> = contributions.iter().collect();
    ordered.sort_by(|a, b| (a.start, &a.session).cmp(&(b.start, &b.session)));
    let mut staff: Vec<String> = Vec::new();
    let mut stage = Stage::None;
    let mut history: Vec<StageMove> = Vec::new();
    let mut facts: BTreeMap<&str, Vec<&Fact>> = BTreeMap::new();
    let mut competitors: BTreeMap<&str, Mentions> = BTreeMap::new();
    let mut trend: Vec<EmotionPoint> = Vec::new();
    for c in &ordered {
        for s in &c.staff {
            if !staff.contains(s) {
                staff.push(s.clone());
            }
        }
        let next = advance(stage, c.stage);
        if next != stage {
            history.push(StageMove {
                from: stage,
                to: next,
                label: next.label().to_string(),
                session: c.session.clone(),
                at: china_time(c.start),
                evidence: c.stage_evidence.clone(),
            });
            stage = next;
        }
        for f in &c.facts {
            let bucket = match f.kind.as_str() {
                "need" | "requirement" => "need",
                // Why a deal was lost is the objection a next approach has to answer.
                "objection" | "lost" => "objection",
                "price" | "quote" => "budget",
                "quantity" => "quantity",
                _ => continue,
            };
            facts.entry(bucket).or_default().push(f);
        }
        for seen in &c.competitors {
            let e = competitors
                .entry(seen.name.as_str())
                .or_insert_with(|| Mentions {
                    sessions: BTreeSet::new(),
                    first: c.start,
                    last: c.start,
                    evidence: Vec::new(),
                });
            e.sessions.insert(&c.session);
            e.last = c.start;
            e.evidence.extend(seen.evidence.iter().cloned());
        }
        if let Some(mood) = &c.emotion {
            trend.push(EmotionPoint {
                session: c.session.clone(),
                at: china_time(c.start),
                label: mood.label,
                score: mood.score,
            });
        }
    }
    let latest = |kind: &str| -> Vec<Fact> {
        let all = facts.get(kind).map(Vec::as_slice).unwrap_or_default();
        let mut seen = BTreeSet::new();
        // Newest first, one fact per distinct excerpt.
        all.iter()
            .rev()
            .filter(|f| seen.insert(f.text.as_str()))
            .take(KEEP_FACTS)
            .map(|f| (*f).clone())
            .collect()
    };
    let mut profile = CustomerProfile {
        customer: customer.to_string(),
        sessions: ordered.len(),
        staff,
        first_seen: ordered
            .first()
            .map_or(String::new(), |c| china_time(c.start)),
        last_seen: ordered.last().map_or(String::new(), |c| china_time(c.end)),
        stage,
        stage_label: stage.label().to_string(),
        stage_history: history,
        needs: latest("need"),
        objections: latest("objection"),
        budget: latest("budget"),
        quantity: latest("quantity"),
        competitors: competitors
            .into_iter()
            .map(|(name, m)| CompetitorTrend {
                name: name.to_string(),
                sessions: m.sessions.len(),
                first_seen: china_time(m.first),
                last_seen: china_time(m.last),
                evidence: m.evidence,
            })
            .collect(),
        emotion_direction: direction(&trend).into(),
        emotion_trend: trend,
        next_best_action: NextAction {
            action: String::new(),
            reason: String::new(),
            evidence: Vec::new(),
        },
        tags: Vec::new(),
        duplicates,
        side_deals: ordered
            .iter()
            .rev()
            .filter_map(|c| {
                let d = c.side_deal.as_ref()?;
                Some(SideDealSeen {
                    session: c.session.clone(),
                    at: china_time(c.start),
                    score: d.score,
                    staff: d.staff.clone(),
                    evidence: d.evidence.clone(),
                })
            })
            .take(KEEP_FACTS)
            .collect(),
        analyser: crate::agents::offline::VERSION.to_string(),
    };
    profile.next_best_action = next_action(&profile, ordered.last().copied());
    profile
}

/// A deal moves forward, never back, while it is open: a later chat that is only a greeting does not
/// undo a quote. 成交 and 战败 close it; buying signals after 战败 reopen it.
fn advance(current: Stage, seen: Stage) -> Stage {
    match (current, seen) {
        (_, Stage::Won | Stage::Lost) => seen,
        (Stage::Won, _) => current,
        (Stage::Lost, s) if s >= Stage::NeedsConfirmed => s,
        (Stage::Lost, _) => current,
        (c, s) => c.max(s),
    }
}

fn direction(trend: &[EmotionPoint]) -> &'static str {
    if trend.len() < 2 {
        return "unknown";
    }
    let half = trend.len() / 2;
    let avg = |p: &[EmotionPoint]| p.iter().map(|e| e.score).sum::<f64>() / p.len() as f64;
    let change = avg(&trend[trend.len() - half..]) - avg(&trend[..half]);
    if change > 0.2 {
        "improving"
    } else if change < -0.2 {
        "worsening"
    } else {
        "steady"
    }
}

/// What the staff member should do next, by the first rule that applies: 撞单 and an unhappy
/// customer come before selling; then open objections and competitors; then the stage's next step.
fn next_action(p: &CustomerProfile, last: Option<&Contribution>) -> NextAction {
    let act = |action: String, reason: String, evidence: Vec<String>| NextAction {
        action,
        reason,
        evidence,
    };
    if let Some(d) = p.duplicates.first() {
        return act(
            format!("与{}确认客户归属，避免重复跟进", d.staff.join("、")),
            "撞单：同一客户由多名员工跟进".into(),
            d.evidence.clone(),
        );
    }
    let Some(last) = last else {
        return act("主动问候，建立联系".into(), "尚无会话".into(), Vec::new());
    };
    match p.stage {
        Stage::Won => {
            return act(
                "安排交付与回访，挖掘增购和转介绍".into(),
                "已成交".into(),
                last.stage_evidence.clone(),
            )
        }
        Stage::Lost => {
            let why = p.objections.first();
            return act(
                "复盘战败原因，择机回访".into(),
                why.map_or("已战败".into(), |f| format!("已战败：{}", f.text)),
                why.map(|f| vec![f.msgid.clone()]).unwrap_or_default(),
            );
        }
        _ => {}
    }
    if let Some(mood) = last
        .emotion
        .as_ref()
        .filter(|m| m.label == EmotionLabel::Negative)
    {
        return act(
            "先安抚客户情绪，回应其不满".into(),
            "最近一次会话客户情绪负面".into(),
            mood.evidence.clone(),
        );
    }
    if let Some(f) = last
        .facts
        .iter()
        .rev()
        .find(|f| matches!(f.kind.as_str(), "objection" | "lost"))
    {
        return act(
            format!("针对异议给出解决方案：{}", f.text),
            "最近一次会话有未解决的异议".into(),
            vec![f.msgid.clone()],
        );
    }
    if let Some(c) = last.competitors.first() {
        return act(
            format!("准备与{}的对比材料，突出差异化优势", c.name),
            format!("客户提到竞品{}", c.name),
            c.evidence.clone(),
        );
    }
    let (action, reason) = match p.stage {
        Stage::None | Stage::InitialContact => ("了解客户需求与使用场景", "初步接触，需求未明"),
        Stage::NeedsConfirmed => ("根据需求发送方案与报价", "需求已确认"),
        Stage::Quoted => ("跟进报价反馈，确认预算与决策人", "已报价"),
        _ => ("推动签约：明确优惠条件与截止时间", "谈判中"),
    };
    act(action.into(), reason.into(), last.stage_evidence.clone())
}

#[cfg(test)]
mod tests {
    use super::advance;
    use crate::agents::Stage;

    #[test]
    fn open_deals_only_move_forward_and_lost_ones_reopen_on_a_need() {
        assert_eq!(advance(Stage::Quoted, Stage::InitialContact), Stage::Quoted);
        assert_eq!(
            advance(Stage::Quoted, Stage::Negotiating),
            Stage::Negotiating
        );
        assert_eq!(advance(Stage::Negotiating, Stage::Lost), Stage::Lost);
        assert_eq!(advance(Stage::Lost, Stage::InitialContact), Stage::Lost);
        assert_eq!(
            advance(Stage::Lost, Stage::NeedsConfirmed),
            Stage::NeedsConfirmed
        );
        assert_eq!(advance(Stage::Won, Stage::Quoted), Stage::Won);
    }
}

//! A one-paragraph summary a manager reads in the CRM's session list, assembled from the other findings.
//! The offline summary is a template over what was found, not an abstract: it never states anything
//! the findings do not show.

use crate::agents::{CompetitorMention, EmotionPair, Opportunity, StaffScore, Summary};
use crate::archive::{Message, Role, SessionKind};
use crate::sensitive::Alert;

pub struct Inputs<'a> {
    pub kind: SessionKind,
    pub messages: &'a [Message],
    pub emotion: &'a EmotionPair,
    pub staff_score: Option<&'a StaffScore>,
    pub competitors: &'a [CompetitorMention],
    pub opportunity: &'a Opportunity,
    pub alerts: &'a [Alert],
}

pub fn summarize(i: Inputs) -> Summary {
    let count = |r: Role| i.messages.iter().filter(|m| m.role() == r).count();
    let mut parts = vec![format!(
        "{}共{}条消息（客户{}条，员工{}条）",
        match i.kind {
            SessionKind::Single => "单聊",
            SessionKind::Group => "群聊",
        },
        i.messages.len(),
        count(Role::Customer),
        count(Role::Staff)
    )];
    if let Some(e) = &i.emotion.customer {
        parts.push(format!("客户情绪{}", emotion_word(e.label)));
    }
    if let Some(s) = i.staff_score {
        parts.push(format!("员工得分{}", s.score));
    }
    if !i.competitors.is_empty() {
        let names: Vec<&str> = i.competitors.iter().map(|c| c.name.as_str()).collect();
        parts.push(format!("提到竞品{}", names.join("、")));
    }
    if i.opportunity.detected {
        parts.push(format!("商机阶段：{}", i.opportunity.stage_label));
    }
    if !i.alerts.is_empty() {
        let high = i
            .alerts
            .iter()
            .filter(|a| a.severity == crate::sensitive::Severity::High)
            .count();
        parts.push(format!("告警{}条（高危{}条）", i.alerts.len(), high));
    }
    let mut evidence: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if !evidence.iter().any(|e| e == id) {
            evidence.push(id.to_string());
        }
    };
    if let Some(first) = i.messages.first() {
        push(&first.msgid);
    }
    for a in i.alerts.iter().take(3) {
        push(&a.msgid);
    }
    for id in i.opportunity.evidence.iter().take(2) {
        push(id);
    }
    if let Some(last) = i.messages.last() {
        push(&last.msgid);
    }
    Summary {
        text: parts.join("；") + "。",
        evidence,
    }
}

fn emotion_word(label: crate::agents::EmotionLabel) -> &'static str {
    match label {
        crate::agents::EmotionLabel::Positive => "正面",
        crate::agents::EmotionLabel::Neutral => "平稳",
        crate::agents::EmotionLabel::Negative => "负面",
    }
}

//! 客户标签: the tenant's tag library and the tags it suggests per customer. Suggestions only ever come
//! from the library, carry a confidence and the messages behind them, and are written back as
//! suggestions: the CRM decides whether to apply them.
//!
//! The library is WeCom's own corp-tag list (`tag_group` / `group_name` / `tag[].name`, as
//! `externalcontact/get_corp_tag_list` returns it) or huixi's spelling (`groups` / `name` / `tags`),
//! optionally with huixi's matching hints per tag: `keywords` the customer says, and opportunity
//! `stages` the tag goes with (意向程度 高 ↔ negotiating). A tag without hints matches its own name
//! when that name has two characters or more: one-character names (高, 中) say nothing by themselves.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Contribution, CustomerProfile};
use crate::agents::Stage;

/// Suggestions below this confidence are not made.
const MIN_CONFIDENCE: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagLibrary {
    #[serde(alias = "tag_group")]
    pub groups: Vec<TagGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagGroup {
    #[serde(alias = "group_name")]
    pub name: String,
    #[serde(alias = "group_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// At most one tag of the group per customer (意向程度 is 高 or 低, not both).
    #[serde(default)]
    pub exclusive: bool,
    #[serde(alias = "tag")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagSuggestion {
    pub group: String,
    pub tag: String,
    /// The WeCom tag id, when the library gave one: what the CRM passes to mark_tag.
    pub tag_id: Option<String>,
    /// 0–1.
    pub confidence: f64,
    pub reason: String,
    pub evidence: Vec<String>,
}

impl TagLibrary {
    /// Parses and checks a library, naming where it is wrong.
    pub fn parse(source: &str, text: &str) -> Result<TagLibrary, String> {
        let lib: TagLibrary = serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?;
        let mut groups = BTreeSet::new();
        for (g, group) in lib.groups.iter().enumerate() {
            if group.name.trim().is_empty() {
                return Err(format!("{source}: groups[{g}].name is empty"));
            }
            if !groups.insert(group.name.as_str()) {
                return Err(format!(
                    "{source}: groups[{g}].name {:?} appears twice",
                    group.name
                ));
            }
            let mut tags = BTreeSet::new();
            for (t, tag) in group.tags.iter().enumerate() {
                if tag.name.trim().is_empty() {
                    return Err(format!("{source}: groups[{g}].tags[{t}].name is empty"));
                }
                if !tags.insert(tag.name.as_str()) {
                    return Err(format!(
                        "{source}: groups[{g}].tags[{t}].name {:?} appears twice in group {:?}",
                        tag.name, group.name
                    ));
                }
                if let Some(k) = tag.keywords.iter().position(|k| k.trim().is_empty()) {
                    return Err(format!(
                        "{source}: groups[{g}].tags[{t}].keywords[{k}] is empty"
                    ));
                }
            }
        }
        if lib.groups.is_empty() {
            return Err(format!("{source}: the library has no tag group"));
        }
        Ok(lib)
    }

    /// Tags for a customer from what they said and where their deal stands.
    pub fn suggest(
        &self,
        profile: &CustomerProfile,
        contributions: &[Contribution],
    ) -> Vec<TagSuggestion> {
        let mut out = Vec::new();
        for group in &self.groups {
            let mut found: Vec<TagSuggestion> = group
                .tags
                .iter()
                .filter_map(|tag| suggest_tag(group, tag, profile, contributions))
                .filter(|s| s.confidence >= MIN_CONFIDENCE)
                .collect();
            found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            if group.exclusive {
                found.truncate(1);
            }
            out.extend(found);
        }
        out
    }
}

fn suggest_tag(
    group: &TagGroup,
    tag: &Tag,
    profile: &CustomerProfile,
    contributions: &[Contribution],
) -> Option<TagSuggestion> {
    let keywords: Vec<&str> = if tag.keywords.is_empty() && tag.stages.is_empty() {
        (tag.name.chars().count() >= 2)
            .then_some(tag.name.as_str())
            .into_iter()
            .collect()
    } else {
        tag.keywords.iter().map(String::as_str).collect()
    };
    let mut evidence: Vec<String> = Vec::new();
    let mut words: BTreeSet<&str> = BTreeSet::new();
    for said in contributions.iter().flat_map(|c| &c.said) {
        let hit: Vec<&str> = keywords
            .iter()
            .copied()
            .filter(|k| said.text.contains(k))
            .collect();
        if !hit.is_empty() && !evidence.contains(&said.msgid) {
            evidence.push(said.msgid.clone());
            words.extend(hit);
        }
    }
    // Each message that says it halves the doubt: one 0.5, two 0.75, three 0.875, capped.
    let by_words = if evidence.is_empty() {
        0.0
    } else {
        (1.0 - 0.5f64.powi(evidence.len() as i32)).min(0.95)
    };
    let by_stage = if tag.stages.contains(&profile.stage) {
        0.8
    } else {
        0.0
    };
    if by_words == 0.0 && by_stage == 0.0 {
        return None;
    }
    let (confidence, reason, evidence) = if by_stage >= by_words {
        let moved = profile.stage_history.last();
        (
            by_stage,
            format!("商机阶段：{}", profile.stage.label()),
            moved.map(|m| m.evidence.clone()).unwrap_or_default(),
        )
    } else {
        let words: Vec<&str> = words.into_iter().collect();
        (
            by_words,
            format!("客户提到：{}", words.join("、")),
            evidence,
        )
    };
    Some(TagSuggestion {
        group: group.name.clone(),
        tag: tag.name.clone(),
        tag_id: tag.id.clone(),
        confidence: (confidence * 100.0_f64).round() / 100.0,
        reason,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::TagLibrary;

    #[test]
    fn wecom_corp_tag_lists_are_libraries_and_mistakes_are_located() {
        let lib = TagLibrary::parse(
            "tags.json",
            r#"{"tag_group": [{"group_id": "et1", "group_name": "行业",
                "tag": [{"id": "etA", "name": "教育"}, {"id": "etB", "name": "零售"}]}]}"#,
        )
        .unwrap();
        assert_eq!(lib.groups[0].name, "行业");
        assert_eq!(lib.groups[0].tags[1].id.as_deref(), Some("etB"));
        let e = TagLibrary::parse(
            "tags.json",
            r#"{"groups": [{"name": "意向", "tags": [{"name": "高", "stages": ["hot"]}]}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("unknown variant") && e.contains("line 1"), "{e}");
        let e = TagLibrary::parse(
            "tags.json",
            r#"{"groups": [{"name": "意向", "tags": [{"name": "高"}, {"name": "高"}]}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("groups[0].tags[1].name"), "{e}");
    }
}

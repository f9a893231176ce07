//! The tenant's settings document — competitors, risk thresholds, idle gap — as the admin UI puts it
//! (`PUT /v1/settings`) and as it is stored. A field left out (or `null`) is the deployment's default.
//! Checked field by field, so an error names the field that is wrong (`competitors[2].aliases[0]`).

use serde::{Deserialize, Serialize};

use crate::sensitive::behaviour::{Behaviours, RulePatch};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingsDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitors: Option<Vec<Competitor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redpacket_threshold_yuan: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_threshold_yuan: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_gap_minutes: Option<i64>,
    /// Changes to the sensitive-behaviour rules, by behaviour name (`card`, `link`, …): each field
    /// given replaces the default's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviours: Option<std::collections::BTreeMap<String, RulePatch>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Competitor {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn wrong(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

const FIELDS: &[&str] = &[
    "competitors",
    "redpacket_threshold_yuan",
    "transfer_threshold_yuan",
    "idle_gap_minutes",
    "behaviours",
];
/// Enough for any company's market; a list longer than this is a mistake, not a market.
const MAX_COMPETITORS: usize = 2_000;
const MAX_ALIASES: usize = 50;
const MAX_NAME_CHARS: usize = 64;
/// A week: a longer gap would make one session of a month of chat.
const MAX_IDLE_GAP_MINUTES: i64 = 7 * 24 * 60;
/// 一亿元: thresholds above it are a typo.
const MAX_YUAN: f64 = 100_000_000.0;

impl SettingsDocument {
    /// Checks an uploaded document.
    pub fn parse(body: &[u8]) -> Result<SettingsDocument, FieldError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| wrong("(body)", format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(wrong("(body)", "must be a JSON object"));
        };
        for key in map.keys() {
            if !FIELDS.contains(&key.as_str()) {
                return Err(wrong(
                    key.as_str(),
                    format!("unknown field; the fields are {}", FIELDS.join(", ")),
                ));
            }
        }
        let present = |k: &str| map.get(k).filter(|v| !v.is_null());
        let mut doc = SettingsDocument::default();
        if let Some(v) = present("competitors") {
            doc.competitors = Some(competitors(v)?);
        }
        for (key, slot) in [
            (
                "redpacket_threshold_yuan",
                &mut doc.redpacket_threshold_yuan,
            ),
            ("transfer_threshold_yuan", &mut doc.transfer_threshold_yuan),
        ] {
            if let Some(v) = present(key) {
                let yuan = v
                    .as_f64()
                    .ok_or_else(|| wrong(key, "must be a number of yuan"))?;
                if !(0.0..=MAX_YUAN).contains(&yuan) {
                    return Err(wrong(key, format!("must be between 0 and {MAX_YUAN}")));
                }
                *slot = Some(yuan);
            }
        }
        if let Some(v) = present("idle_gap_minutes") {
            let key = "idle_gap_minutes";
            let minutes = v
                .as_i64()
                .ok_or_else(|| wrong(key, "must be a whole number of minutes"))?;
            if !(1..=MAX_IDLE_GAP_MINUTES).contains(&minutes) {
                return Err(wrong(
                    key,
                    format!("must be between 1 and {MAX_IDLE_GAP_MINUTES}"),
                ));
            }
            doc.idle_gap_minutes = Some(minutes);
        }
        if let Some(v) = present("behaviours") {
            let patches: std::collections::BTreeMap<String, RulePatch> =
                serde_json::from_value(v.clone())
                    .map_err(|e| wrong("behaviours", e.to_string()))?;
            for (name, p) in &patches {
                let lists = p.allow.iter().chain(&p.marked);
                if lists.clone().any(|l| l.len() > MAX_COMPETITORS) {
                    return Err(wrong(
                        format!("behaviours.{name}"),
                        format!("a list of at most {MAX_COMPETITORS}"),
                    ));
                }
                if lists.flatten().any(|w| w.chars().count() > 253) {
                    return Err(wrong(
                        format!("behaviours.{name}"),
                        "an entry over 253 characters",
                    ));
                }
            }
            Behaviours::patched(&patches).map_err(|e| wrong("behaviours", e))?;
            doc.behaviours = Some(patches);
        }
        Ok(doc)
    }

    /// The document as stored; stored documents were checked when put.
    pub fn from_stored(json: &str) -> Result<SettingsDocument, serde_json::Error> {
        serde_json::from_str(json)
    }
}

fn competitors(v: &Value) -> Result<Vec<Competitor>, FieldError> {
    let list = v
        .as_array()
        .ok_or_else(|| wrong("competitors", "must be a list of {\"name\", \"aliases\"}"))?;
    if list.len() > MAX_COMPETITORS {
        return Err(wrong(
            "competitors",
            format!("at most {MAX_COMPETITORS} entries"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("competitors[{i}]");
        let obj = entry
            .as_object()
            .ok_or_else(|| wrong(&at, "must be an object with `name` and `aliases`"))?;
        if let Some(k) = obj.keys().find(|k| *k != "name" && *k != "aliases") {
            return Err(wrong(
                format!("{at}.{k}"),
                "unknown field; use name, aliases",
            ));
        }
        let name = word(obj.get("name"), &format!("{at}.name"))?;
        let mut aliases = Vec::new();
        match obj.get("aliases") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.len() <= MAX_ALIASES => {
                for (j, alias) in a.iter().enumerate() {
                    aliases.push(word(Some(alias), &format!("{at}.aliases[{j}]"))?);
                }
            }
            Some(Value::Array(_)) => {
                return Err(wrong(
                    format!("{at}.aliases"),
                    format!("at most {MAX_ALIASES} aliases"),
                ))
            }
            Some(_) => return Err(wrong(format!("{at}.aliases"), "must be a list of strings")),
        }
        out.push(Competitor { name, aliases });
    }
    Ok(out)
}

/// A name or alias: text that the competitor file format can carry (no `,` or `|`, one line).
fn word(v: Option<&Value>, at: &str) -> Result<String, FieldError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| wrong(at, "must be a string"))?
        .trim();
    if s.is_empty() {
        return Err(wrong(at, "must not be empty"));
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(wrong(at, format!("at most {MAX_NAME_CHARS} characters")));
    }
    if s.contains([',', '|', '\n', '\r', '#']) {
        return Err(wrong(at, "must not contain `,`, `|`, `#` or a line break"));
    }
    Ok(s.to_string())
}

/// The list in the competitor file format (`name,alias|alias`), which the offline analysers read.
pub fn competitor_lines(list: &[Competitor]) -> String {
    list.iter()
        .map(|c| format!("{},{}\n", c.name, c.aliases.join("|")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let err = |body: &str| SettingsDocument::parse(body.as_bytes()).unwrap_err().field;
        assert_eq!(err(r#"{"idle_gap_minutes": 0}"#), "idle_gap_minutes");
        assert_eq!(
            err(r#"{"redpacket_threshold_yuan": "200"}"#),
            "redpacket_threshold_yuan"
        );
        assert_eq!(err(r#"{"thresholds": 1}"#), "thresholds");
        assert_eq!(
            err(r#"{"competitors": [{"name": "甲"}, {"name": "乙", "aliases": ["a,b"]}]}"#),
            "competitors[1].aliases[0]"
        );
        assert_eq!(err(r#"[1]"#), "(body)");
    }

    #[test]
    fn a_good_document_reads_back_and_null_is_the_default() {
        let doc = SettingsDocument::parse(
            r#"{"competitors": [{"name": "销售易", "aliases": ["XSY"]}], "transfer_threshold_yuan": 50, "idle_gap_minutes": null}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(doc.transfer_threshold_yuan, Some(50.0));
        assert_eq!(doc.idle_gap_minutes, None);
        assert_eq!(
            competitor_lines(doc.competitors.as_ref().unwrap()),
            "销售易,XSY\n"
        );
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(SettingsDocument::from_stored(&json).unwrap(), doc);
    }
}

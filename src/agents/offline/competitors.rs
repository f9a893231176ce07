//! Competitor mentions from the tenant's competitor list (`name,alias|alias`). Matching goes through the
//! sensitive engine, so a competitor written in traditional characters, full-width letters or with
//! symbols in between is still found, with the same offsets into the original text.

use std::collections::BTreeMap;

use super::datafile::{error, records};
use crate::agents::CompetitorMention;
use crate::archive::{Message, Role};
use crate::sensitive::{Engine, Entry, Lexicon, LineError, MatchKind, Severity};

pub struct CompetitorList {
    engine: Engine,
}

impl CompetitorList {
    pub fn parse(source: &str, text: &str) -> (CompetitorList, Vec<LineError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (line, fields) in records(text) {
            let Some(name) = fields.first().filter(|n| !n.is_empty()) else {
                errors.push(error(source, line, "expected name[,alias|alias…]"));
                continue;
            };
            let aliases = fields.get(1).map_or("", |a| a);
            for word in std::iter::once(*name).chain(aliases.split('|').map(str::trim)) {
                if word.is_empty() {
                    continue;
                }
                entries.push(Entry {
                    word: word.to_string(),
                    category: name.to_string(),
                    severity: Severity::Low,
                    pinyin: false,
                });
            }
        }
        let lexicon = Lexicon {
            entries,
            whitelist: Vec::new(),
        };
        (
            CompetitorList {
                engine: Engine::build(&lexicon),
            },
            errors,
        )
    }

    pub fn mentions(&self, messages: &[Message]) -> Vec<CompetitorMention> {
        let mut by_name: BTreeMap<String, CompetitorMention> = BTreeMap::new();
        for m in messages {
            let Some(text) = m.text.as_deref() else {
                continue;
            };
            for hit in self.engine.scan(text) {
                if hit.kind != MatchKind::Lexicon {
                    continue;
                }
                let entry =
                    by_name
                        .entry(hit.category.clone())
                        .or_insert_with(|| CompetitorMention {
                            // A listed name or alias, matched as written: a reading, not a guess.
                            confidence: Some(1.0),
                            name: hit.category.clone(),
                            mentions: 0,
                            by_customer: 0,
                            by_staff: 0,
                            evidence: Vec::new(),
                            chunks: Vec::new(),
                        });
                entry.mentions += 1;
                match m.role() {
                    Role::Customer => entry.by_customer += 1,
                    Role::Staff => entry.by_staff += 1,
                    Role::Robot => {}
                }
                if !entry.evidence.contains(&m.msgid) {
                    entry.evidence.push(m.msgid.clone());
                }
            }
        }
        let mut out: Vec<CompetitorMention> = by_name.into_values().collect();
        out.sort_by(|a, b| b.mentions.cmp(&a.mentions).then(a.name.cmp(&b.name)));
        out
    }
}

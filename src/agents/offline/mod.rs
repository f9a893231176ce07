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

use std::collections::HashSet;
use std::sync::Arc;

pub use competitors::CompetitorList;
pub use emotion::SentimentLexicon;
pub use emotion_model::EmotionModel;
pub use keywords::KeywordExtractor;
pub use opportunity::OpportunityCues;

use crate::agents::{EmotionPair, SessionResult};
use crate::archive::{Role, Session};
use crate::digest::hash_parts;
use crate::sensitive::{Alert, LineError, Severity};

/// Bumped whenever an analyser changes what it outputs for the same input, so stored results are redone.
pub const VERSION: &str = "offline@7";

const SENTIMENT: &str = include_str!("../../../lexicons/sentiment.txt");
const EMOTION_MODEL: &str = include_str!("../../../lexicons/emotion/model.tsv");
const STOPWORDS: &str = include_str!("../../../lexicons/stopwords.txt");
const DOMAIN_TERMS: &str = include_str!("../../../lexicons/domain_terms.txt");
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
                keywords: Arc::new(KeywordExtractor::new(STOPWORDS, DOMAIN_TERMS)),
                competitors: Arc::new(competitors),
                opportunity: Arc::new(opportunity),
                fingerprint: fingerprint(competitor_text),
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
            fingerprint: fingerprint(text),
        };
        (analysers, errors)
    }

    /// Changes whenever the analysers or their data change: part of every session's input hash.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn analyse(&self, session: &Session, alerts: &[Alert]) -> SessionResult {
        let msgs = &session.messages;
        // A customer who abuses or threatens a complaint is upset; staff who abuse are hostile. Only
        // high-severity words say so whatever the context: "垃圾" or "投诉" alone are often not.
        let hostile = |categories: &[&str]| -> HashSet<&str> {
            alerts
                .iter()
                .filter(|a| {
                    a.severity == Severity::High && categories.contains(&a.category.as_str())
                })
                .map(|a| a.msgid.as_str())
                .collect()
        };
        let emotion = EmotionPair {
            customer: self.sentiment.side(
                &self.emotion,
                msgs.iter().filter(|m| m.role() == Role::Customer),
                &hostile(&["辱骂", "客诉"]),
            ),
            staff: self.sentiment.side(
                &self.emotion,
                msgs.iter().filter(|m| m.role() == Role::Staff),
                &hostile(&["辱骂"]),
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

/// The shipped data and the tenant's competitor list: what the analysers' readings depend on.
fn fingerprint(competitors: &str) -> String {
    hash_parts([
        VERSION,
        SENTIMENT,
        EMOTION_MODEL,
        STOPWORDS,
        DOMAIN_TERMS,
        OPPORTUNITY,
        competitors,
    ])
}

/// RFC 3339 in China time, as every result prints its times.
pub(crate) fn china_time(ms: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&offset).to_rfc3339())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{EmotionLabel, Stage};
    use crate::archive::{sessionize, Message};

    /// A one-to-one chat, a minute between messages; `wm…` senders are the customer.
    fn chat(lines: &[(&str, &str)]) -> Session {
        let messages = lines
            .iter()
            .enumerate()
            .map(|(i, (from, text))| {
                let to = if from.starts_with("wm") {
                    "zhangsan"
                } else {
                    "wmCust"
                };
                let line = serde_json::json!({
                    "msgid": format!("m{i}"), "action": "send", "from": from, "tolist": [to],
                    "roomid": "", "msgtime": 1_795_000_000_000i64 + i as i64 * 60_000,
                    "msgtype": "text", "text": {"content": text},
                });
                Message::parse(&line.to_string()).unwrap()
            })
            .collect();
        sessionize("t", messages, 30 * 60 * 1000).remove(0)
    }

    fn analysers() -> OfflineAnalysers {
        let (a, errors) = OfflineAnalysers::load();
        assert!(errors.is_empty(), "{errors:?}");
        a
    }

    #[test]
    fn the_shipped_files_load_without_a_bad_line() {
        analysers();
    }

    #[test]
    fn a_review_with_no_sentiment_word_is_read_and_business_talk_is_neutral() {
        let a = analysers();
        let r = a.analyse(&chat(&[("wmCust", "干净，清静，交通也算方便。")]), &[]);
        let e = r.emotion.customer.unwrap();
        assert_eq!(e.label, EmotionLabel::Positive, "{e:?}");
        let r = a.analyse(
            &chat(&[("wmCust", "我叫陈明，手机 13912345678，方便的话电话联系")]),
            &[],
        );
        assert_eq!(r.emotion.customer.unwrap().label, EmotionLabel::Neutral);
        let r = a.analyse(&chat(&[("wmCust", "用了三天就开不了机，客服也不回")]), &[]);
        assert_eq!(r.emotion.customer.unwrap().label, EmotionLabel::Negative);
    }

    #[test]
    fn rude_staff_read_negative_counted_and_capped() {
        let r = analysers().analyse(
            &chat(&[
                ("wmCust", "这个功能怎么用？"),
                ("zhangsan", "你懂不懂怎么用，说了多少遍了"),
                ("wmCust", "……"),
            ]),
            &[],
        );
        let staff = r.emotion.staff.unwrap();
        assert_eq!(staff.label, EmotionLabel::Negative);
        assert_eq!(staff.negative_messages, 1);
        let score = r.staff_score.unwrap();
        assert!(score.score <= 45.0, "{score:?}");
        assert!(score.notes.iter().any(|n| n.contains("态度")), "{score:?}");
    }

    #[test]
    fn stages_none_won_and_lost_with_the_messages_behind_them() {
        let a = analysers();
        let service = a.analyse(
            &chat(&[
                ("wmCust", "请问网课回放在哪里看"),
                ("zhangsan", "在群公告里，您点开就能看到"),
                ("wmCust", "好的，不用了，找到了"),
            ]),
            &[],
        );
        let o = service.opportunity.unwrap();
        assert_eq!((o.stage, o.detected), (Stage::None, false), "{o:?}");

        let won = a.analyse(
            &chat(&[
                ("wmCust", "雅思班多少钱"),
                ("zhangsan", "12800元，含60课时"),
                ("wmCust", "能便宜点吗"),
                ("zhangsan", "可以打九五折"),
                ("wmCust", "好，已付款了"),
            ]),
            &[],
        );
        let o = won.opportunity.unwrap();
        assert_eq!(o.stage, Stage::Won);
        let moves: Vec<(Stage, &str)> = o
            .moves
            .iter()
            .map(|m| (m.stage, m.msgid.as_str()))
            .collect();
        assert_eq!(
            moves,
            [
                (Stage::InitialContact, "m0"),
                (Stage::Quoted, "m1"),
                (Stage::Negotiating, "m2"),
                (Stage::Won, "m4"),
            ]
        );

        let not_yet = a.analyse(&chat(&[("wmCust", "报名费还没付款，明天付")]), &[]);
        assert_ne!(not_yet.opportunity.unwrap().stage, Stage::Won);

        let lost = a.analyse(
            &chat(&[
                (
                    "wmCust",
                    "老师，我们商量了一下，还是选了离家近的那家机构，这边就先不报了",
                ),
                ("zhangsan", "理解理解，以后有需要随时联系我"),
            ]),
            &[],
        );
        assert_eq!(lost.opportunity.unwrap().stage, Stage::Lost);
    }

    #[test]
    fn a_domain_term_replaces_the_word_it_sits_in_and_outranks_filler() {
        let r = analysers().analyse(
            &chat(&[
                ("wmCust", "刚付完款，能帮我开发票吗，公司报销要用"),
                ("zhangsan", "可以的，请发一下抬头和税号，开发票一般当天就好"),
                ("wmCust", "好的，抬头是上海某某科技有限公司"),
            ]),
            &[],
        );
        let words: Vec<&str> = r.keywords.iter().map(|k| k.word.as_str()).collect();
        assert_eq!(words.first(), Some(&"发票"), "{words:?}");
        assert!(!words.contains(&"开发票"), "{words:?}");
    }

    #[test]
    fn a_domain_term_alone_in_the_talk_has_a_finite_weight() {
        // "OA" is a domain term but too short for TF-IDF's candidates: no candidate to weigh it by.
        let r = analysers().analyse(&chat(&[("wmCust", "OA"), ("zhangsan", "OA")]), &[]);
        assert!(!r.keywords.is_empty());
        for k in &r.keywords {
            assert!(k.weight.is_finite(), "{k:?}");
            assert!(
                k.confidence.is_some_and(|c| (0.0..=1.0).contains(&c)),
                "{k:?}"
            );
        }
    }

    #[test]
    fn few_whole_keywords_and_a_confidence_on_every_finding() {
        let r = analysers().analyse(
            &chat(&[
                ("wmCust", "你们的直播课有回放吗"),
                ("zhangsan", "直播课都有回放，在课程页面"),
                ("wmCust", "直播课一节多长时间"),
            ]),
            &[],
        );
        let words: Vec<&str> = r.keywords.iter().map(|k| k.word.as_str()).collect();
        assert!(words.len() <= 3 && words.contains(&"直播课"), "{words:?}");
        assert!(r.keywords.iter().all(|k| k.confidence.is_some()));
        for c in [
            r.emotion.customer.as_ref().and_then(|e| e.confidence),
            r.emotion.staff.as_ref().and_then(|e| e.confidence),
            r.staff_score.as_ref().and_then(|s| s.confidence),
            r.opportunity.as_ref().and_then(|o| o.confidence),
        ] {
            let c = c.expect("an offline finding carries a confidence");
            assert!((0.5..=1.0).contains(&c), "{c}");
        }
        assert!(r.confidence() <= 1.0 && r.confidence() >= 0.5);
    }
}

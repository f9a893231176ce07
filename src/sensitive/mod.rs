//! Sensitive-word and risky-behaviour matching, the first stage of every analysis.
//!
//! A tenant's [`Lexicon`] compiles into an [`Engine`], built once per version of the tenant's
//! configuration ([`crate::tenant`]). [`scan_session`] turns an engine's hits plus session-level behaviour
//! (recalls, red packets, transfers) into [`Alert`]s. [`mask_pii`] is the 脱敏 every stored alert and
//! every model request goes through.

pub mod behaviour;
pub mod bench;
mod lexicon;
mod lines;
mod matcher;
mod normalize;
mod pii;
pub mod qr;
mod refusal;
mod risk;

pub use lexicon::{Entry, Lexicon, LineError, Severity};
pub use lines::scan_lines;
pub use matcher::{Engine, Match, MatchKind};
pub use pii::{detect as detect_pii, mask as mask_pii, phone_digits};
pub use risk::{scan_messages, scan_session, Alert, Flag, RiskRules};

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn engine() -> &'static Engine {
        static ENGINE: std::sync::LazyLock<Engine> =
            std::sync::LazyLock::new(|| Engine::build(&Lexicon::starter()));
        &ENGINE
    }

    /// Dense text, a word every two characters, gives every hit at its place: offsets are counted in
    /// one pass, as a naive count from the start of the text would give them.
    #[test]
    fn dense_text_gives_every_hit_at_its_place() {
        let text = "微信，".repeat(20_000);
        let hits = engine().scan(&text);
        assert_eq!(hits.len(), 20_000);
        for (i, m) in hits.iter().enumerate() {
            assert_eq!((m.start, m.end), (3 * i, 3 * i + 2));
            assert_eq!(text[..m.byte_start].chars().count(), m.start);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6875_6978), ..ProptestConfig::default() })]

        /// Arbitrary strings never panic, and every reported span slices the original text exactly.
        #[test]
        fn any_text_scans_with_exact_offsets(text in "\\PC{0,64}|[加我微信vxVX薇扣 ０-９0-9一二三四五六七八九幺*、.]{0,40}") {
            let chars: Vec<char> = text.chars().collect();
            for m in engine().scan(&text) {
                prop_assert!(m.start < m.end && m.end <= chars.len());
                prop_assert_eq!(&text[m.byte_start..m.byte_end], m.matched_text.as_str());
                let slice: String = chars[m.start..m.end].iter().collect();
                prop_assert_eq!(slice, m.matched_text);
            }
            // Masking leaves no phone or card number readable.
            let masked = mask_pii(&text);
            prop_assert!(super::pii::detect(&masked).iter().all(|m| !matches!(m.kind, MatchKind::Phone | MatchKind::BankCard)), "{masked}");
        }
    }
}

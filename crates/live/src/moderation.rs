//! Moderation rules: who may do what to whom, blocked-word matching, and
//! how a moderation-log line's facts are stored. Pure functions, tested
//! without a room.

use crate::Participant;
use domain::OfferId;
use domain::Role;
use protocol::{ModerationAction, ModerationFacts, RefusalCode};
use unicode_normalization::UnicodeNormalization;

/// Whom a targeted action is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub subject: &'a str,
    pub role: Role,
}

/// The live channel's permission table.
///
/// * Only the owner and moderators moderate at all (everything below).
/// * Delete, time out, ban, unban follow [`Role::can_act_on`]: the owner acts
///   on moderators and viewers, moderators only on viewers (never on the
///   owner or each other). Nobody times out, bans or unbans themselves;
///   an owner or moderator may delete their own message.
/// * Slow mode, blocked words, pinning messages and offers, clearing chat:
///   the owner and moderators alike (moderators run the room while the
///   farmer is out in the field). Appointing moderators is the owner's
///   alone and happens over HTTP, not here.
pub fn authorize(
    actor: &Participant,
    action: ModerationAction,
    target: Option<Target<'_>>,
) -> Result<(), RefusalCode> {
    if actor.anonymous || !actor.role.can_moderate() || action == ModerationAction::AutoMute {
        return Err(RefusalCode::NotAllowed);
    }
    let targeted = matches!(
        action,
        ModerationAction::DeleteMessage
            | ModerationAction::Timeout
            | ModerationAction::Ban
            | ModerationAction::Unban
    );
    if !targeted {
        return Ok(());
    }
    let Some(target) = target else {
        return Err(RefusalCode::NotFound);
    };
    if target.subject == actor.subject {
        return if action == ModerationAction::DeleteMessage {
            Ok(())
        } else {
            Err(RefusalCode::TargetProtected)
        };
    }
    if actor.role.can_act_on(target.role) {
        Ok(())
    } else {
        Err(RefusalCode::TargetProtected)
    }
}

pub const MAX_BLOCKED_WORDS: usize = 200;
pub const MAX_BLOCKED_WORD_CHARS: usize = 40;

/// The form words and messages are compared in: the chat normalization
/// (NFC, no control or invisible characters, trimmed), then compatibility
/// folding (full-width ＡＢＣ and ① become ABC and 1) and lower case, so
/// `ＳＰＡＭ`, `Spam` and `spam` are one word.
pub fn fold(raw: &str) -> String {
    domain::normalize_text(raw, false)
        .nfkc()
        .flat_map(char::to_lowercase)
        .collect()
}

/// A shop's blocked words, folded. A message is blocked when its folded text
/// contains any of them (substring match: Chinese has no spaces to split on).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct BlockedWords {
    words: Vec<String>,
}

impl BlockedWords {
    /// Validates and folds a list a moderator sent: at most 200 words of at
    /// most 40 characters; blanks and duplicates are dropped.
    pub fn parse(raw: &[String]) -> Result<BlockedWords, String> {
        if raw.len() > MAX_BLOCKED_WORDS {
            return Err(format!("at most {MAX_BLOCKED_WORDS} blocked words"));
        }
        let mut words: Vec<String> = Vec::with_capacity(raw.len());
        for r in raw {
            let w = fold(r);
            if w.is_empty() {
                continue;
            }
            if w.chars().count() > MAX_BLOCKED_WORD_CHARS {
                return Err(format!(
                    "a blocked word has at most {MAX_BLOCKED_WORD_CHARS} characters"
                ));
            }
            if !words.contains(&w) {
                words.push(w);
            }
        }
        Ok(BlockedWords { words })
    }

    /// Words read back from the database, folded when they were saved.
    pub fn from_stored(words: Vec<String>) -> BlockedWords {
        BlockedWords { words }
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    pub fn blocks(&self, text: &str) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let folded = fold(text);
        self.words.iter().any(|w| folded.contains(w.as_str()))
    }
}

/// "10 min", "1 h", "45 s": a length in the log's stored `detail`.
pub(crate) fn seconds_text(s: u32) -> String {
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn parse_seconds(text: &str) -> Option<u32> {
    let (n, unit) = text.split_once(' ')?;
    let n: u32 = n.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(per)
}

/// The `detail` a moderation-log line is stored with (in English, for
/// developers and logs; the format the log has always had), from its facts.
pub fn log_detail(action: ModerationAction, facts: &ModerationFacts) -> Option<String> {
    use ModerationAction as A;
    match action {
        A::Timeout => facts.seconds.map(|s| match &facts.reason {
            Some(reason) => format!("{}: {reason}", seconds_text(s)),
            None => seconds_text(s),
        }),
        A::Ban => facts.reason.clone(),
        A::SlowMode => facts.seconds.map(|s| match s {
            0 => "off".to_owned(),
            s => seconds_text(s),
        }),
        A::BlockedWords => facts.count.map(|n| format!("{n} words")),
        A::PinOffer => facts.offer.as_ref().map(|offer| match &facts.title {
            Some(title) => format!("{offer}: {title}"),
            None => offer.to_string(),
        }),
        A::UnpinOffer => facts.offer.as_ref().map(ToString::to_string),
        A::AutoMute => facts
            .seconds
            .map(|s| format!("flooding: muted {}", seconds_text(s))),
        A::DeleteMessage | A::Unban | A::PinMessage | A::UnpinMessage | A::ClearChat => None,
    }
}

/// The facts of a stored line, read back from the `detail` [`log_detail`]
/// wrote, so pages never read the English. A detail that reads as none of
/// them gives no facts.
pub fn log_facts(action: ModerationAction, detail: Option<&str>) -> ModerationFacts {
    use ModerationAction as A;
    let mut facts = ModerationFacts::default();
    let Some(detail) = detail.map(str::trim).filter(|d| !d.is_empty()) else {
        return facts;
    };
    match action {
        A::Timeout => {
            let (length, reason) = match detail.split_once(": ") {
                Some((length, reason)) => (length, Some(reason)),
                None => (detail, None),
            };
            if let Some(s) = parse_seconds(length) {
                facts.seconds = Some(s);
                facts.reason = reason.map(str::to_owned);
            }
        }
        A::Ban => facts.reason = Some(detail.to_owned()),
        A::SlowMode => {
            facts.seconds = if detail == "off" {
                Some(0)
            } else {
                parse_seconds(detail)
            }
        }
        A::BlockedWords => {
            facts.count = detail
                .strip_suffix(" words")
                .or_else(|| detail.strip_suffix(" word"))
                .and_then(|n| n.parse().ok());
        }
        A::PinOffer | A::UnpinOffer => {
            let (offer, title) = match detail.split_once(": ") {
                Some((offer, title)) => (offer, Some(title)),
                None => (detail, None),
            };
            if let Ok(offer) = OfferId::parse(offer) {
                facts.offer = Some(offer);
                facts.title = title.filter(|_| action == A::PinOffer).map(str::to_owned);
            }
        }
        A::AutoMute => {
            facts.seconds = detail
                .split_once("muted ")
                .and_then(|(_, length)| parse_seconds(length));
        }
        A::DeleteMessage | A::Unban | A::PinMessage | A::UnpinMessage | A::ClearChat => {}
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::DisplayName;
    use protocol::ModerationAction::{
        AutoMute, Ban, BlockedWords as SetBlockedWords, ClearChat, DeleteMessage, PinMessage,
        PinOffer, SlowMode, Timeout, Unban, UnpinMessage, UnpinOffer,
    };

    fn person(subject: &str, role: Role) -> Participant {
        Participant {
            subject: subject.into(),
            name: DisplayName::parse("x").unwrap(),
            role,
            signed_in: subject.starts_with("usr_"),
            anonymous: false,
        }
    }

    #[test]
    fn permission_table() {
        let owner = person("usr_owner", Role::Owner);
        let moderator = person("usr_mod", Role::Moderator);
        let guest = person("gst_g", Role::Viewer);
        let viewer = person("usr_v", Role::Viewer);
        let anon = Participant::anonymous();

        let t = |subject, role| Some(Target { subject, role });
        let on_viewer = t("gst_other", Role::Viewer);
        let on_moderator = t("usr_mod2", Role::Moderator);
        let on_owner = t("usr_owner", Role::Owner);

        for action in [DeleteMessage, Timeout, Ban, Unban] {
            for actor in [&guest, &viewer, &anon] {
                assert_eq!(
                    authorize(actor, action, on_viewer),
                    Err(RefusalCode::NotAllowed),
                    "{action:?}"
                );
            }
            assert_eq!(
                authorize(&moderator, action, on_viewer),
                Ok(()),
                "{action:?}"
            );
            assert_eq!(
                authorize(&moderator, action, on_moderator),
                Err(RefusalCode::TargetProtected)
            );
            assert_eq!(
                authorize(&moderator, action, on_owner),
                Err(RefusalCode::TargetProtected)
            );
            assert_eq!(authorize(&owner, action, on_viewer), Ok(()));
            assert_eq!(authorize(&owner, action, on_moderator), Ok(()));
            assert_eq!(authorize(&owner, action, None), Err(RefusalCode::NotFound));
        }
        for action in [
            SlowMode,
            SetBlockedWords,
            PinMessage,
            UnpinMessage,
            ClearChat,
            PinOffer,
            UnpinOffer,
        ] {
            for actor in [&guest, &viewer, &anon] {
                assert_eq!(
                    authorize(actor, action, None),
                    Err(RefusalCode::NotAllowed),
                    "{action:?}"
                );
            }
            assert_eq!(authorize(&moderator, action, None), Ok(()));
            assert_eq!(authorize(&owner, action, None), Ok(()));
        }
        assert_eq!(
            authorize(&owner, AutoMute, None),
            Err(RefusalCode::NotAllowed),
            "the server's alone"
        );
    }

    #[test]
    fn nobody_sanctions_themselves_but_may_delete_their_own_message() {
        let owner = person("usr_owner", Role::Owner);
        let me = Some(Target {
            subject: "usr_owner",
            role: Role::Owner,
        });
        assert_eq!(authorize(&owner, DeleteMessage, me), Ok(()));
        for action in [Timeout, Ban, Unban] {
            assert_eq!(
                authorize(&owner, action, me),
                Err(RefusalCode::TargetProtected)
            );
        }
        let moderator = person("usr_mod", Role::Moderator);
        let me = Some(Target {
            subject: "usr_mod",
            role: Role::Moderator,
        });
        assert_eq!(authorize(&moderator, DeleteMessage, me), Ok(()));
        assert_eq!(
            authorize(&moderator, Ban, me),
            Err(RefusalCode::TargetProtected)
        );
    }

    #[test]
    fn blocked_words_match_after_normalization_ignoring_case_and_width() {
        let list =
            BlockedWords::parse(&["SPAM".into(), "加微信".into(), " ".into(), "spam".into()])
                .unwrap();
        assert_eq!(
            list.words(),
            ["spam", "加微信"],
            "folded, blanks and duplicates dropped"
        );
        assert!(list.blocks("Buy SPAM now"));
        assert!(list.blocks("ｓｐａｍ"), "full-width letters");
        assert!(
            list.blocks("s\u{200B}pam"),
            "zero-width space removed first"
        );
        assert!(list.blocks("快来加微信领红包"), "inside Chinese text");
        assert!(!list.blocks("好小米"));
        assert!(!BlockedWords::default().blocks("spam"));
    }

    #[test]
    fn blocked_word_lists_are_bounded() {
        assert!(BlockedWords::parse(&vec!["a".to_owned(); MAX_BLOCKED_WORDS + 1]).is_err());
        assert!(BlockedWords::parse(&["长".repeat(MAX_BLOCKED_WORD_CHARS + 1)]).is_err());
        assert!(BlockedWords::parse(&["长".repeat(MAX_BLOCKED_WORD_CHARS)]).is_ok());
    }

    #[test]
    fn log_facts_read_back_what_log_detail_stored() {
        use ModerationAction as A;
        let offer = OfferId::parse("ofr_5x5t").unwrap();
        let cases = [
            (
                A::Timeout,
                ModerationFacts {
                    seconds: Some(600),
                    reason: Some("刷屏: 又刷".into()),
                    ..Default::default()
                },
                "10 min: 刷屏: 又刷",
            ),
            (
                A::Timeout,
                ModerationFacts {
                    seconds: Some(45),
                    ..Default::default()
                },
                "45 s",
            ),
            (
                A::Ban,
                ModerationFacts {
                    reason: Some("骂人".into()),
                    ..Default::default()
                },
                "骂人",
            ),
            (
                A::SlowMode,
                ModerationFacts {
                    seconds: Some(0),
                    ..Default::default()
                },
                "off",
            ),
            (
                A::SlowMode,
                ModerationFacts {
                    seconds: Some(3600),
                    ..Default::default()
                },
                "1 h",
            ),
            (
                A::BlockedWords,
                ModerationFacts {
                    count: Some(3),
                    ..Default::default()
                },
                "3 words",
            ),
            (
                A::PinOffer,
                ModerationFacts {
                    offer: Some(offer.clone()),
                    title: Some("羊粪小米".into()),
                    ..Default::default()
                },
                "ofr_5x5t: 羊粪小米",
            ),
            (
                A::UnpinOffer,
                ModerationFacts {
                    offer: Some(offer),
                    ..Default::default()
                },
                "ofr_5x5t",
            ),
            (
                A::AutoMute,
                ModerationFacts {
                    seconds: Some(60),
                    ..Default::default()
                },
                "flooding: muted 1 min",
            ),
        ];
        for (action, facts, stored) in cases {
            assert_eq!(
                log_detail(action, &facts).as_deref(),
                Some(stored),
                "{action:?}"
            );
            assert_eq!(log_facts(action, Some(stored)), facts, "{action:?}");
        }
        assert_eq!(log_detail(A::ClearChat, &ModerationFacts::default()), None);
        // A detail that reads as nothing is left out, never passed on.
        assert_eq!(
            log_facts(A::UnpinOffer, Some("something odd")),
            ModerationFacts::default()
        );
        assert_eq!(
            log_facts(A::Timeout, Some("a while")),
            ModerationFacts::default()
        );
        assert_eq!(log_facts(A::SlowMode, None), ModerationFacts::default());
    }
}

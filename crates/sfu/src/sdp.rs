//! Offer inspection: what a WHIP/WHEP client offers, and which codecs we pick.
//!
//! rtc's parser does the syntax; this module decides semantics (directions, codec
//! choice, H.264 profile compatibility) so errors are typed and readable.

use crate::error::SfuError;
use crate::forward::VideoCodec;

/// Largest SDP accepted (a real offer is 2–8 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Most lines in an offer. A browser's offer with simulcast is 150–300 lines
/// (Chromium's video section alone lists ~30 payload types with their fmtp and
/// rtcp-fb lines); anything near this is built to make the parser work.
pub const MAX_SDP_LINES: usize = 1_000;

/// Longest line in an offer or trickle fragment (real lines are under 200 bytes:
/// fingerprints, candidates, fmtp).
pub const MAX_SDP_LINE_LEN: usize = 1_024;

/// Most m-sections in an offer. WHIP/WHEP use one audio and one video section
/// (plus, from some clients, a data channel).
pub const MAX_MEDIA_SECTIONS: usize = 16;

/// Most `a=rtpmap` lines in one m-section: the dynamic payload-type space.
pub const MAX_RTPMAPS_PER_SECTION: usize = 128;

/// Most lines in a trickle fragment (a client trickles a few candidates at a time).
pub const MAX_SDPFRAG_LINES: usize = 100;

/// Refuses what no real client sends before any parser sees it: control
/// characters (NUL included), overlong lines, too many lines or m-sections,
/// too many or duplicate `a=rtpmap` payload types in one section.
///
/// Malformed text is [`SfuError::BadSdp`]; well-formed text over a limit is
/// [`SfuError::SdpTooComplex`].
pub fn check_offer_shape(sdp: &str) -> Result<(), SfuError> {
    check_text(sdp, MAX_SDP_LINES).map_err(|e| match e {
        TextProblem::Malformed(m) => SfuError::BadSdp(m),
        TextProblem::OverLimit(m) => SfuError::SdpTooComplex(m),
    })?;
    let mut sections = 0usize;
    let mut rtpmap_pts: Vec<u8> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            sections += 1;
            if sections > MAX_MEDIA_SECTIONS {
                return Err(SfuError::SdpTooComplex(format!(
                    "more than {MAX_MEDIA_SECTIONS} m-sections"
                )));
            }
            rtpmap_pts.clear();
        } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
            let pt = v
                .split(' ')
                .next()
                .and_then(|pt| pt.parse::<u8>().ok())
                .ok_or_else(|| SfuError::BadSdp(format!("malformed rtpmap line: {line:.60}")))?;
            if rtpmap_pts.contains(&pt) {
                return Err(SfuError::BadSdp(format!(
                    "payload type {pt} is mapped twice in one m-section"
                )));
            }
            if rtpmap_pts.len() >= MAX_RTPMAPS_PER_SECTION {
                return Err(SfuError::SdpTooComplex(format!(
                    "more than {MAX_RTPMAPS_PER_SECTION} rtpmap lines in one m-section"
                )));
            }
            rtpmap_pts.push(pt);
        }
    }
    Ok(())
}

enum TextProblem {
    Malformed(String),
    OverLimit(String),
}

/// Line-level rules shared by offers and trickle fragments.
fn check_text(text: &str, max_lines: usize) -> Result<(), TextProblem> {
    // Lines end in LF or CRLF; no other control character (NUL, TAB, ESC, DEL,
    // C1…) appears in what WebRTC clients send, and each one is a way to smuggle
    // something past a parser or into a log line.
    let bytes = text.as_bytes();
    for (at, c) in text.char_indices() {
        let lone_cr = c == '\r' && bytes.get(at + 1) != Some(&b'\n');
        if (c.is_control() && c != '\r' && c != '\n') || lone_cr {
            return Err(TextProblem::Malformed(format!(
                "control character U+{:04X} at byte {at}",
                c as u32
            )));
        }
    }
    let mut count = 0usize;
    for (i, line) in text.lines().enumerate() {
        count += 1;
        if count > max_lines {
            return Err(TextProblem::OverLimit(format!(
                "more than {max_lines} lines"
            )));
        }
        if line.len() > MAX_SDP_LINE_LEN {
            return Err(TextProblem::OverLimit(format!(
                "line {} is {} bytes, limit is {MAX_SDP_LINE_LEN}",
                i + 1,
                line.len()
            )));
        }
    }
    Ok(())
}

/// Media kind of an m-section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// m=audio
    Audio,
    /// m=video
    Video,
    /// anything else (m=application, ...)
    Other,
}

/// One codec in an m-section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// Payload type.
    pub pt: u8,
    /// `video/VP8`, `video/H264`, `audio/opus`, ...
    pub mime: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Audio channels (0 if unspecified).
    pub channels: u16,
    /// fmtp line (may be empty).
    pub fmtp: String,
    /// `a=rtcp-fb` entries `(type, parameter)`.
    pub feedback: Vec<(String, String)>,
}

impl OfferedCodec {
    fn param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }

    /// VP8 / H.264 (packetization-mode 1) as the SFU understands them.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        if self.mime.eq_ignore_ascii_case("video/vp8") {
            Some(VideoCodec::Vp8)
        } else if self.mime.eq_ignore_ascii_case("video/h264")
            && self.param("packetization-mode") == Some("1")
        {
            Some(VideoCodec::H264)
        } else {
            None
        }
    }

    fn is_opus(&self) -> bool {
        self.mime.eq_ignore_ascii_case("audio/opus")
    }

    /// H.264 `(profile_idc, profile_iop)`, if any.
    fn h264_profile(&self) -> Option<(u8, u8)> {
        let plid = self.param("profile-level-id").unwrap_or("42001f");
        if plid.len() != 6 {
            return None;
        }
        let idc = u8::from_str_radix(&plid[0..2], 16).ok()?;
        let iop = u8::from_str_radix(&plid[2..4], 16).ok()?;
        Some((idc, iop))
    }

    fn is_constrained_baseline(&self) -> bool {
        matches!(self.h264_profile(), Some((0x42, iop)) if iop & 0x40 != 0)
            || matches!(self.h264_profile(), Some((0x4d, iop)) if iop & 0x80 != 0)
    }

    /// Can a decoder that offered `self` decode a stream described by `sent`?
    pub fn can_decode(&self, sent: &OfferedCodec) -> bool {
        match (self.video_codec(), sent.video_codec()) {
            (Some(VideoCodec::Vp8), Some(VideoCodec::Vp8)) => true,
            (Some(VideoCodec::H264), Some(VideoCodec::H264)) => {
                // Every H.264 decoder handles constrained baseline; otherwise the
                // profile must match.
                sent.is_constrained_baseline()
                    || self.h264_profile().map(|p| p.0) == sent.h264_profile().map(|p| p.0)
            }
            (None, None) => self.is_opus() && sent.is_opus(),
            _ => false,
        }
    }

    /// Short human name, e.g. `H264 42e01f` or `VP8`.
    pub fn describe(&self) -> String {
        let name = self.mime.split('/').nth(1).unwrap_or(&self.mime).to_owned();
        match self.param("profile-level-id") {
            Some(p) => format!("{name} {p}"),
            None => name,
        }
    }
}

/// Direction of an m-section, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// sendrecv
    SendRecv,
    /// sendonly
    SendOnly,
    /// recvonly
    RecvOnly,
    /// inactive
    Inactive,
}

/// One m-section.
#[derive(Debug, Clone)]
pub struct OfferedMedia {
    /// audio / video / other
    pub kind: Kind,
    /// a=mid
    pub mid: Option<String>,
    /// Direction.
    pub direction: Direction,
    /// Codecs in preference order.
    pub codecs: Vec<OfferedCodec>,
    /// `a=rid:<id> send` entries (simulcast layers the offerer will send).
    pub send_rids: Vec<String>,
    /// Port 0 (rejected / bundle-only sections still count).
    pub port_zero: bool,
}

/// What an offer contains.
#[derive(Debug, Clone)]
pub struct OfferSummary {
    /// m-sections in order.
    pub media: Vec<OfferedMedia>,
    /// The offerer's ICE username fragment (session level, or the first section's).
    pub ice_ufrag: Option<String>,
    /// The offerer's ICE password.
    pub ice_pwd: Option<String>,
}

/// Parse and sanity-check an offer. Never panics on hostile input.
pub fn inspect_offer(sdp: &str) -> Result<OfferSummary, SfuError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SfuError::BadSdp(format!(
            "offer is {} bytes, limit is {MAX_SDP_LEN}",
            sdp.len()
        )));
    }
    if !sdp.starts_with("v=0") {
        return Err(SfuError::BadSdp("offer must start with v=0".into()));
    }
    check_offer_shape(sdp)?;
    // rtc-sdp's parser is fuzzed with everything that passes the checks above
    // (`fuzz/` target `sdp_offer`, which goes on through rtc's offer handling
    // too), so a panic here is a bug to fix, not something to catch.
    let mut reader = std::io::Cursor::new(sdp.as_bytes());
    let parsed = rtc::sdp::description::session::SessionDescription::unmarshal(&mut reader)
        .map_err(|e| SfuError::BadSdp(e.to_string()))?;

    let session_dir = parsed.attributes.iter().find_map(|a| direction_of(&a.key));
    let ice_attr = |key: &str| {
        parsed
            .attributes
            .iter()
            .chain(parsed.media_descriptions.iter().flat_map(|m| &m.attributes))
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
    };
    let (ice_ufrag, ice_pwd) = (ice_attr("ice-ufrag"), ice_attr("ice-pwd"));
    let mut media = Vec::new();
    for md in &parsed.media_descriptions {
        let kind = match md.media_name.media.as_str() {
            "audio" => Kind::Audio,
            "video" => Kind::Video,
            _ => Kind::Other,
        };
        let mut direction = session_dir.unwrap_or(Direction::SendRecv);
        let mut mid = None;
        let mut codecs: Vec<OfferedCodec> = Vec::new();
        let mut send_rids = Vec::new();
        let mut fmtps = Vec::new();
        let mut fbs = Vec::new();
        for a in &md.attributes {
            if let Some(d) = direction_of(&a.key) {
                direction = d;
                continue;
            }
            let v = a.value.as_deref().unwrap_or("");
            match a.key.as_str() {
                "mid" => mid = Some(v.to_owned()),
                "rtpmap" => {
                    if let Some(c) = parse_rtpmap(kind, v) {
                        codecs.push(c);
                    }
                }
                "fmtp" => {
                    if let Some((pt, rest)) = v.split_once(' ')
                        && let Ok(pt) = pt.parse::<u8>()
                    {
                        fmtps.push((pt, rest.trim().to_owned()));
                    }
                }
                "rtcp-fb" => {
                    let mut it = v.split_whitespace();
                    if let (Some(pt), Some(t)) = (it.next(), it.next()) {
                        fbs.push((
                            pt.to_owned(),
                            t.to_owned(),
                            it.next().unwrap_or("").to_owned(),
                        ));
                    }
                }
                "rid" => {
                    let mut it = v.split_whitespace();
                    if let (Some(id), Some("send")) = (it.next(), it.next()) {
                        send_rids.push(id.to_owned());
                    }
                }
                _ => {}
            }
        }
        for c in &mut codecs {
            if let Some((_, f)) = fmtps.iter().find(|(pt, _)| *pt == c.pt) {
                c.fmtp = f.clone();
            }
            for (pt, t, p) in &fbs {
                if pt == "*" || pt.parse::<u8>().ok() == Some(c.pt) {
                    c.feedback.push((t.clone(), p.clone()));
                }
            }
        }
        // keep m-line format order (the offerer's preference)
        let order: Vec<u8> = md
            .media_name
            .formats
            .iter()
            .filter_map(|f| f.parse().ok())
            .collect();
        codecs.sort_by_key(|c| order.iter().position(|p| *p == c.pt).unwrap_or(usize::MAX));
        media.push(OfferedMedia {
            kind,
            mid,
            direction,
            codecs,
            send_rids,
            port_zero: md.media_name.port.value == 0,
        });
    }
    if !media.iter().any(|m| m.kind != Kind::Other) {
        return Err(SfuError::BadSdp(
            "offer has no audio or video section".into(),
        ));
    }
    if !sdp.contains("a=ice-ufrag") || !sdp.contains("a=fingerprint") {
        return Err(SfuError::BadSdp(
            "offer lacks ICE credentials or a DTLS fingerprint".into(),
        ));
    }
    Ok(OfferSummary {
        media,
        ice_ufrag,
        ice_pwd,
    })
}

fn direction_of(key: &str) -> Option<Direction> {
    Some(match key {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

fn parse_rtpmap(kind: Kind, v: &str) -> Option<OfferedCodec> {
    let (pt, rest) = v.split_once(' ')?;
    let pt = pt.parse::<u8>().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?;
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let prefix = match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
        Kind::Other => return None,
    };
    Some(OfferedCodec {
        pt,
        mime: format!("{prefix}/{name}"),
        clock_rate,
        channels,
        fmtp: String::new(),
        feedback: Vec::new(),
    })
}

/// What a publisher will send, as chosen from its offer.
#[derive(Debug, Clone, Default)]
pub struct PublisherChoice {
    /// Chosen video codec (with the publisher's PT and fmtp).
    pub video: Option<OfferedCodec>,
    /// Chosen audio codec (Opus).
    pub audio: Option<OfferedCodec>,
    /// Simulcast rids offered for video.
    pub rids: Vec<String>,
}

/// Choose the publisher's codecs: VP8 or H.264 pm=1 (constrained baseline preferred,
/// so iPhones can watch), and Opus.
pub fn choose_publisher(offer: &OfferSummary) -> Result<PublisherChoice, SfuError> {
    let mut choice = PublisherChoice::default();
    let sending =
        |m: &&OfferedMedia| matches!(m.direction, Direction::SendOnly | Direction::SendRecv);
    let mut offered_names = Vec::new();
    if let Some(v) = offer
        .media
        .iter()
        .filter(sending)
        .find(|m| m.kind == Kind::Video)
    {
        offered_names.extend(v.codecs.iter().map(|c| c.describe()));
        let usable: Vec<&OfferedCodec> = v
            .codecs
            .iter()
            .filter(|c| c.video_codec().is_some())
            .collect();
        choice.video = usable
            .iter()
            .find(|c| c.video_codec() == Some(VideoCodec::Vp8) || c.is_constrained_baseline())
            .or(usable.first())
            .map(|c| (*c).clone());
        choice.rids = v.send_rids.iter().take(3).cloned().collect();
    }
    if let Some(a) = offer
        .media
        .iter()
        .filter(sending)
        .find(|m| m.kind == Kind::Audio)
    {
        offered_names.extend(a.codecs.iter().map(|c| c.describe()));
        choice.audio = a.codecs.iter().find(|c| c.is_opus()).cloned();
    }
    if choice.video.is_none() && choice.audio.is_none() {
        if offered_names.is_empty() {
            return Err(SfuError::BadSdp(
                "publisher offer sends no audio or video (needs sendonly/sendrecv)".into(),
            ));
        }
        return Err(SfuError::UnsupportedCodecs(format!(
            "publisher offers {}; the server accepts VP8, H264 (packetization-mode=1) and Opus",
            offered_names.join(", ")
        )));
    }
    Ok(choice)
}

/// What a viewer will receive, as chosen from its offer against the publisher's codecs.
#[derive(Debug, Clone, Default)]
pub struct ViewerChoice {
    /// The viewer's own codec entry for video (its PT and fmtp).
    pub video: Option<OfferedCodec>,
    /// The viewer's own codec entry for audio.
    pub audio: Option<OfferedCodec>,
}

/// Match a viewer's offer against what the publisher sends.
pub fn choose_viewer(
    offer: &OfferSummary,
    publisher: &PublisherChoice,
) -> Result<ViewerChoice, SfuError> {
    let receiving =
        |m: &&OfferedMedia| matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
    let mut choice = ViewerChoice::default();
    let mut problems = Vec::new();
    let video_m = offer
        .media
        .iter()
        .filter(receiving)
        .find(|m| m.kind == Kind::Video);
    let audio_m = offer
        .media
        .iter()
        .filter(receiving)
        .find(|m| m.kind == Kind::Audio);
    if let (Some(sent), Some(m)) = (&publisher.video, video_m) {
        choice.video = m.codecs.iter().find(|c| c.can_decode(sent)).cloned();
        if choice.video.is_none() {
            let offered: Vec<String> = m
                .codecs
                .iter()
                .filter(|c| {
                    c.video_codec().is_some()
                        || c.mime.to_ascii_lowercase().starts_with("video/h264")
                })
                .map(|c| c.describe())
                .collect();
            problems.push(format!(
                "the broadcast is {} but this player offers {}",
                sent.describe(),
                if offered.is_empty() {
                    "no usable video codec".to_owned()
                } else {
                    offered.join(", ")
                }
            ));
        }
    }
    if let (Some(sent), Some(m)) = (&publisher.audio, audio_m) {
        choice.audio = m.codecs.iter().find(|c| c.can_decode(sent)).cloned();
        if choice.audio.is_none() {
            problems.push("the broadcast audio is Opus but this player does not offer it".into());
        }
    }
    if video_m.is_none() && audio_m.is_none() {
        return Err(SfuError::BadSdp(
            "viewer offer receives no audio or video (needs recvonly/sendrecv)".into(),
        ));
    }
    // A video codec mismatch is fatal (it would be a black screen). A viewer that
    // asked only for audio, or cannot take audio but can take video, is served.
    if publisher.video.is_some() && video_m.is_some() && choice.video.is_none() {
        return Err(SfuError::UnsupportedCodecs(problems.join("; ")));
    }
    if choice.video.is_none() && choice.audio.is_none() {
        return Err(SfuError::UnsupportedCodecs(if problems.is_empty() {
            "nothing the player can receive matches what the broadcast sends".into()
        } else {
            problems.join("; ")
        }));
    }
    Ok(choice)
}

/// What a trickle fragment (RFC 8840 `application/trickle-ice-sdpfrag`) carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrickleFragment {
    /// `a=ice-ufrag`, if present: the ICE session the fragment is meant for.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, if present (only an ICE restart changes it).
    pub pwd: Option<String>,
    /// `(mid, candidate line)` in order.
    pub candidates: Vec<(Option<String>, String)>,
    /// `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

/// Parse a trickle-ice-sdpfrag body (RFC 8840). Refuses what is not one: control
/// characters, lines that are not `a=`/`m=` SDP lines, malformed candidates, and a
/// body with nothing to apply (no candidate, end-of-candidates or ICE credentials).
pub fn parse_sdpfrag(frag: &str) -> Result<TrickleFragment, SfuError> {
    if frag.len() > MAX_SDP_LEN {
        return Err(SfuError::BadTrickle("fragment too large".into()));
    }
    check_text(frag, MAX_SDPFRAG_LINES).map_err(|e| match e {
        TextProblem::Malformed(m) | TextProblem::OverLimit(m) => SfuError::BadTrickle(m),
    })?;
    let mut out = TrickleFragment::default();
    let mut mid: Option<String> = None;
    for line in frag.lines() {
        if line.is_empty() {
            continue;
        }
        // An sdpfrag holds attributes and media sections only (RFC 8840 §9.1).
        let well_formed = matches!(line.as_bytes(), [b'a' | b'm', b'=', ..]);
        if !well_formed {
            return Err(SfuError::BadTrickle(format!(
                "not an SDP fragment line: {line:.60}"
            )));
        }
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            out.ufrag = Some(u.trim().to_owned());
        } else if let Some(p) = line.strip_prefix("a=ice-pwd:") {
            out.pwd = Some(p.trim().to_owned());
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        } else if let Some(c) = line.strip_prefix("a=candidate:") {
            if c.split_whitespace().count() < 8 {
                return Err(SfuError::BadTrickle(format!(
                    "malformed candidate: {line:.100}"
                )));
            }
            out.candidates
                .push((mid.clone(), format!("candidate:{}", c.trim())));
        } else if line.trim_end() == "a=end-of-candidates" {
            out.end_of_candidates = true;
        }
    }
    if out.candidates.is_empty()
        && !out.end_of_candidates
        && out.ufrag.is_none()
        && out.pwd.is_none()
    {
        return Err(SfuError::BadTrickle(
            "the fragment carries no candidate, end-of-candidates or ICE credentials".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(mime: &str, fmtp: &str) -> OfferedCodec {
        OfferedCodec {
            pt: 96,
            mime: mime.into(),
            clock_rate: 90000,
            channels: 0,
            fmtp: fmtp.into(),
            feedback: vec![],
        }
    }

    #[test]
    fn h264_profile_compat() {
        let cb_gst = codec("video/H264", "packetization-mode=1;profile-level-id=42c015");
        let cb_ios = codec(
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        );
        let high = codec("video/H264", "packetization-mode=1;profile-level-id=640c1f");
        let pm0 = codec("video/H264", "packetization-mode=0;profile-level-id=42e01f");
        assert!(cb_ios.can_decode(&cb_gst));
        assert!(cb_gst.can_decode(&cb_ios));
        assert!(high.can_decode(&cb_ios));
        assert!(!cb_ios.can_decode(&high));
        assert!(!pm0.can_decode(&cb_ios));
        assert!(!codec("video/VP8", "").can_decode(&cb_ios));
    }

    #[test]
    fn hostile_offers_are_bad_sdp_not_panics() {
        for s in [
            "",
            "hello",
            "v=0\r\n",
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 99999999999 x\r\n",
        ] {
            assert!(
                matches!(inspect_offer(s), Err(SfuError::BadSdp(_))),
                "{s:?}"
            );
        }
        let big = format!("v=0\r\n{}", "a=x\r\n".repeat(20000));
        assert!(matches!(inspect_offer(&big), Err(SfuError::BadSdp(_))));
    }

    #[test]
    fn sdpfrag() {
        let f = parse_sdpfrag(
            "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n",
        )
        .unwrap();
        assert_eq!(f.ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.pwd.as_deref(), Some("x"));
        assert!(f.end_of_candidates);
        assert_eq!(f.candidates.len(), 1);
        assert_eq!(f.candidates[0].0.as_deref(), Some("0"));
        assert!(parse_sdpfrag("a=candidate:1 2\r\n").is_err());
    }

    /// A minimal offer that passes every check: one video section.
    fn plain_offer(extra_session: &str, extra_video: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{extra_session}\
             a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
             a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
             a=rtpmap:96 VP8/90000\r\n{extra_video}"
        )
    }

    #[test]
    fn plain_offer_passes_and_names_its_ice_credentials() {
        let summary = inspect_offer(&plain_offer("", "")).expect("a plain offer is fine");
        assert_eq!(summary.ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(summary.ice_pwd.as_deref(), Some("0123456789012345678901"));
        assert_eq!(summary.media.len(), 1);
    }

    #[test]
    fn offers_built_to_strain_the_parser_are_refused_before_it() {
        // NUL bytes and other control characters: malformed.
        for bad in [
            "s=a\0b\r\n",
            "a=tool:\u{1b}[31m\r\n",
            "a=x\ry\r\n",
            "a=\u{85}\r\n",
        ] {
            match inspect_offer(&plain_offer(bad, "")) {
                Err(SfuError::BadSdp(m)) => assert!(m.contains("control character"), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // 1,000 extra m-lines (over the line limit too), or just 20: over the limit.
        let sections = |n| "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(n);
        assert!(matches!(
            inspect_offer(&plain_offer("", &sections(1_000))),
            Err(SfuError::SdpTooComplex(_))
        ));
        assert!(matches!(
            inspect_offer(&plain_offer("", &sections(20))),
            Err(SfuError::SdpTooComplex(m)) if m.contains("m-sections")
        ));
        // 2,000 duplicate rtpmaps are refused; a single duplicate is malformed.
        let dup = |n| "a=rtpmap:96 VP8/90000\r\n".repeat(n);
        assert!(matches!(
            inspect_offer(&plain_offer("", &dup(2_000))),
            Err(SfuError::SdpTooComplex(_) | SfuError::BadSdp(_))
        ));
        assert!(matches!(
            inspect_offer(&plain_offer("", &dup(1))),
            Err(SfuError::BadSdp(m)) if m.contains("mapped twice")
        ));
        // Distinct payload types, but more than exist.
        let distinct: String = (0..=255u16)
            .filter(|pt| *pt != 96)
            .map(|pt| format!("a=rtpmap:{pt} VP8/90000\r\n"))
            .collect();
        assert!(matches!(
            inspect_offer(&plain_offer("", &distinct)),
            Err(SfuError::SdpTooComplex(m)) if m.contains("rtpmap")
        ));
        // Too many lines of any kind; one overlong line.
        let lines = "a=x\r\n".repeat(MAX_SDP_LINES);
        assert!(matches!(
            inspect_offer(&plain_offer("", &lines)),
            Err(SfuError::SdpTooComplex(m)) if m.contains("lines")
        ));
        let long = format!("a=tool:{}\r\n", "x".repeat(MAX_SDP_LINE_LEN));
        assert!(matches!(
            inspect_offer(&plain_offer(&long, "")),
            Err(SfuError::SdpTooComplex(m)) if m.contains("bytes")
        ));
    }

    #[test]
    fn trickle_garbage_is_refused() {
        for bad in [
            "",
            "\r\n",
            "hello world",
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\0\r\n",
            "a=ice-options:trickle\r\n",
            "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
        ] {
            assert!(
                matches!(parse_sdpfrag(bad), Err(SfuError::BadTrickle(_))),
                "{bad:?}"
            );
        }
        let many = "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n".repeat(MAX_SDPFRAG_LINES + 1);
        assert!(matches!(parse_sdpfrag(&many), Err(SfuError::BadTrickle(_))));
        // Only the end of candidates is a valid, if empty-handed, fragment.
        assert!(
            parse_sdpfrag("a=end-of-candidates\r\n")
                .unwrap()
                .end_of_candidates
        );
    }
}

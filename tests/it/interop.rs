//! Interop with a WebRTC stack that is not ours: Debian's GStreamer WHIP
//! client (`simple-whip-client`, binary `whip-client`) publishes a
//! `videotestsrc` pipeline, with trickle ICE over PATCH, and a WHEP viewer
//! receives its video.

use crate::harness::*;
use crate::media::{Live, broadcast_state, exchange, scheduled_broadcast, wait_until, whep_play};
use sfu::testkit::{CountingViewer, Impairment, LinkProfile, Relay, ViewerOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds the gupnp-igd stand-in (see tests/support/gupnp_igd_stub.c for
/// why `whip-client` needs it) into `dir`.
pub fn build_gupnp_stub(dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gupnp_igd_stub.c");
    let status = std::process::Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-Wl,-soname,libgupnp-igd-1.0.so.4",
            "-o",
        ])
        .arg(dir.join("libgupnp-igd-1.0.so.4"))
        .arg(&source)
        .status()
        .expect("run gcc");
    assert!(status.success(), "building the gupnp-igd stub failed");
}

pub const VP8: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
    ! videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 ssrc=2 ! queue \
    ! application/x-rtp,media=video,encoding-name=VP8,payload=96";

/// Constrained baseline with packetization-mode 1, what iPhones and OBS send.
pub const H264: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
    ! videoconvert ! queue ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
    ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 ssrc=2 config-interval=-1 ! queue \
    ! application/x-rtp,media=video,encoding-name=H264,payload=102";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_whip_client_publishes_vp8_and_a_viewer_receives_it() {
    gstreamer_publishes_and_a_viewer_receives(VP8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_whip_client_publishes_h264_and_a_viewer_receives_it() {
    gstreamer_publishes_and_a_viewer_receives(H264).await;
}

/// A running `whip-client` and the stub library directory it needs.
pub struct Gst {
    pub process: tokio::process::Child,
    _stub_dir: tempfile::TempDir,
}

/// Starts GStreamer's WHIP client publishing `video_pipeline` and Opus to
/// `live`, and waits (up to `limit`) until the broadcast is live. `None` when
/// the tool is missing and not required.
pub async fn gstreamer_publish(
    app: &TestApp,
    live: &Live,
    video_pipeline: &str,
    limit: Duration,
) -> Option<Gst> {
    if !tool_available("whip-client", "FIELDCAST_REQUIRE_GSTREAMER")
        || !tool_available("gcc", "FIELDCAST_REQUIRE_GSTREAMER")
    {
        return None;
    }
    let stub_dir = tempfile::tempdir().unwrap();
    build_gupnp_stub(stub_dir.path());
    let whip_url = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));
    let mut publisher = tokio::process::Command::new("whip-client")
        .env("LD_LIBRARY_PATH", stub_dir.path())
        .args(["-u", &whip_url, "-t", &live.stream_key, "-l", "4", "-o"])
        .args(["-V", video_pipeline])
        .args([
            "-A",
            "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc \
             ! rtpopuspay pt=100 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start whip-client");

    // The broadcast goes live with GStreamer's first media packet.
    let deadline = Instant::now() + limit;
    loop {
        if broadcast_state(app, &live.broadcast).await == "live" {
            break;
        }
        if let Ok(Some(status)) = publisher.try_wait() {
            let out = publisher.wait_with_output().await.unwrap();
            panic!(
                "whip-client exited ({status}) before going live:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if Instant::now() >= deadline {
            publisher.kill().await.ok();
            let out = publisher.wait_with_output().await.unwrap();
            panic!(
                "the GStreamer publisher never made the broadcast live in {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Gst {
        process: publisher,
        _stub_dir: stub_dir,
    })
}

async fn gstreamer_publishes_and_a_viewer_receives(video_pipeline: &str) {
    // GStreamer gathers host candidates on the machine's real interfaces,
    // so the SFU offers those too (plus loopback for the webrtc-rs viewer).
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.media.bind_ips.clear();
        config.media.include_loopback = true;
    })
    .await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let Some(mut gst) =
        gstreamer_publish(&app, &live, video_pipeline, Duration::from_secs(20)).await
    else {
        return;
    };
    let (viewer, _) = whep_play(&app, &live.broadcast)
        .await
        .expect("WHEP viewer connects");
    assert!(
        wait_until(Duration::from_secs(15), || viewer.video_packets() > 50
            && viewer.keyframes() > 0)
        .await,
        "viewer receives GStreamer's video: {} packets, {} keyframes, {} audio",
        viewer.video_packets(),
        viewer.keyframes(),
        viewer.audio_packets()
    );
    assert!(viewer.audio_packets() > 0, "and its audio");
    viewer.close().await;
    gst.process.kill().await.ok();
    app.shutdown().await;
}

/// A server whose media is reached through a [`Relay`] with `profile`: the SFU
/// binds 127.0.0.1 and advertises the machine's own address (its 1:1 NAT
/// setting), where the relay listens on the same port, so a client that gathers
/// and signals on its own (GStreamer, which pairs only its non-loopback
/// candidates) can only reach it through the relay.
async fn server_behind_relay(profile: LinkProfile) -> (TestApp, Relay, SocketAddr) {
    let host = sfu::testkit::host_ipv4().expect("a non-loopback IPv4 address for GStreamer");
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.media.bind_ips = vec![IpAddr::from([127, 0, 0, 1])];
        config.media.include_loopback = true;
        config.media.public_ips = vec![host];
        config.media.tcp_port = None;
    })
    .await;
    let (bound, advertised) = app.server.as_ref().unwrap().sfu.udp_addresses()[0];
    let relay = Relay::in_front_of(advertised, bound, profile)
        .await
        .expect("relay listens on the advertised address");
    (app, relay, bound)
}

/// A webrtc-rs viewer: its answer is pointed past the server's relay, at the
/// address the SFU is bound to; with a `link`, through a relay of its own.
async fn direct_viewer(
    app: &TestApp,
    broadcast: &str,
    bound: SocketAddr,
    link: Option<LinkProfile>,
) -> CountingViewer {
    let url = app.url(&format!("/api/v1/broadcasts/{broadcast}/whep"));
    let location = Arc::new(Mutex::new(None));
    let host = sfu::testkit::host_ipv4().expect("a non-loopback IPv4 address");
    let port = bound.port();
    let opts = ViewerOptions {
        link,
        ..Default::default()
    };
    CountingViewer::connect(opts, move |offer| async move {
        let answer = exchange(url, None, offer, location).await?;
        Ok(answer.replace(
            &format!("{host} {port} typ"),
            &format!("127.0.0.1 {port} typ"),
        ))
    })
    .await
    .expect("WHEP viewer connects")
}

/// Phone networks reorder: packets of one DTLS flight overtake each other. The
/// publisher's handshake must complete anyway (it once failed every time at 0–10 ms
/// of jitter: an early Finished was thrown away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_publisher_behind_a_reordering_path_goes_live() {
    let path = Impairment::delayed(Duration::from_millis(15), Duration::from_millis(10));
    let (app, relay, bound) = server_behind_relay(LinkProfile::symmetric(path)).await;
    let live = scheduled_broadcast(&app, "13800138001").await;
    // A handshake that needs no retransmission is done in well under 2 s; allow
    // for a slow machine, not for retransmission rounds (1 s, 2 s, 4 s, ...).
    let Some(mut gst) = gstreamer_publish(&app, &live, VP8, Duration::from_secs(15)).await else {
        return;
    };
    let viewer = direct_viewer(&app, &live.broadcast, bound, None).await;
    assert!(
        wait_until(Duration::from_secs(15), || viewer.frames_decoded() > 30).await,
        "the viewer watches: {} frames, {} packets; relay {:?}",
        viewer.frames_decoded(),
        viewer.video_packets(),
        relay.stats()
    );
    viewer.close().await;
    gst.process.kill().await.ok();
    app.shutdown().await;
}

/// A farmer's uplink on rural 4G: 150 ms each way and 5 % of the datagrams lost,
/// with a publisher that resends nothing (GStreamer offers no RTX) and sends
/// keyframes only when asked. A viewer on a clean link must keep seeing the
/// picture: it once froze at the first lost packet until a player gave up and
/// asked for a keyframe (under 6 frames a second of 15 in a 25 s run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_keeps_watching_a_publisher_on_a_lossy_uplink() {
    watch_through_loss(None, 75).await;
}

/// The same farmer, and a viewer on the same kind of link (300 ms round trip, 5 %
/// loss each way): the SFU answers the viewer's NACKs from its cache, and its
/// losses upstream are not read as the viewer's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_a_lossy_link_keeps_watching_a_publisher_on_one() {
    watch_through_loss(Some(LinkProfile::symmetric(rural_4g())), 60).await;
}

/// 150 ms each way and 5 % of the datagrams lost.
fn rural_4g() -> Impairment {
    Impairment::delayed(Duration::from_millis(150), Duration::ZERO).with_loss(0.05)
}

/// GStreamer publishes behind [`rural_4g`]; a viewer on `viewer_link` (clean if
/// `None`) must decode at least `min_frames` of the 150 frames of 10 s.
async fn watch_through_loss(viewer_link: Option<LinkProfile>, min_frames: u64) {
    let (app, relay, bound) = server_behind_relay(LinkProfile::symmetric(rural_4g())).await;
    let live = scheduled_broadcast(&app, "13800138002").await;
    let pipeline = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
        ! videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=100000 ! rtpvp8pay pt=96 ssrc=2 ! queue \
        ! application/x-rtp,media=video,encoding-name=VP8,payload=96";
    let Some(mut gst) = gstreamer_publish(&app, &live, pipeline, Duration::from_secs(30)).await
    else {
        return;
    };
    let viewer = direct_viewer(&app, &live.broadcast, bound, viewer_link).await;
    assert!(
        wait_until(Duration::from_secs(15), || viewer.frames_decoded() > 0).await,
        "the first picture arrives: {} packets, relay {:?}",
        viewer.video_packets(),
        relay.stats()
    );
    let (frames_before, packets_before) = (viewer.frames_decoded(), viewer.video_packets());
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let frames = viewer.frames_decoded() - frames_before;
    let packets = viewer.video_packets() - packets_before;
    let stats = app.server.as_ref().unwrap().sfu.room_stats(&live.broadcast);
    eprintln!(
        "lossy uplink: {frames} frames decoded in {window:?} ({packets} packets), \
         keyframe requests sent {:?}, relay {:?}",
        stats.as_ref().map(|s| s.keyframe_requests_sent),
        relay.stats().random_drops
    );
    // 15 frames a second are sent; a lost packet costs the frames up to the
    // next keyframe, which the SFU now asks for itself.
    assert!(
        frames >= min_frames,
        "the viewer decoded {frames} frames in {window:?} of 150 sent"
    );
    viewer.close().await;
    gst.process.kill().await.ok();
    app.shutdown().await;
}

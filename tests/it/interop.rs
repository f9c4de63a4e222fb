//! Interop with a WebRTC stack that is not ours: Debian's GStreamer WHIP
//! client (`simple-whip-client`, binary `whip-client`) publishes a
//! `videotestsrc` pipeline, with trickle ICE over PATCH, and a WHEP viewer
//! receives its video.

use crate::harness::*;
use crate::media::{scheduled_broadcast, wait_until, whep_play};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Builds the gupnp-igd stand-in (see tests/support/gupnp_igd_stub.c for
/// why `whip-client` needs it) into `dir`.
fn build_gupnp_stub(dir: &Path) {
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

const VP8: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
    ! videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 ssrc=2 ! queue \
    ! application/x-rtp,media=video,encoding-name=VP8,payload=96";

/// Constrained baseline with packetization-mode 1, what iPhones and OBS send.
const H264: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
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

async fn gstreamer_publishes_and_a_viewer_receives(video_pipeline: &str) {
    if !tool_available("whip-client", "FIELDCAST_REQUIRE_GSTREAMER")
        || !tool_available("gcc", "FIELDCAST_REQUIRE_GSTREAMER")
    {
        return;
    }
    // GStreamer gathers host candidates on the machine's real interfaces,
    // so the SFU offers those too (plus loopback for the webrtc-rs viewer).
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.media.bind_ips.clear();
        config.media.include_loopback = true;
    })
    .await;
    let live = scheduled_broadcast(&app, "13800138000").await;
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

    // The broadcast goes live when GStreamer's peer connection is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = app.client();
    loop {
        let b = expect(
            app.get(&client, &format!("/api/v1/broadcasts/{}", live.broadcast))
                .await,
            reqwest::StatusCode::OK,
        )
        .await;
        if b["state"] == "live" {
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
        assert!(
            Instant::now() < deadline,
            "the GStreamer publisher never made the broadcast live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
    publisher.kill().await.ok();
    app.shutdown().await;
}

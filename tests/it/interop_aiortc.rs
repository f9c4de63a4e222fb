//! Interop with aiortc (Python), a WebRTC stack that shares nothing with
//! webrtc-rs: its own ICE, DTLS (OpenSSL), SRTP (libsrtp) and codecs (libvpx,
//! libx264 through PyAV). An aiortc phone stand-in publishes over WHIP, and an
//! aiortc viewer watches over WHEP and decodes the pictures.
//!
//! Needs `python3` with `aiortc` (`pip install aiortc`); the script is
//! tests/support/aiortc_peer.py. Skipped without it, unless
//! FIELDCAST_REQUIRE_AIORTC=1 (CI).

use crate::harness::*;
use crate::media::scheduled_broadcast;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("FIELDCAST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn aiortc_available() -> bool {
    let ok = std::process::Command::new(python())
        .args(["-c", "import aiortc, av"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("FIELDCAST_REQUIRE_AIORTC").as_deref() != Ok("1"),
            "aiortc is required (FIELDCAST_REQUIRE_AIORTC=1): pip install aiortc"
        );
        eprintln!("SKIPPED: python3 with aiortc not found");
    }
    ok
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/aiortc_peer.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_vp8_and_an_aiortc_viewer_decodes_it() {
    aiortc_publishes_and_aiortc_decodes("vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_h264_and_an_aiortc_viewer_decodes_it() {
    aiortc_publishes_and_aiortc_decodes("h264").await;
}

async fn aiortc_publishes_and_aiortc_decodes(codec: &str) {
    if !aiortc_available() {
        return;
    }
    // aiortc gathers host candidates on the machine's interfaces, not only
    // loopback, like GStreamer.
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.media.bind_ips.clear();
        config.media.include_loopback = true;
    })
    .await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let whip = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", live.broadcast));

    let mut publisher = tokio::process::Command::new(python())
        .arg(script())
        .args(["publish", &whip, &live.stream_key, "60", codec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the aiortc publisher");

    let client = app.client();
    let deadline = Instant::now() + Duration::from_secs(30);
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
                "the aiortc publisher exited ({status}) before going live:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the aiortc publisher never made the broadcast live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let viewer = tokio::process::Command::new(python())
        .arg(script())
        .args(["view", &whep, "12"])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), viewer)
        .await
        .expect("the aiortc viewer finished")
        .expect("run the aiortc viewer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "the aiortc viewer said nothing readable:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("aiortc viewer saw {seen}");
    // 15 fps for ~12 s; a slow machine decodes fewer, a broken relay none.
    let frames = seen["video_frames"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "decoded {frames} frames: {seen}");
    assert!(
        seen["distinct"].as_u64().unwrap_or(0) >= 10,
        "the pictures move: {seen}"
    );
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(320), Some(240)),
        "{seen}"
    );
    assert!(
        seen["audio_frames"].as_u64().unwrap_or(0) > 0,
        "and the tone: {seen}"
    );
    publisher.kill().await.ok();
    app.shutdown().await;
}

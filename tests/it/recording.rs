//! Recordings read back by an independent tool (ffprobe, from FFmpeg): a
//! GStreamer-published broadcast is recorded while it is relayed.

use crate::crash::{phone, start_server};
use crate::harness::*;
use crate::interop::{H264, VP8, build_gupnp_stub, gstreamer_publish};
use crate::media::{broadcast_state, scheduled_broadcast};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Segment files under the server's recordings directory.
pub(crate) fn recorded_files(app: &TestApp) -> Vec<PathBuf> {
    files_under(&app.config.data_dir)
}

/// Segment files under `<data_dir>/recordings`.
fn files_under(data_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "webm" || e == "mkv") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("recordings"), &mut out);
    out.sort();
    out
}

/// `ffprobe`'s codec names and duration (seconds; `None` when it reports none).
fn probe(file: &Path) -> (Vec<String>, Option<f64>) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe reads {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let codecs = text
        .lines()
        .filter_map(|l| l.strip_prefix("codec_name="))
        .map(str::to_owned)
        .collect();
    let duration = text
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok());
    (codecs, duration)
}

/// Decodes the whole file with FFmpeg; the error lines, if any.
fn decode_errors(file: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg decodes {}", file.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The time of the last video frame FFmpeg finds in a file (seconds).
fn last_video_frame(file: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(0.0, f64::max)
}

pub(crate) fn ffmpeg_available() -> bool {
    tool_available("ffprobe", "FIELDCAST_REQUIRE_GSTREAMER")
        && tool_available("ffmpeg", "FIELDCAST_REQUIRE_GSTREAMER")
}

pub(crate) async fn spawn(quota_bytes: Option<u64>) -> TestApp {
    TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.media.bind_ips.clear();
        config.media.include_loopback = true;
        if let Some(quota) = quota_bytes {
            config.recording_quota_bytes = quota;
        }
    })
    .await
}

/// Waits until the first segment file appears; returns it and when.
pub(crate) async fn first_file(app: &TestApp, limit: Duration) -> (PathBuf, Instant) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(file) = recorded_files(app).into_iter().next() {
            return (file, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "no recording file within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn records_and_plays_back(video_pipeline: &str, video_codec: &str, extension: &str) {
    if !ffmpeg_available() {
        return;
    }
    let mut app = spawn(None).await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let Some(mut gst) =
        gstreamer_publish(&app, &live, video_pipeline, Duration::from_secs(20)).await
    else {
        return;
    };
    let (file, started) = first_file(&app, Duration::from_secs(15)).await;
    assert_eq!(file.extension().unwrap(), extension);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // What a crash at this moment leaves on disk: every cluster written so far.
    let snapshot = tempfile::Builder::new()
        .suffix(&format!(".{extension}"))
        .tempfile()
        .unwrap();
    std::fs::copy(&file, snapshot.path()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    gst.process.kill().await.ok();
    let published = started.elapsed().as_secs_f64();
    let cut = last_video_frame(snapshot.path());
    assert!(
        cut > 2.0,
        "the unfinished file plays up to the cut: {cut} s"
    );
    // FFmpeg decodes it to the end (it exits non-zero on a file it cannot
    // read); the half-written last cluster may add error lines, so those are
    // not counted.
    decode_errors(snapshot.path());
    // Shutting down ends the room; the recorder then finishes the file.
    // (The app stays: its data directory goes with it.)
    let server = app.server.take().expect("running");
    server.shutdown().await.expect("clean shutdown");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (codecs, duration) = loop {
        let (codecs, duration) = probe(&file);
        if duration.is_some_and(|d| d > 0.0) || Instant::now() > deadline {
            break (codecs, duration);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(codecs, [video_codec, "opus"]);
    let duration = duration.expect("a finished file has a duration");
    assert!(
        (duration - published).abs() < 1.0,
        "recorded {duration:.2} s of a {published:.2} s broadcast"
    );
    // For BENCHMARKS.md (run with --nocapture): disk use of this test stream.
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "recording {video_codec}: {duration:.2} s, {bytes} bytes, {:.2} MB/min",
        bytes as f64 / 1e6 / duration * 60.0
    );
    let errors = decode_errors(&file);
    if errors.lines().count() > 2 {
        // Kept for whoever looks into it (CI keeps the artifacts).
        let kept = crate::browser::artifacts_dir().join(format!(
            "recording-{video_codec}.{}",
            file.extension().and_then(|e| e.to_str()).unwrap_or("bin")
        ));
        let _ = std::fs::copy(&file, &kept);
        panic!(
            "the whole file decodes; FFmpeg says (file kept as {}):\n{errors}",
            kept.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gstreamer_vp8_broadcast_is_recorded_to_webm_that_ffprobe_reads() {
    records_and_plays_back(VP8, "vp8", "webm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gstreamer_h264_broadcast_is_recorded_to_matroska_that_ffprobe_reads() {
    records_and_plays_back(H264, "h264", "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_recording_quota_stops_the_recording_and_not_the_broadcast() {
    if !ffmpeg_available() {
        return;
    }
    let quota = 60_000;
    let app = spawn(Some(quota)).await;
    let live = scheduled_broadcast(&app, "13800138001").await;
    let Some(mut gst) = gstreamer_publish(&app, &live, VP8, Duration::from_secs(20)).await else {
        return;
    };
    let (file, _) = first_file(&app, Duration::from_secs(15)).await;
    let metrics = app.url("/metrics");
    let stopped = wait_for(Duration::from_secs(20), || async {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        text.contains("fieldcast_recordings_stopped_total{reason=\"quota\"}")
    })
    .await;
    assert!(
        stopped,
        "the operator sees the recording stopped on the quota"
    );
    let path = format!("/api/v1/broadcasts/{}/recording", live.broadcast);
    let studio = expect(app.get(&live.owner, &path).await, StatusCode::OK).await;
    assert_eq!(studio["state"], "stopped", "{studio}");
    let error = studio["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("full") && error.contains("the broadcast goes on"),
        "the studio page can say why: {error}"
    );
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        size <= quota + 16_384,
        "the file stayed within the quota (and its closing cues): {size}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        size,
        "nothing more is written"
    );
    assert_eq!(
        broadcast_state(&app, &live.broadcast).await,
        "live",
        "the broadcast goes on"
    );
    let (codecs, _) = probe(&file);
    assert_eq!(codecs, ["vp8", "opus"], "what was recorded still plays");
    gst.process.kill().await.ok();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farmer_switches_recording_off_for_one_broadcast() {
    let app = spawn(None).await;
    let live = scheduled_broadcast(&app, "13800138003").await;
    let path = format!("/api/v1/broadcasts/{}/recording", live.broadcast);
    let before = expect(app.get(&live.owner, &path).await, StatusCode::OK).await;
    assert_eq!(
        (before["enabled"].as_bool(), before["state"].as_str()),
        (Some(true), Some("idle"))
    );
    let stranger = app.client();
    app.sign_up(&stranger, "13900139000", "李").await;
    let res = stranger
        .put(app.url(&path))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "only the owner");
    let res = live
        .owner
        .put(app.url(&path))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    let off = expect(res, StatusCode::OK).await;
    assert_eq!(
        (off["enabled"].as_bool(), off["state"].as_str()),
        (Some(false), Some("off"))
    );
    if !ffmpeg_available() {
        return;
    }
    let Some(mut gst) = gstreamer_publish(&app, &live, VP8, Duration::from_secs(20)).await else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        recorded_files(&app).is_empty(),
        "nothing recorded: {:?}",
        recorded_files(&app)
    );
    assert_eq!(broadcast_state(&app, &live.broadcast).await, "live");
    gst.process.kill().await.ok();
    app.shutdown().await;
}

/// A real crash: the server process is SIGKILLed mid-broadcast; its
/// recording plays up to (about a second before) the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_off_by_killing_the_server_still_plays() {
    if !ffmpeg_available()
        || !tool_available("whip-client", "FIELDCAST_REQUIRE_GSTREAMER")
        || !tool_available("gcc", "FIELDCAST_REQUIRE_GSTREAMER")
    {
        return;
    }
    let db = store::testing::TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = start_server(&db.url, data_dir.path()).await;
    let base = server.base.clone();
    let owner = phone(&base);
    let post = |path: &str, body: serde_json::Value| {
        let request = owner.post(format!("{base}{path}")).json(&body);
        async move {
            let res = request.send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    post(
        "/api/v1/accounts",
        serde_json::json!({"mobile": "13800138002", "password": "correct horse battery", "display_name": "王"}),
    )
    .await;
    let shop = post(
        "/api/v1/shops",
        serde_json::json!({"name": "小米", "place": "岢岚县"}),
    )
    .await;
    let shop = shop["id"].as_str().unwrap();
    let broadcast = post(
        &format!("/api/v1/shops/{shop}/broadcasts"),
        serde_json::json!({"title": "直播"}),
    )
    .await;
    let broadcast = broadcast["id"].as_str().unwrap();
    let key: serde_json::Value = owner
        .get(format!("{base}/api/v1/broadcasts/{broadcast}/stream-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stub_dir = tempfile::tempdir().unwrap();
    build_gupnp_stub(stub_dir.path());
    let mut publisher = tokio::process::Command::new("whip-client")
        .env("LD_LIBRARY_PATH", stub_dir.path())
        .args(["-u", &format!("{base}/api/v1/broadcasts/{broadcast}/whip")])
        .args(["-t", key["stream_key"].as_str().unwrap(), "-l", "4", "-o"])
        .args(["-V", VP8])
        .args([
            "-A",
            "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc \
             ! rtpopuspay pt=100 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=100",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start whip-client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        if let Some(file) = files_under(data_dir.path()).into_iter().next() {
            break file;
        }
        assert!(Instant::now() < deadline, "no recording file within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.child.start_kill().expect("SIGKILL");
    server.child.wait().await.unwrap();
    publisher.kill().await.ok();
    let (codecs, _) = probe(&file);
    assert_eq!(codecs, ["vp8", "opus"]);
    let cut = last_video_frame(&file);
    assert!(
        cut > 3.0,
        "the file plays up to the crash: its last frame is at {cut:.2} s of 5"
    );
    // As above: the cluster being written at the kill may be cut in half.
    decode_errors(&file);
}

async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

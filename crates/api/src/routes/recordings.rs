//! A broadcast's recording, for its owner's studio page: whether it is on,
//! and how it is going (an error such as a full disk shows here; the
//! broadcast itself goes on).

use super::broadcasts::owned_broadcast;
use crate::auth::SignedIn;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use recorder::RecordingState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_recording, set_recording))
}

#[derive(Serialize, ToSchema)]
pub struct RecordingView {
    /// Whether the broadcast is recorded when it is live.
    pub enabled: bool,
    /// `off`, `idle` (not recorded yet), `recording`, `stopped` (on an error) or `finished`.
    #[schema(example = "recording")]
    pub state: &'static str,
    /// Why recording stopped, for people.
    pub error: Option<String>,
    /// Segment files (a new one after each reconnect).
    pub segments: u32,
    /// Bytes on disk.
    pub bytes: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct RecordingSwitch {
    /// `false` switches recording off for this broadcast (from its next time live).
    pub enabled: bool,
}

fn recordings(state: &AppState) -> ApiResult<&recorder::Recordings> {
    state
        .recordings
        .as_ref()
        .ok_or(ApiError::NotFound("recording"))
}

fn view(recordings: &recorder::Recordings, broadcast: &str) -> RecordingView {
    let enabled = recordings.enabled(broadcast);
    let (state, error, segments, bytes) = match recordings.state(broadcast) {
        Some(RecordingState::Off) => ("off", None, 0, 0),
        None => ("idle", None, 0, 0),
        Some(RecordingState::Recording { segments, bytes }) => ("recording", None, segments, bytes),
        Some(RecordingState::Stopped { error }) => ("stopped", Some(error), 0, 0),
        Some(RecordingState::Finished { segments, bytes }) => ("finished", None, segments, bytes),
    };
    RecordingView {
        enabled,
        state,
        error,
        segments,
        bytes,
    }
}

/// The broadcast's recording (owner only).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/recording", tag = "broadcasts",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = RecordingView), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn get_recording(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    let broadcast = owned_broadcast(&state, &broadcast_id, &me).await?.broadcast;
    let recordings = recordings(&state)?;
    Ok(Json(view(recordings, broadcast.id.as_str())))
}

/// Switch recording on or off for the broadcast (owner only).
#[utoipa::path(put, path = "/broadcasts/{broadcast_id}/recording", tag = "broadcasts",
    params(("broadcast_id" = String, Path)), request_body = RecordingSwitch,
    responses((status = 200, body = RecordingView), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn set_recording(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
    Json(switch): Json<RecordingSwitch>,
) -> ApiResult<Json<RecordingView>> {
    let broadcast = owned_broadcast(&state, &broadcast_id, &me).await?.broadcast;
    let recordings = recordings(&state)?;
    let id = broadcast.id.as_str();
    recordings
        .set_enabled(id, switch.enabled)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("switching recording: {e}")))?;
    tracing::info!(
        broadcast = id,
        enabled = switch.enabled,
        "recording switched"
    );
    Ok(Json(view(recordings, id)))
}

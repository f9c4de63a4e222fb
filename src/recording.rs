//! Records every broadcast while it is live: each room that goes live is
//! tapped and handed to the recorder (which asks for a keyframe to start on).
//! A recording that fails stops on its own; the broadcast is never touched.

use tokio::sync::broadcast::error::RecvError;

/// Reacts to rooms going live until the SFU stops.
pub async fn record_live_rooms(sfu: sfu::Sfu, recordings: recorder::Recordings) {
    let mut events = sfu.events();
    loop {
        let room = match events.recv().await {
            Ok(sfu::SfuEvent::RoomLive { room }) => room,
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the recorder fell behind the SFU's events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(tap) = sfu.tap(&room).await else {
            continue;
        };
        let (sfu, recordings) = (sfu.clone(), recordings.clone());
        tokio::spawn(async move { recordings.record(sfu, room, tap).await });
    }
}

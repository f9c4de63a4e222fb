//! The operator's view of the cluster: every node alive now, its load, and
//! the leases it holds. Behind the operator token (`--operator-token`).

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use crate::views::Timestamp;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, request::Parts};
use domain::UnixMillis;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster_status))
}

/// The caller showed the operator token as `Authorization: Bearer …`.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = &state.settings.operator_token else {
            return Err(ApiError::NotFound("operator API (set an operator token)"));
        };
        let shown = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(shown.as_bytes().ct_eq(token.as_bytes())) {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthenticated)
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node_id: String,
    /// Every node alive now, by id.
    pub nodes: Vec<NodeView>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// Changes at every start of the node's process.
    pub instance: String,
    pub http_url: String,
    /// Media addresses it advertises to WebRTC peers.
    pub media: Vec<String>,
    pub version: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub viewers: u64,
    pub sockets: u64,
    /// Percent of one core.
    pub cpu_percent: f32,
    pub egress_bps: u64,
    /// NATS round trip of its last heartbeat: its cluster lag.
    pub heartbeat_rtt_ms: f32,
    /// The leases it holds (rooms, offers…).
    pub owns: Vec<OwnedLease>,
}

#[derive(Serialize, ToSchema)]
pub struct OwnedLease {
    /// What is led, e.g. `room` or `offer`.
    pub kind: String,
    pub id: String,
    pub since: Timestamp,
}

/// The nodes of this cluster, their load and what each owns (operators:
/// `Authorization: Bearer <operator token>`).
#[utoipa::path(get, path = "/cluster", tag = "operators",
    responses((status = 200, body = ClusterView),
              (status = 401, body = crate::error::Problem, description = "no or wrong operator token"),
              (status = 404, body = crate::error::Problem, description = "not in cluster mode, or no operator token is set"),
              (status = 503, body = crate::error::Problem, description = "NATS unreachable")))]
async fn cluster_status(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<Json<ClusterView>> {
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::NotFound("cluster (this node runs alone)"));
    };
    let unreachable = |e: cluster::ClusterError| {
        tracing::warn!(error = %e, "cluster status: NATS");
        ApiError::Unavailable("the cluster's NATS server does not answer")
    };
    let nodes = cluster
        .nodes()
        .await
        .map_err(unreachable)?
        .list()
        .await
        .map_err(unreachable)?;
    let leases = cluster
        .leases()
        .await
        .map_err(unreachable)?
        .all()
        .await
        .map_err(unreachable)?;
    Ok(Json(ClusterView {
        node_id: cluster.node_id().to_owned(),
        nodes: nodes
            .into_iter()
            .map(|n| NodeView {
                owns: leases
                    .iter()
                    .filter(|(_, _, holder)| holder.node == n.id)
                    .map(|(kind, id, holder)| OwnedLease {
                        kind: kind.clone(),
                        id: id.clone(),
                        since: Timestamp(UnixMillis::from_millis(holder.since_ms)),
                    })
                    .collect(),
                id: n.id,
                instance: n.instance,
                http_url: n.http_url,
                media: n.media,
                version: n.version,
                started_at: Timestamp(UnixMillis::from_millis(n.started_at_ms)),
                heartbeat_at: Timestamp(UnixMillis::from_millis(n.heartbeat_at_ms)),
                viewers: n.load.viewers,
                sockets: n.load.sockets,
                cpu_percent: n.load.cpu_percent,
                egress_bps: n.load.egress_bps,
                heartbeat_rtt_ms: n.load.heartbeat_rtt_ms,
            })
            .collect(),
    }))
}

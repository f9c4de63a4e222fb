//! Setting the stage over the public HTTP API, as a farmer and as viewers
//! would: an account, a shop, a broadcast and its stream key, a product and
//! a live offer; guest sessions for buyers and chatters.

use crate::error::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The session cookie's name (see `docs/protocol.md`, "Connecting").
pub const SESSION_COOKIE: &str = "fieldcast_session";

/// Checks the status and returns the JSON body.
pub(crate) async fn expect_json(
    what: &str,
    res: reqwest::Response,
    want: StatusCode,
) -> Result<Value> {
    let status = res.status();
    let text = res.text().await?;
    if status != want {
        return Err(Error::Http {
            what: what.to_owned(),
            status: status.as_u16(),
            body: text,
        });
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{what}: {e}: {text}")))
}

/// A client that sends `base`'s `Origin` like the site's own pages do: the
/// server refuses writes that carry a session cookie and no Origin.
pub(crate) fn site_client(base: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(origin) = base.trim_end_matches('/').parse() {
        headers.insert(reqwest::header::ORIGIN, origin);
    }
    Client::builder().default_headers(headers)
}

fn str_field(v: &Value, field: &str, what: &str) -> Result<String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid(format!("{what}: no {field:?} in {v}")))
}

/// A farmer signed in (cookie jar) with a shop.
pub struct Farmer {
    /// Carries the farmer's session cookie.
    pub http: Client,
    /// Shop id.
    pub shop: String,
    base: String,
}

/// A broadcast and the key to publish into it.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// Broadcast id (`brd_…`).
    pub id: String,
    /// Stream key (WHIP bearer token).
    pub stream_key: String,
}

impl Farmer {
    /// Signs up a new account (unique mobile per run) and opens a shop.
    pub async fn sign_up(base: &str) -> Result<Farmer> {
        let http = site_client(base).cookie_store(true).build()?;
        // A fresh database per run, but an attached server may be reused:
        // pick a random valid mainland mobile number.
        let mobile = format!("139{:08}", rand::random::<u32>() % 100_000_000);
        let res = http
            .post(format!("{base}/api/v1/accounts"))
            .json(&json!({"mobile": mobile, "password": "load generator farmer", "display_name": "压测农户"}))
            .send()
            .await?;
        expect_json("sign up", res, StatusCode::CREATED).await?;
        let res = http
            .post(format!("{base}/api/v1/shops"))
            .json(&json!({"name": "压测小米", "place": "山西 岢岚县", "story": "load test"}))
            .send()
            .await?;
        let shop = expect_json("create shop", res, StatusCode::CREATED).await?;
        Ok(Farmer {
            shop: str_field(&shop, "id", "create shop")?,
            http,
            base: base.to_owned(),
        })
    }

    /// A scheduled broadcast and its stream key.
    pub async fn broadcast(&self, title: &str) -> Result<Broadcast> {
        let res = self
            .http
            .post(format!(
                "{}/api/v1/shops/{}/broadcasts",
                self.base, self.shop
            ))
            .json(&json!({"title": title}))
            .send()
            .await?;
        let b = expect_json("create broadcast", res, StatusCode::CREATED).await?;
        let id = str_field(&b, "id", "create broadcast")?;
        let res = self
            .http
            .get(format!("{}/api/v1/broadcasts/{id}/stream-key", self.base))
            .send()
            .await?;
        let key = expect_json("stream key", res, StatusCode::OK).await?;
        Ok(Broadcast {
            stream_key: str_field(&key, "stream_key", "stream key")?,
            id,
        })
    }

    /// A product with `stock` units and an open offer of `quantity` of them
    /// in `broadcast`, at most `per_buyer_limit` per buyer. Returns the offer id.
    pub async fn offer(
        &self,
        broadcast: &str,
        quantity: u32,
        per_buyer_limit: u32,
    ) -> Result<String> {
        let res = self
            .http
            .post(format!("{}/api/v1/shops/{}/products", self.base, self.shop))
            .json(&json!({"title": "羊粪小米 5斤装", "unit": "袋", "price_fen": 6800, "stock": quantity}))
            .send()
            .await?;
        let product = expect_json("create product", res, StatusCode::CREATED).await?;
        let res = self
            .http
            .post(format!(
                "{}/api/v1/broadcasts/{broadcast}/offers",
                self.base
            ))
            .json(&json!({
                "product_id": product["id"],
                "price_fen": 6800,
                "quantity": quantity,
                "per_buyer_limit": per_buyer_limit,
            }))
            .send()
            .await?;
        let offer = expect_json("create offer", res, StatusCode::CREATED).await?;
        str_field(&offer, "id", "create offer")
    }

    /// The broadcast's state (`scheduled`, `live`, `ended`).
    pub async fn broadcast_state(&self, broadcast: &str) -> Result<String> {
        let res = self
            .http
            .get(format!("{}/api/v1/broadcasts/{broadcast}", self.base))
            .send()
            .await?;
        let b = expect_json("broadcast", res, StatusCode::OK).await?;
        str_field(&b, "state", "broadcast")
    }

    /// The owner's media statistics of a broadcast (`GET …/stats`).
    pub async fn media_stats(&self, broadcast: &str) -> Result<Value> {
        let res = self
            .http
            .get(format!("{}/api/v1/broadcasts/{broadcast}/stats", self.base))
            .send()
            .await?;
        expect_json("media stats", res, StatusCode::OK).await
    }
}

/// A guest session: what a phone that picked a nickname holds.
#[derive(Debug, Clone)]
pub struct Guest {
    /// `fieldcast_session=<token>`, ready for a `Cookie` header.
    pub cookie: String,
    /// The guest's subject (`gst_…`).
    pub subject: String,
}

/// The address the `n`th simulated phone claims to come from (in
/// 100.64.0.0/10, the carrier-NAT range). A server started by this
/// generator trusts loopback as a proxy, so each simulated phone gets its
/// own per-address limits as real phones would; a server started by hand
/// must list the generator's address in `trusted_proxies` for the same.
pub fn simulated_client(n: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x6440_0000u32 + (n as u32 % 0x40_0000))
}

/// Starts a guest session (`POST /api/v1/guest`) for a phone at `from`.
pub async fn guest(
    http: &Client,
    base: &str,
    nickname: &str,
    from: std::net::Ipv4Addr,
) -> Result<Guest> {
    let res = http
        .post(format!("{base}/api/v1/guest"))
        .header("x-forwarded-for", from.to_string())
        .json(&json!({"nickname": nickname}))
        .send()
        .await?;
    let cookie = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?.trim();
            pair.starts_with(&format!("{SESSION_COOKIE}="))
                .then(|| pair.to_owned())
        })
        .ok_or_else(|| Error::Invalid("guest: no session cookie in the answer".into()));
    let me = expect_json("guest", res, StatusCode::CREATED).await?;
    Ok(Guest {
        cookie: cookie?,
        subject: str_field(&me, "id", "guest")?,
    })
}

/// `n` guests, `concurrency` sign-ups at a time (each is a database write).
pub async fn guests(base: &str, n: usize, concurrency: usize, prefix: &str) -> Result<Vec<Guest>> {
    let http = Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let nickname = format!("{prefix}{i}");
            async move { guest(&http, base, &nickname, simulated_client(i)).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

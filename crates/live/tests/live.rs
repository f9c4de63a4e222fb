//! The live channel end to end: real websocket clients (tokio-tungstenite)
//! against an axum server on port 0 whose route hands sockets to the hub,
//! over a fresh SQLite database per test.
//!
//! The route here plays the HTTP layer's part: `?who=<name>` stands for the
//! session cookie, and the test decides each name's identity and role.

use axum::Router;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use domain::*;
use futures::{SinkExt, StreamExt};
use live::{Commerce, LiveConfig, LiveHub, Participant, RoomInfo};
use protocol::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::testing::TestDb;
use store::{NewBroadcast, NewShop, Store};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Generous: a loaded 2-core CI machine, debug build.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The order service's stand-in (the other team's service; tests only)
// ---------------------------------------------------------------------------

#[derive(Default)]
struct ShelfCommerce {
    offers: Mutex<HashMap<OfferId, OfferCard>>,
    reservations: Mutex<HashMap<String, ReservationInfo>>,
}

impl ShelfCommerce {
    fn stock(&self, title: &str, available: u32) -> OfferCard {
        let card = OfferCard {
            offer: OfferId::generate(),
            title: ProductTitle::parse(title).unwrap(),
            unit: Unit::parse("袋").unwrap(),
            price_fen: Fen::price(6800).unwrap(),
            available,
            sold: 0,
            state: OfferState::Open,
            starts_at: None,
            ends_at: None,
            ships_on: None,
            max_per_buyer: None,
            buyers: domain::Buyers::Anyone,
        };
        self.offers
            .lock()
            .unwrap()
            .insert(card.offer.clone(), card.clone());
        card
    }
}

#[async_trait::async_trait]
impl Commerce for ShelfCommerce {
    async fn buy(
        &self,
        _room: &BroadcastId,
        buyer: &Participant,
        offer: &OfferId,
        quantity: u32,
        nonce: &str,
    ) -> Result<ReservationInfo, BuyRefusal> {
        let key = format!("{}/{nonce}", buyer.subject);
        if let Some(r) = self.reservations.lock().unwrap().get(&key) {
            return Ok(r.clone());
        }
        let mut offers = self.offers.lock().unwrap();
        let card = offers
            .get_mut(offer)
            .ok_or(BuyRefusal::new(BuyRefusalCode::NotOnSale, "not on sale"))?;
        if card.available < quantity {
            return Err(BuyRefusal {
                available: Some(card.available),
                ..BuyRefusal::new(BuyRefusalCode::InsufficientStock, "not enough left")
            });
        }
        card.available -= quantity;
        let info = ReservationInfo {
            reservation: ReservationId::generate(),
            offer: offer.clone(),
            quantity,
            unit_price_fen: card.price_fen,
            total_fen: card.price_fen.times(quantity),
            expires_at: Timestamp(ms(4_000_000_000_000)),
            nonce: None,
        };
        self.reservations.lock().unwrap().insert(key, info.clone());
        Ok(info)
    }

    async fn offer_card(&self, _room: &BroadcastId, offer: &OfferId) -> Option<OfferCard> {
        self.offers.lock().unwrap().get(offer).cloned()
    }
}

// ---------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Routes {
    hub: LiveHub,
    people: Arc<Mutex<HashMap<String, Participant>>>,
    rooms: Arc<Mutex<HashMap<String, RoomInfo>>>,
}

#[derive(serde::Deserialize)]
struct LiveQuery {
    who: String,
    resume_from: Option<u64>,
}

async fn live_route(
    State(routes): State<Routes>,
    Path(broadcast): Path<String>,
    Query(q): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let info = routes
        .rooms
        .lock()
        .unwrap()
        .get(&broadcast)
        .cloned()
        .expect("known broadcast");
    let who = if q.who == "anonymous" {
        Participant::anonymous()
    } else {
        routes
            .people
            .lock()
            .unwrap()
            .get(&q.who)
            .cloned()
            .expect("known person")
    };
    let hub = routes.hub.clone();
    hub.configure_upgrade(ws)
        .on_upgrade(move |socket| async move { hub.serve(info, who, socket, q.resume_from).await })
}

struct App {
    _db: TestDb,
    store: Store,
    hub: LiveHub,
    commerce: Arc<ShelfCommerce>,
    addr: SocketAddr,
    routes: Routes,
    shop: ShopId,
    room: BroadcastId,
    other_room: BroadcastId,
    server: tokio::task::JoinHandle<()>,
}

fn test_config() -> LiveConfig {
    LiveConfig {
        chat_burst: 50,
        chat_per_minute: 600,
        ..LiveConfig::default()
    }
}

async fn serve_routes(
    routes: Routes,
    send_buffer: Option<u32>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = send_buffer {
        // Inherited by accepted sockets: lets a test fill a slow client's
        // pipe with kilobytes instead of megabytes.
        socket.set_send_buffer_size(size).unwrap();
    }
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/live/{broadcast}", get(live_route))
        .with_state(routes);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, server)
}

impl App {
    async fn start() -> App {
        App::start_with(test_config(), None).await
    }

    async fn start_with(config: LiveConfig, send_buffer: Option<u32>) -> App {
        let db = TestDb::sqlite();
        let store = db.store().await.unwrap();
        let owner = user(&store, "13800138000", "老王").await;
        let shop = store
            .create_shop(
                NewShop {
                    owner_id: owner.clone(),
                    name: ShopName::parse("王家沟小米").unwrap(),
                    place: Place::parse("山西 岢岚县").unwrap(),
                    story: Story::parse("").unwrap(),
                    payment_note: domain::PaymentNote::from_trusted(String::new()),
                },
                ms(1),
            )
            .await
            .unwrap()
            .id;
        let mut rooms = HashMap::new();
        let mut ids = Vec::new();
        for title in ["收割", "脱粒"] {
            let b = store
                .create_broadcast(
                    NewBroadcast {
                        shop_id: shop.clone(),
                        title: BroadcastTitle::parse(title).unwrap(),
                        scheduled_at: None,
                        stream_key: secret_token(),
                    },
                    ms(1),
                )
                .await
                .unwrap();
            rooms.insert(
                b.id.to_string(),
                RoomInfo {
                    broadcast: b.id.clone(),
                    shop: shop.clone(),
                    state: BroadcastState::Live,
                },
            );
            ids.push(b.id);
        }
        let commerce = Arc::new(ShelfCommerce::default());
        let hub = LiveHub::new(store.clone(), commerce.clone(), config);
        let routes = Routes {
            hub: hub.clone(),
            people: Default::default(),
            rooms: Arc::new(Mutex::new(rooms)),
        };
        let (addr, server) = serve_routes(routes.clone(), send_buffer).await;
        let app = App {
            _db: db,
            store,
            hub,
            commerce,
            addr,
            routes,
            shop,
            other_room: ids.pop().unwrap(),
            room: ids.pop().unwrap(),
            server,
        };
        app.add(
            "owner",
            Participant {
                subject: owner.to_string(),
                name: DisplayName::parse("老王").unwrap(),
                role: Role::Owner,
                signed_in: true,
                anonymous: false,
            },
        );
        app.add_user("mod", "13900139000", Role::Moderator).await;
        app.add_user("mod2", "13700137000", Role::Moderator).await;
        app.add_user("viewer", "13600136000", Role::Viewer).await;
        app.add_guest("guest").await;
        app
    }

    fn add(&self, key: &str, p: Participant) {
        self.routes.people.lock().unwrap().insert(key.to_owned(), p);
    }

    fn person(&self, key: &str) -> Participant {
        self.routes.people.lock().unwrap()[key].clone()
    }

    fn subject(&self, key: &str) -> String {
        self.person(key).subject
    }

    async fn add_user(&self, key: &str, mobile: &str, role: Role) {
        let id = user(&self.store, mobile, key).await;
        if role == Role::Moderator {
            self.store
                .add_moderator(&self.shop, &id, ms(1))
                .await
                .unwrap();
        }
        self.add(
            key,
            Participant {
                subject: id.to_string(),
                name: DisplayName::parse(key).unwrap(),
                role,
                signed_in: true,
                anonymous: false,
            },
        );
    }

    async fn add_guest(&self, key: &str) {
        let name = DisplayName::parse(key).unwrap();
        let id = self.store.create_guest(&name, ms(1)).await.unwrap();
        self.add(
            key,
            Participant {
                subject: id.to_string(),
                name,
                role: Role::Viewer,
                signed_in: false,
                anonymous: false,
            },
        );
    }

    async fn join(&self, who: &str) -> Client {
        Client::connect(self.addr, &self.room, who, None).await
    }

    /// Joins and reads past hello and the snapshot.
    async fn joined(&self, who: &str) -> Client {
        let mut c = self.join(who).await;
        c.until(|e| matches!(e, ServerEvent::Snapshot(_)).then_some(()))
            .await;
        c
    }
}

async fn user(store: &Store, mobile: &str, name: &str) -> UserId {
    store
        .create_user(
            &Mobile::parse(mobile).unwrap(),
            &DisplayName::parse(name).unwrap(),
            "$argon2id$x",
            ms(1),
        )
        .await
        .unwrap()
        .id
}

// ---------------------------------------------------------------------------
// A websocket client
// ---------------------------------------------------------------------------

struct Client {
    ws: WebSocketStream<TcpStream>,
    last_seq: u64,
    nonce: u64,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        room: &BroadcastId,
        who: &str,
        resume_from: Option<u64>,
    ) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client::over(stream, addr, room, who, resume_from).await
    }

    async fn over(
        stream: TcpStream,
        addr: SocketAddr,
        room: &BroadcastId,
        who: &str,
        resume: Option<u64>,
    ) -> Client {
        let mut url = format!("ws://{addr}/live/{room}?who={who}");
        if let Some(seq) = resume {
            url.push_str(&format!("&resume_from={seq}"));
        }
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("websocket handshake");
        Client {
            ws,
            last_seq: 0,
            nonce: 0,
        }
    }

    async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    async fn chat(&mut self, text: &str) -> String {
        self.nonce += 1;
        let nonce = format!("n{}", self.nonce);
        self.send(json!({"type": "chat", "text": text, "nonce": nonce}))
            .await;
        nonce
    }

    /// Posts and waits until the server accepted it; the message id.
    async fn post(&mut self, text: &str) -> String {
        let nonce = self.chat(text).await;
        self.until(|e| match e {
            ServerEvent::Accepted {
                nonce: n, message, ..
            } if *n == nonce => Some(message.to_string()),
            ServerEvent::Refused(r) => panic!("refused: {r:?}"),
            _ => None,
        })
        .await
    }

    async fn next(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("no transport error");
            match msg {
                Message::Text(t) => {
                    let frame: ServerFrame =
                        serde_json::from_str(t.as_str()).expect("a valid server frame");
                    self.last_seq = frame.seq;
                    return frame;
                }
                Message::Close(c) => panic!("closed unexpectedly: {c:?}"),
                _ => {}
            }
        }
    }

    /// Reads until `f` picks something out.
    async fn until<T>(&mut self, mut f: impl FnMut(&ServerEvent) -> Option<T>) -> T {
        loop {
            let frame = self.next().await;
            if let Some(t) = f(&frame.event) {
                return t;
            }
        }
    }

    /// Reads until the chat message `text`; returns every frame on the way.
    async fn until_chat(&mut self, text: &str) -> Vec<ServerFrame> {
        let mut seen = Vec::new();
        loop {
            let frame = self.next().await;
            let done = matches!(&frame.event, ServerEvent::Chat(m) if m.text.as_str() == text);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    async fn refusal(&mut self) -> Refusal {
        self.until(|e| {
            if let ServerEvent::Refused(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .await
    }

    /// Reads (skipping frames) until the server closes; the code and reason.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closed in time");
            match msg {
                Some(Ok(Message::Close(Some(c)))) => {
                    // Reading on sends our half of the closing handshake.
                    let _ = tokio::time::timeout(WAIT, self.ws.next()).await;
                    return (u16::from(c.code), c.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => panic!("closed without a reason"),
                Some(Err(e)) => panic!("transport error before a close frame: {e}"),
                Some(Ok(_)) => {}
            }
        }
    }
}

fn chats(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| {
            if let ServerEvent::Chat(m) = &f.event {
                Some(m.text.as_str().to_owned())
            } else {
                None
            }
        })
        .collect()
}

async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_message_reaches_every_client_in_the_room_and_no_client_of_another_room() {
    let app = App::start().await;
    let mut here = Vec::new();
    for who in ["owner", "mod", "viewer", "guest", "anonymous"] {
        here.push(app.joined(who).await);
    }
    let mut there = Vec::new();
    for who in ["viewer", "anonymous"] {
        let mut c = Client::connect(app.addr, &app.other_room, who, None).await;
        c.until(|e| matches!(e, ServerEvent::Snapshot(_)).then_some(()))
            .await;
        there.push(c);
    }

    here[3].chat("今年的小米真黄").await;
    let mut seqs = Vec::new();
    for c in &mut here {
        let frames = c.until_chat("今年的小米真黄").await;
        let frame = frames.last().unwrap();
        let ServerEvent::Chat(m) = &frame.event else {
            unreachable!()
        };
        assert_eq!(m.author.subject, app.subject("guest"));
        assert_eq!(m.author.role, Role::Viewer);
        seqs.push(frame.seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1]),
        "one frame, one seq for everyone: {seqs:?}"
    );

    // The other room hears its own message first and never this one.
    let mut owner_there = Client::connect(app.addr, &app.other_room, "owner", None).await;
    owner_there.post("另一场直播").await;
    for c in &mut there {
        let frames = c.until_chat("另一场直播").await;
        assert_eq!(chats(&frames), vec!["另一场直播"]);
    }
}

/// Every moderation action by every kind of person: exactly the owner and
/// moderators moderate, moderators never act on the owner or each other.
#[tokio::test]
async fn moderation_permissions_by_role() {
    let app = App::start().await;
    let offer = app.commerce.stock("小米 5斤", 100);
    let mut owner = app.joined("owner").await;
    let mut mod2 = app.joined("mod2").await;
    let owner_message = owner.post("欢迎大家").await;
    let mod2_message = mod2.post("我是管理员").await;

    #[derive(Clone, Copy, Debug)]
    enum Target {
        Victim,
        Owner,
        Mod2,
        None,
    }
    use RefusalCode::{NotAllowed as No, TargetProtected as Protected};
    type Expect = Option<RefusalCode>;
    const OK: Expect = None;
    // (action, target, [guest, viewer, anonymous, moderator, owner])
    let table: Vec<(&str, Target, [Expect; 5])> = vec![
        (
            "delete_message",
            Target::Victim,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "delete_message",
            Target::Owner,
            [Some(No), Some(No), Some(No), Some(Protected), OK],
        ),
        (
            "delete_message",
            Target::Mod2,
            [Some(No), Some(No), Some(No), Some(Protected), OK],
        ),
        (
            "timeout",
            Target::Victim,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "timeout",
            Target::Mod2,
            [Some(No), Some(No), Some(No), Some(Protected), OK],
        ),
        (
            "timeout",
            Target::Owner,
            [
                Some(No),
                Some(No),
                Some(No),
                Some(Protected),
                Some(Protected),
            ],
        ),
        (
            "ban",
            Target::Victim,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "ban",
            Target::Mod2,
            [Some(No), Some(No), Some(No), Some(Protected), OK],
        ),
        (
            "ban",
            Target::Owner,
            [
                Some(No),
                Some(No),
                Some(No),
                Some(Protected),
                Some(Protected),
            ],
        ),
        (
            "unban",
            Target::Victim,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "set_slow_mode",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "set_blocked_words",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "pin_message",
            Target::Victim,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "unpin_message",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "clear_chat",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "pin_offer",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
        (
            "unpin_offer",
            Target::None,
            [Some(No), Some(No), Some(No), OK, OK],
        ),
    ];

    let mut victims = 0;
    for (action, target, outcomes) in table {
        for (who, expected) in ["guest", "viewer", "anonymous", "mod", "owner"]
            .into_iter()
            .zip(outcomes)
        {
            // Fresh preconditions for every case.
            victims += 1;
            let victim_key = format!("victim{victims}");
            app.add_guest(&victim_key).await;
            let victim_subject = app.subject(&victim_key);
            let mut victim = app.joined(&victim_key).await;
            let victim_message = victim.post("来看看").await;
            match action {
                "unban" => {
                    owner
                        .send(json!({"type": "ban", "subject": victim_subject}))
                        .await;
                    assert_eq!(victim.closed().await.0, 4001);
                }
                "unpin_message" => {
                    owner
                        .send(json!({"type": "pin_message", "message": victim_message}))
                        .await;
                    owner
                        .until(|e| {
                            matches!(e, ServerEvent::PinnedMessage { message: Some(_) })
                                .then_some(())
                        })
                        .await;
                }
                "unpin_offer" => {
                    // Pinned now, whether it was already or not.
                    owner
                        .send(json!({"type": "pin_offer", "offer": offer.offer}))
                        .await;
                    owner
                        .until(|e| {
                            matches!(
                                e,
                                ServerEvent::OfferPinned { .. } | ServerEvent::OfferUpdated { .. }
                            )
                            .then_some(())
                        })
                        .await;
                }
                "pin_offer" => {
                    // Not pinned now, whether it was or not.
                    owner
                        .send(json!({"type": "unpin_offer", "offer": offer.offer}))
                        .await;
                    owner
                        .until(|e| {
                            matches!(
                                e,
                                ServerEvent::OfferUnpinned { .. } | ServerEvent::Refused(_)
                            )
                            .then_some(())
                        })
                        .await;
                }
                _ => {}
            }
            let (subject, message) = match target {
                Target::Victim => (victim_subject.clone(), victim_message.clone()),
                Target::Owner => (app.subject("owner"), owner_message.clone()),
                Target::Mod2 => (app.subject("mod2"), mod2_message.clone()),
                Target::None => (String::new(), String::new()),
            };
            let command = match action {
                "delete_message" | "pin_message" => json!({"type": action, "message": message}),
                "timeout" => json!({"type": action, "subject": subject, "seconds": 60}),
                "ban" | "unban" => json!({"type": action, "subject": subject, "reason": "test"}),
                "set_slow_mode" => json!({"type": action, "seconds": 5}),
                "set_blocked_words" => json!({"type": action, "words": ["spam"]}),
                "pin_offer" | "unpin_offer" => json!({"type": action, "offer": offer.offer}),
                _ => json!({"type": action}),
            };
            let mut actor = app.joined(who).await;
            let actor_subject = match who {
                "anonymous" => None,
                w => Some(app.subject(w)),
            };
            actor.send(command).await;
            let outcome = actor
                .until(|e| match e {
                    ServerEvent::Refused(r) => Some(Some(r.code)),
                    ServerEvent::Moderation(m)
                        if m.action.as_str() == action.trim_start_matches("set_")
                            && m.actor.as_ref().map(|a| &a.subject) == actor_subject.as_ref() =>
                    {
                        Some(None)
                    }
                    _ => None,
                })
                .await;
            assert_eq!(outcome, expected, "{who} doing {action} on {target:?}");
            if expected.is_none() && action == "ban" && matches!(target, Target::Victim) {
                assert_eq!(victim.closed().await, (4001, "banned".to_owned()));
            }
        }
    }
}

#[tokio::test]
async fn slow_mode_and_rate_limits_answer_with_private_notices() {
    let config = LiveConfig {
        chat_burst: 3,
        chat_per_minute: 6,
        flood_strikes: 2,
        ..LiveConfig::default()
    };
    let app = App::start_with(config, None).await;
    let mut owner = app.joined("owner").await;
    let mut guest = app.joined("guest").await;
    let mut watcher = app.joined("viewer").await;

    owner
        .send(json!({"type": "set_slow_mode", "seconds": 30}))
        .await;
    let settings = guest
        .until(|e| {
            if let ServerEvent::Settings(s) = e {
                Some(*s)
            } else {
                None
            }
        })
        .await;
    assert_eq!(settings.slow_mode_seconds, 30);
    guest.post("第一条").await;
    let nonce = guest.chat("第二条").await;
    let r = guest.refusal().await;
    assert_eq!(
        (r.command, r.code, r.nonce.clone()),
        (CommandName::Chat, RefusalCode::SlowMode, Some(nonce))
    );
    assert!(
        r.retry_after_ms
            .is_some_and(|ms| ms > 25_000 && ms <= 30_000),
        "{r:?}"
    );

    owner
        .send(json!({"type": "set_slow_mode", "seconds": 0}))
        .await;
    guest
        .until(|e| matches!(e, ServerEvent::Settings(s) if s.slow_mode_seconds == 0).then_some(()))
        .await;
    // One message of the burst of 3 is spent; two more pass, then the limit.
    guest.post("2").await;
    guest.post("3").await;
    guest.chat("4").await;
    let r = guest.refusal().await;
    assert_eq!(r.code, RefusalCode::RateLimited);
    assert!(r.retry_after_ms.unwrap() > 0);
    guest.chat("5").await;
    let mut got_refusal = None;
    let mut got_muted = None;
    while got_refusal.is_none() || got_muted.is_none() {
        match guest.next().await.event {
            ServerEvent::Refused(r) => got_refusal = Some(r),
            ServerEvent::Muted(m) => got_muted = Some(m),
            _ => {}
        }
    }
    assert_eq!(got_refusal.unwrap().code, RefusalCode::Muted);
    let muted = got_muted.unwrap();
    assert_eq!((muted.reason, muted.seconds), (MuteReason::Flood, 60));
    assert!(
        !muted.message.is_empty(),
        "an explanation, not a silent drop"
    );

    // Others saw exactly the posted messages.
    let frames = watcher.until_chat("3").await;
    assert_eq!(chats(&frames), vec!["第一条", "2", "3"]);
    let log = app.hub.moderation_log(&app.shop, 10).await.unwrap();
    assert!(log.iter().any(|e| e.action == ModerationAction::AutoMute
        && e.actor.is_none()
        && e.target.as_deref() == Some(app.subject("guest").as_str())));
}

#[tokio::test]
async fn a_room_whose_bans_cannot_be_read_stays_closed() {
    let app = App::start().await;
    app.add_guest("troll").await;
    let mut moderator = app.joined("mod").await;
    let mut troll = app.joined("troll").await;
    moderator
        .send(json!({"type": "ban", "subject": app.subject("troll"), "reason": "spam"}))
        .await;
    assert_eq!(troll.closed().await.0, 4001);
    app.hub.flush().await;

    // The shop's other broadcast opens while its bans cannot be read.
    app._db
        .execute("ALTER TABLE chat_bans RENAME TO chat_bans_unreadable")
        .await
        .unwrap();
    let mut troll = Client::connect(app.addr, &app.other_room, "troll", None).await;
    assert_eq!(
        troll.closed().await,
        (1013, "room_unavailable".to_owned()),
        "a banned person must not get into a room that lost its bans"
    );
    let mut viewer = Client::connect(app.addr, &app.other_room, "viewer", None).await;
    assert_eq!(
        viewer.closed().await.0,
        1013,
        "nobody gets in, so nobody is told wrong"
    );

    // Once the database answers again, the next attempt opens the room with
    // its rules: the ban holds and everyone else gets in.
    app._db
        .execute("ALTER TABLE chat_bans_unreadable RENAME TO chat_bans")
        .await
        .unwrap();
    let mut troll = Client::connect(app.addr, &app.other_room, "troll", None).await;
    assert_eq!(troll.closed().await, (4001, "banned".to_owned()));
    let mut viewer = Client::connect(app.addr, &app.other_room, "viewer", None).await;
    viewer.post("能看到了").await;
}

#[tokio::test]
async fn a_ban_disconnects_hides_and_keeps_out() {
    let app = App::start().await;
    app.add_guest("troll").await;
    let mut troll = app.joined("troll").await;
    let mut troll_second_tab = app.joined("troll").await;
    let mut guest = app.joined("guest").await;
    let mut moderator = app.joined("mod").await;
    troll.post("加我微信").await;
    troll.post("便宜卖").await;
    guest.post("小米多少钱").await;

    moderator
        .send(json!({"type": "ban", "subject": app.subject("troll"), "reason": "spam"}))
        .await;
    assert_eq!(troll.closed().await, (4001, "banned".to_owned()));
    assert_eq!(
        troll_second_tab.closed().await.0,
        4001,
        "every connection of that person"
    );
    let hidden = guest
        .until(|e| {
            if let ServerEvent::MessagesHidden { subject } = e {
                Some(subject.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(hidden, app.subject("troll"));

    let mut newcomer = app.join("viewer").await;
    let snapshot = newcomer
        .until(|e| {
            if let ServerEvent::Snapshot(s) = e {
                Some(s.clone())
            } else {
                None
            }
        })
        .await;
    let history: Vec<_> = snapshot.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(history, vec!["小米多少钱"]);

    let mut again = app.join("troll").await;
    assert_eq!(
        again.closed().await,
        (4001, "banned".to_owned()),
        "kept out on reconnect"
    );

    // The ban holds in the shop's other broadcast too.
    let mut elsewhere = Client::connect(app.addr, &app.other_room, "troll", None).await;
    assert_eq!(elsewhere.closed().await.0, 4001);

    let log = app.hub.moderation_log(&app.shop, 10).await.unwrap();
    let ban = log
        .iter()
        .find(|e| e.action == ModerationAction::Ban)
        .expect("logged");
    assert_eq!(ban.actor.as_ref().unwrap().subject, app.subject("mod"));
    assert_eq!(ban.detail.as_deref(), Some("spam"));
    assert!(
        app.store
            .is_chat_banned(
                &app.shop,
                &domain::Subject::from_trusted(app.subject("troll")),
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn blocked_words_are_refused_and_a_repeated_nonce_posts_once() {
    let app = App::start().await;
    let mut owner = app.joined("owner").await;
    let mut guest = app.joined("guest").await;
    let mut watcher = app.joined("viewer").await;

    owner
        .send(json!({"type": "set_blocked_words", "words": ["加微信", "SPAM"]}))
        .await;
    let words = owner
        .until(|e| {
            if let ServerEvent::BlockedWords { words } = e {
                Some(words.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(words, vec!["加微信", "spam"]);
    guest.chat("快来 ＳＰＡＭ 这里").await;
    let r = guest.refusal().await;
    assert_eq!(r.code, RefusalCode::BlockedWord);
    guest.chat("私聊加微信").await;
    assert_eq!(guest.refusal().await.code, RefusalCode::BlockedWord);

    guest
        .send(json!({"type": "chat", "text": "只发一次", "nonce": "same"}))
        .await;
    let first = guest
        .until(|e| {
            if let ServerEvent::Accepted {
                message,
                duplicate: false,
                ..
            } = e
            {
                Some(message.clone())
            } else {
                None
            }
        })
        .await;
    guest
        .send(json!({"type": "chat", "text": "只发一次", "nonce": "same"}))
        .await;
    let second = guest
        .until(|e| {
            if let ServerEvent::Accepted {
                message,
                duplicate: true,
                ..
            } = e
            {
                Some(message.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(first, second);
    owner.post("结束").await;
    let frames = watcher.until_chat("结束").await;
    assert_eq!(
        chats(&frames),
        vec!["只发一次", "结束"],
        "no blocked text, no duplicate"
    );
}

#[tokio::test]
async fn a_reconnecting_client_receives_what_it_missed() {
    let app = App::start().await;
    let mut owner = app.joined("owner").await;
    let mut viewer = app.joined("viewer").await;
    owner.post("之前").await;
    viewer.until_chat("之前").await;
    let last_seq = viewer.last_seq;
    drop(viewer);

    owner.post("错过一").await;
    let gone = owner.post("错过二").await;
    owner
        .send(json!({"type": "set_slow_mode", "seconds": 10}))
        .await;
    owner
        .send(json!({"type": "delete_message", "message": gone}))
        .await;
    owner.post("错过三").await;

    let mut back = Client::connect(app.addr, &app.room, "viewer", Some(last_seq)).await;
    let hello = back.next().await;
    let ServerEvent::Hello(h) = &hello.event else {
        panic!("{hello:?}")
    };
    assert_eq!(h.resume, ResumeOutcome::Replayed);
    let mut replayed = Vec::new();
    let state = loop {
        let frame = back.next().await;
        match frame.event {
            ServerEvent::RoomState { state } => break state,
            ServerEvent::Snapshot(_) => panic!("should have been a replay"),
            event => replayed.push((frame.seq, event)),
        }
    };
    let texts: Vec<_> = replayed
        .iter()
        .map(|(_, e)| match e {
            ServerEvent::Chat(m) => m.text.as_str().to_owned(),
            ServerEvent::MessageDeleted { message } => format!("deleted {message}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            "错过一".to_owned(),
            "错过二".into(),
            format!("deleted {gone}"),
            "错过三".into()
        ]
    );
    assert!(replayed.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    assert!(replayed[0].0 > last_seq);
    assert_eq!(
        state.settings.slow_mode_seconds, 10,
        "state changes come as the current state"
    );

    // A seq from long ago (or another run of the server): a fresh snapshot.
    let mut stale = Client::connect(app.addr, &app.room, "viewer", Some(1)).await;
    let ServerEvent::Hello(h) = stale.next().await.event else {
        panic!()
    };
    assert_eq!(h.resume, ResumeOutcome::TooOld);
    let ServerEvent::Snapshot(s) = stale.next().await.event else {
        panic!()
    };
    assert_eq!(s.reason, SnapshotReason::ResumeTooOld);
    let history: Vec<_> = s.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(history, vec!["之前", "错过一", "错过三"]);
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_delay_the_others_and_is_disconnected() {
    let config = LiveConfig {
        chat_burst: 10_000,
        chat_per_minute: 60_000,
        replay_capacity: 32,
        outbox_capacity: 64,
        stall_timeout: Duration::from_secs(1),
        close_grace: Duration::from_secs(15),
        ..LiveConfig::default()
    };
    let app = App::start_with(config, Some(4096)).await;
    let mut owner = app.joined("owner").await;

    // The stalled phone: a tiny receive window, and it never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let mut stalled = Client::over(stream, app.addr, &app.room, "viewer", None).await;

    const VIEWERS: usize = 100;
    const MESSAGES: usize = 300;
    const BURST: usize = 20;
    let received: Arc<Vec<std::sync::atomic::AtomicUsize>> =
        Arc::new((0..VIEWERS).map(|_| Default::default()).collect());
    let mut readers = Vec::new();
    for i in 0..VIEWERS {
        let mut c = app
            .joined(if i % 2 == 0 { "guest" } else { "anonymous" })
            .await;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            loop {
                match c.next().await.event {
                    ServerEvent::Chat(_) => {
                        received[i].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    ServerEvent::Snapshot(s) => panic!("a reading client fell behind: {s:?}"),
                    _ => {}
                }
            }
        }));
    }

    // Bursts of chat; after each, every reading client has all of it.
    let text = "新米上市，".repeat(38); // 190 characters
    let mut slowest = Duration::ZERO;
    for burst in 1..=MESSAGES / BURST {
        let started = tokio::time::Instant::now();
        for _ in 0..BURST {
            owner.chat(&text).await;
        }
        let received = received.clone();
        eventually(|| {
            let received = received.clone();
            async move {
                received
                    .iter()
                    .all(|n| n.load(std::sync::atomic::Ordering::SeqCst) >= burst * BURST)
            }
        })
        .await;
        slowest = slowest.max(started.elapsed());
    }
    println!(
        "{VIEWERS} reading clients got each burst of {BURST} within {slowest:?} (slowest burst)"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "a stalled client must not hold up the others: {slowest:?}"
    );
    for r in readers {
        assert!(!r.is_finished(), "reader failed: {:?}", r.await);
    }

    // The stalled client is dropped from the room with a reason ...
    let room = app.room.clone();
    eventually(|| {
        let hub = app.hub.clone();
        let room = room.clone();
        async move {
            hub.room_stats(&room)
                .await
                .is_some_and(|s| s.connections == VIEWERS + 1)
        }
    })
    .await;
    // ... which it reads once it reads again: 4002 too_slow.
    assert_eq!(stalled.closed().await, (4002, "too_slow".to_owned()));
}

#[tokio::test]
async fn malformed_frames_get_an_error_to_that_client_only_and_the_server_stays_up() {
    let app = App::start().await;
    let mut sloppy = app.joined("guest").await;
    let mut bystander = app.joined("viewer").await;

    let too_big = json!({"type": "chat", "text": "x".repeat(5000), "nonce": "n"}).to_string();
    let cases: Vec<(Message, ErrorCode)> = vec![
        (Message::Text("hello?".into()), ErrorCode::NotJson),
        (
            Message::Text(r#"{"type":"shout","text":"hi"}"#.into()),
            ErrorCode::UnknownType,
        ),
        (
            Message::Text(r#"{"type":"chat"}"#.into()),
            ErrorCode::InvalidMessage,
        ),
        (
            Message::Text(r#"{"text":"no type"}"#.into()),
            ErrorCode::InvalidMessage,
        ),
        (
            Message::Binary(vec![1, 2, 3].into()),
            ErrorCode::BinaryNotSupported,
        ),
        (Message::Text(too_big.into()), ErrorCode::TooLarge),
    ];
    for (frame, expected) in cases {
        sloppy.ws.send(frame).await.unwrap();
        let code = sloppy
            .until(|e| {
                if let ServerEvent::Error { code, .. } = e {
                    Some(*code)
                } else {
                    None
                }
            })
            .await;
        assert_eq!(code, expected);
    }
    // Still connected and useful.
    sloppy.post("我还在").await;
    let frames = bystander.until_chat("我还在").await;
    assert!(
        frames
            .iter()
            .all(|f| !matches!(f.event, ServerEvent::Error { .. })),
        "errors went to the sender only"
    );

    // Repeated garbage ends that connection only.
    let mut vandal = app.joined("anonymous").await;
    for _ in 0..=app.hub.config().max_bad_frames {
        vandal
            .ws
            .send(Message::Text("garbage".into()))
            .await
            .unwrap();
    }
    assert_eq!(
        vandal.closed().await,
        (4004, "too_many_bad_frames".to_owned())
    );
    let mut newcomer = app.joined("owner").await;
    newcomer.post("服务器正常").await;
    bystander.until_chat("服务器正常").await;
}

#[tokio::test]
async fn history_survives_a_restart_of_the_hub() {
    let app = App::start().await;
    let mut owner = app.joined("owner").await;
    let mut guest = app.joined("guest").await;
    owner.post("第一条").await;
    let pinned = guest.post("第二条").await;
    let deleted = guest.post("要删的").await;
    owner.post("第三条").await;
    owner
        .send(json!({"type": "delete_message", "message": deleted}))
        .await;
    owner
        .send(json!({"type": "pin_message", "message": pinned}))
        .await;
    owner
        .send(json!({"type": "set_slow_mode", "seconds": 15}))
        .await;
    guest
        .until(|e| matches!(e, ServerEvent::Settings(_)).then_some(()))
        .await;
    let old_seq = guest.last_seq;

    app.hub.shutdown().await;
    assert_eq!(guest.closed().await, (1001, "server_restarting".to_owned()));
    app.server.abort();

    // A new hub on the same database, as after a restart.
    let hub = LiveHub::new(app.store.clone(), app.commerce.clone(), test_config());
    let routes = Routes {
        hub: hub.clone(),
        ..app.routes.clone()
    };
    let (addr, _server) = serve_routes(routes, None).await;
    let mut back = Client::connect(addr, &app.room, "guest", Some(old_seq)).await;
    let ServerEvent::Hello(h) = back.next().await.event else {
        panic!()
    };
    assert_eq!(
        h.resume,
        ResumeOutcome::TooOld,
        "the old run's seq is not replayable"
    );
    let ServerEvent::Snapshot(s) = back.next().await.event else {
        panic!()
    };
    let history: Vec<_> = s.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(history, vec!["第一条", "第二条", "第三条"]);
    assert_eq!(
        s.state.pinned_message.map(|m| m.id.to_string()),
        Some(pinned)
    );
    assert_eq!(s.state.settings.slow_mode_seconds, 15);
    assert!(back.last_seq > old_seq, "seq keeps growing across runs");

    // A retry of a message sent before the restart is still recognised.
    back.send(json!({"type": "chat", "text": "第二条", "nonce": "n1"}))
        .await;
    let dup = back
        .until(|e| {
            if let ServerEvent::Accepted { duplicate, .. } = e {
                Some(*duplicate)
            } else {
                None
            }
        })
        .await;
    assert!(dup);
}

#[tokio::test]
async fn offers_buying_and_private_messages() {
    let app = App::start().await;
    let offer = app.commerce.stock("小米 5斤", 10);
    let mut owner = app.joined("owner").await;
    let mut guest = app.joined("guest").await;
    let mut viewer = app.joined("viewer").await;
    let mut anon = app.joined("anonymous").await;

    owner
        .send(json!({"type": "pin_offer", "offer": offer.offer}))
        .await;
    for c in [&mut guest, &mut viewer, &mut anon] {
        let card = c
            .until(|e| {
                if let ServerEvent::OfferPinned { offer } = e {
                    Some(offer.clone())
                } else {
                    None
                }
            })
            .await;
        assert_eq!(card.available, 10);
    }

    guest
        .send(json!({"type": "buy", "offer": offer.offer, "quantity": 2, "nonce": "b1"}))
        .await;
    let r = guest
        .until(|e| {
            if let ServerEvent::Reservation(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(
        (r.quantity, r.total_fen.get(), r.nonce.as_deref()),
        (2, 13_600, Some("b1"))
    );
    guest
        .send(json!({"type": "buy", "offer": offer.offer, "quantity": 2, "nonce": "b1"}))
        .await;
    let again = guest
        .until(|e| {
            if let ServerEvent::Reservation(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(
        again.reservation, r.reservation,
        "the nonce makes a retried tap reserve once"
    );

    viewer
        .send(json!({"type": "buy", "offer": offer.offer, "quantity": 50, "nonce": "b2"}))
        .await;
    let (code, available) = viewer
        .until(|e| match e {
            ServerEvent::BuyRefused { refusal, .. } => Some((refusal.code, refusal.available)),
            _ => None,
        })
        .await;
    assert_eq!(
        (code, available),
        (BuyRefusalCode::InsufficientStock, Some(8))
    );

    anon.send(json!({"type": "buy", "offer": offer.offer, "quantity": 1, "nonce": "b3"}))
        .await;
    let refusal = anon.refusal().await;
    assert_eq!(
        (refusal.command, refusal.code),
        (CommandName::Buy, RefusalCode::NicknameRequired)
    );
    anon.chat("hi").await;
    assert_eq!(anon.refusal().await.code, RefusalCode::NicknameRequired);

    // The order service reports stock and sales; the room shows them.
    let mut card = offer.clone();
    card.available = 8;
    app.hub.update_offer(&app.room, card);
    app.hub.sale(
        &app.room,
        SaleTicker {
            offer: offer.offer.clone(),
            title: offer.title.clone(),
            quantity: 2,
            unit: offer.unit.clone(),
            buyer_region: Some("太原".into()),
        },
    );
    app.hub.set_media_viewers(&app.room, 321);
    for c in [&mut viewer, &mut anon] {
        // Stock and viewer counts are coalesced, the ticker is not: any order.
        let (mut stock, mut sale, mut viewers) = (None, None, None);
        while stock.is_none() || sale.is_none() || viewers.is_none() {
            match c.next().await.event {
                ServerEvent::OfferUpdated { offer } => stock = Some(offer.available),
                ServerEvent::Sale(t) => sale = t.buyer_region,
                ServerEvent::Viewers(v) if v.count == 321 => viewers = Some(v.connected),
                _ => {}
            }
        }
        assert_eq!(
            (stock, sale.as_deref(), viewers),
            (Some(8), Some("太原"), Some(4))
        );
    }

    // Private: only the buyer hears that their reservation expired.
    app.hub.private(
        &app.room,
        &app.subject("guest"),
        PrivateMessage::ReservationExpired {
            reservation: r.reservation.clone(),
            offer: offer.offer.clone(),
        },
    );
    guest
        .until(|e| matches!(e, ServerEvent::ReservationExpired { .. }).then_some(()))
        .await;
    app.hub
        .set_broadcast_state(&app.room, BroadcastState::Ended);
    let frames = {
        let mut seen = Vec::new();
        loop {
            let f = viewer.next().await;
            let end = matches!(
                f.event,
                ServerEvent::BroadcastState {
                    state: BroadcastState::Ended
                }
            );
            seen.push(f);
            if end {
                break seen;
            }
        }
    };
    assert!(
        frames
            .iter()
            .all(|f| !matches!(f.event, ServerEvent::ReservationExpired { .. }))
    );
}

#[tokio::test]
async fn keepalive_pings_hold_a_connection_and_silence_ends_it() {
    let config = LiveConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        close_grace: Duration::from_secs(10),
        ..test_config()
    };
    let app = App::start_with(config, None).await;
    let mut silent = app.joined("anonymous").await;
    let mut alive = app.joined("guest").await;

    // A reading client answers the server's pings (tungstenite pongs for us)
    // and outlives several idle timeouts.
    let mut pings = 0;
    while pings < 12 {
        let msg = tokio::time::timeout(WAIT, alive.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Ping(_) = msg {
            pings += 1;
        }
    }
    alive.post("还在").await;

    // The silent one never read, so never answered: closed with 4003 (its
    // close frame waits in the socket; reading now finds it).
    assert_eq!(silent.closed().await, (4003, "idle_timeout".to_owned()));
    let room = app.room.clone();
    eventually(|| {
        let hub = app.hub.clone();
        let room = room.clone();
        async move {
            hub.room_stats(&room)
                .await
                .is_some_and(|s| s.connections == 1)
        }
    })
    .await;
}

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}

//! `fieldcast serve --demo`: a farmer, a shop in a millet village, a few
//! products and a scheduled broadcast, so a new user sees something at once.
//! Idempotent: a second start reuses what the first created.

use anyhow::Context;
use domain::*;
use store::Store;

pub struct DemoAccount {
    pub mobile: &'static str,
    pub password: &'static str,
    pub broadcast_id: BroadcastId,
}

const DEMO_MOBILE: &str = "13800000000";
/// Printed on the console for the demo; not a secret. Never use `--demo`
/// on a server others can reach.
const DEMO_PASSWORD: &str = "millet-demo";

pub async fn seed_demo(store: &Store) -> anyhow::Result<DemoAccount> {
    let now = domain::UnixMillis::wall_now();
    let mobile = Mobile::parse(DEMO_MOBILE)?;
    let user = match store.user_by_mobile(&mobile).await? {
        Some(user) => user,
        None => {
            let hash = api::auth::hash_password(Password::parse(DEMO_PASSWORD)?)
                .await
                .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
            store
                .create_user(&mobile, &DisplayName::parse("王大姐")?, &hash, now)
                .await?
        }
    };
    let shop = match store.shops_of_owner(&user.id).await?.into_iter().next() {
        Some(shop) => shop,
        None => {
            let shop = store
                .create_shop(
                    store::NewShop {
                        owner_id: user.id.clone(),
                        name: ShopName::parse("王家沟羊粪小米")?,
                        place: Place::parse("山西省忻州市岢岚县王家沟村")?,
                        story: Story::parse(
                            "我们村的谷子只上羊粪，不打除草剂。从播种到收割，每一步都在直播里给你看。\n\
                             Millet grown on sheep manure, no herbicide. Watch every step, from sowing to harvest.",
                        )?,
                        payment_note: PaymentNote::parse(
                            "微信转账：王大姐（演示账号，请勿真实付款）。转账时请备注订单号。\n\
                             WeChat transfer to 王大姐 (demo account, do not really pay); put the order number in the note.",
                        )?,
                    },
                    now,
                )
                .await?;
            let products = [
                (
                    "羊粪小米 20斤装",
                    "今年新谷，石碾去壳，熬粥有米油。",
                    "20斤袋",
                    16_800,
                    200,
                    None,
                ),
                (
                    "羊粪小米 5斤装",
                    "先尝尝，好吃再买大袋。",
                    "5斤袋",
                    4_800,
                    500,
                    None,
                ),
                (
                    "新谷预售 10斤",
                    "十月收割后发货。",
                    "10斤袋",
                    8_800,
                    300,
                    Some("2026-10-08"),
                ),
            ];
            for (title, description, unit, price, stock, ships_on) in products {
                store
                    .create_product(
                        store::NewProduct {
                            shop_id: shop.id.clone(),
                            title: ProductTitle::parse(title)?,
                            description: Description::parse(description)?,
                            unit: Unit::parse(unit)?,
                            price: Fen::price(price)?,
                            stock,
                            ships_on: ships_on.map(ShipDate::parse).transpose()?,
                        },
                        now,
                    )
                    .await?;
            }
            shop
        }
    };
    let broadcasts = store.broadcasts_of_shop(&shop.id).await?;
    let broadcast = match broadcasts
        .into_iter()
        .find(|b| b.state != BroadcastState::Ended)
    {
        Some(b) => b,
        None => store
            .create_broadcast(
                store::NewBroadcast {
                    shop_id: shop.id.clone(),
                    title: BroadcastTitle::parse("谷子地直播：看看今年的小米")?,
                    scheduled_at: Some(now.saturating_add(std::time::Duration::from_secs(3600))),
                    stream_key: secret_token(),
                },
                now,
            )
            .await
            .context("creating the demo broadcast")?,
    };
    Ok(DemoAccount {
        mobile: DEMO_MOBILE,
        password: DEMO_PASSWORD,
        broadcast_id: broadcast.id,
    })
}

//! Orders: payment methods, the order state machine, reservation states,
//! shipping details and the coarse place shown on the live sales ticker.

use crate::{Address, FieldCode, Invalid, normalize_text};
use serde::{Deserialize, Serialize};

/// How the buyer pays. There is no payment gateway: cash is collected by the
/// courier, a transfer is checked by the farmer, who marks the order paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    CashOnDelivery,
    BankTransfer,
    WechatTransfer,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::CashOnDelivery => "cash_on_delivery",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::WechatTransfer => "wechat_transfer",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::from_db(raw.trim()).ok_or_else(|| {
            Invalid::new(
                FieldCode::InvalidChoice,
                "must be cash_on_delivery, bank_transfer or wechat_transfer",
            )
        })
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "cash_on_delivery" => Some(Self::CashOnDelivery),
            "bank_transfer" => Some(Self::BankTransfer),
            "wechat_transfer" => Some(Self::WechatTransfer),
            _ => None,
        }
    }

    /// The label a farmer reads in the shipping sheet.
    pub fn label_zh(self) -> &'static str {
        match self {
            PaymentMethod::CashOnDelivery => "货到付款",
            PaymentMethod::BankTransfer => "银行转账",
            PaymentMethod::WechatTransfer => "微信转账",
        }
    }
}

/// An order's progress.
///
/// ```text
/// placed ──paid──> paid ──ship──> shipped ──deliver──> delivered
///    │                               ^
///    └──────ship (cash on delivery)──┘
/// placed | paid | shipped ──cancel──> cancelled
/// ```
///
/// A transfer order ships only once the farmer has seen the money; a cash on
/// delivery order ships unpaid (the courier collects). Delivered and
/// cancelled are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

/// What a farmer can do to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    MarkPaid,
    Ship,
    Deliver,
    Cancel,
}

impl OrderAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderAction::MarkPaid => "mark_paid",
            OrderAction::Ship => "ship",
            OrderAction::Deliver => "deliver",
            OrderAction::Cancel => "cancel",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("cannot {} an order that is {}", action.as_str(), from.as_str())]
pub struct OrderTransitionError {
    pub from: OrderState,
    pub action: OrderAction,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Paid => "paid",
            OrderState::Shipped => "shipped",
            OrderState::Delivered => "delivered",
            OrderState::Cancelled => "cancelled",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "placed" => Some(Self::Placed),
            "paid" => Some(Self::Paid),
            "shipped" => Some(Self::Shipped),
            "delivered" => Some(Self::Delivered),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::from_db(raw.trim()).ok_or_else(|| {
            Invalid::new(
                FieldCode::InvalidChoice,
                "must be placed, paid, shipped, delivered or cancelled",
            )
        })
    }

    /// The label a farmer reads in the shipping sheet.
    pub fn label_zh(self) -> &'static str {
        match self {
            OrderState::Placed => "待处理",
            OrderState::Paid => "已付款",
            OrderState::Shipped => "已发货",
            OrderState::Delivered => "已送达",
            OrderState::Cancelled => "已取消",
        }
    }

    /// The state after `action`, or why it is not allowed.
    pub fn apply(
        self,
        action: OrderAction,
        payment: PaymentMethod,
    ) -> Result<OrderState, OrderTransitionError> {
        use OrderAction::*;
        use OrderState::*;
        let to = match (self, action) {
            (Placed, MarkPaid) => Paid,
            (Paid, Ship) => Shipped,
            (Placed, Ship) if payment == PaymentMethod::CashOnDelivery => Shipped,
            (Shipped, Deliver) => Delivered,
            (Placed | Paid | Shipped, Cancel) => Cancelled,
            (from, action) => return Err(OrderTransitionError { from, action }),
        };
        Ok(to)
    }

    /// Whether cancelling an order in this state gives its units back: only
    /// if nothing has left the farm yet. A shipped parcel that comes back is
    /// counted back in by the farmer by hand, when it is actually there.
    pub fn cancel_returns_units(self) -> bool {
        matches!(self, OrderState::Placed | OrderState::Paid)
    }
}

/// A reservation's life: held while the buyer checks out, then confirmed
/// (an order exists), cancelled by the buyer, or expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Held,
    Confirmed,
    Cancelled,
    Expired,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Held => "held",
            ReservationState::Confirmed => "confirmed",
            ReservationState::Cancelled => "cancelled",
            ReservationState::Expired => "expired",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "held" => Some(Self::Held),
            "confirmed" => Some(Self::Confirmed),
            "cancelled" => Some(Self::Cancelled),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// The courier, e.g. "顺丰" or "中通快递".
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Carrier(String);

impl Carrier {
    pub const MAX_CHARS: usize = 30;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = normalize_text(raw, false);
        let len = text.chars().count();
        if len == 0 {
            return Err(Invalid::new(FieldCode::Required, "must not be empty"));
        }
        if len > Self::MAX_CHARS {
            return Err(
                Invalid::new(FieldCode::TooLong, "must be at most 30 characters")
                    .with("max", Self::MAX_CHARS as i64),
            );
        }
        Ok(Self(text))
    }

    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A parcel's tracking number: letters, digits and dashes (spaces people
/// type are dropped), as every Chinese courier prints them.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(Invalid::new(FieldCode::Required, "must not be empty"));
        }
        if compact.len() > 40
            || !compact
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Invalid::new(
                FieldCode::InvalidTrackingNumber,
                "must be at most 40 letters, digits or dashes",
            ));
        }
        Ok(Self(compact.to_ascii_uppercase()))
    }

    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Provincial-level divisions, short names first in each pair, so the ticker
/// reads "山西" whether the buyer typed "山西省" or "山西".
const PROVINCES: &[(&str, &str)] = &[
    ("北京", "北京市"),
    ("天津", "天津市"),
    ("上海", "上海市"),
    ("重庆", "重庆市"),
    ("河北", "河北省"),
    ("山西", "山西省"),
    ("辽宁", "辽宁省"),
    ("吉林", "吉林省"),
    ("黑龙江", "黑龙江省"),
    ("江苏", "江苏省"),
    ("浙江", "浙江省"),
    ("安徽", "安徽省"),
    ("福建", "福建省"),
    ("江西", "江西省"),
    ("山东", "山东省"),
    ("河南", "河南省"),
    ("湖北", "湖北省"),
    ("湖南", "湖南省"),
    ("广东", "广东省"),
    ("海南", "海南省"),
    ("四川", "四川省"),
    ("贵州", "贵州省"),
    ("云南", "云南省"),
    ("陕西", "陕西省"),
    ("甘肃", "甘肃省"),
    ("青海", "青海省"),
    ("台湾", "台湾省"),
    ("内蒙古", "内蒙古自治区"),
    ("广西", "广西壮族自治区"),
    ("西藏", "西藏自治区"),
    ("宁夏", "宁夏回族自治区"),
    ("新疆", "新疆维吾尔自治区"),
    ("香港", "香港特别行政区"),
    ("澳门", "澳门特别行政区"),
];

/// Characters that end the name of a prefecture- or county-level division.
const DIVISION_SUFFIXES: &[char] = &['市', '州', '盟', '县', '区', '旗'];

/// The coarse place shown on the live ticker ("山西 忻州市的朋友买了 2 袋"):
/// the province and the first division below it, read from the start of a
/// Chinese address. Nothing finer (no township, village, street or number)
/// is ever returned, and an address that does not start with a province
/// gives `None` rather than a guess.
pub fn coarse_place(address: &Address) -> Option<String> {
    let text = address.as_str();
    let (short, full) = PROVINCES
        .iter()
        .find(|(short, _)| text.starts_with(short))?;
    let mut rest = text[short.len()..].trim_start();
    // Skip the rest of the province's own name ("省", "市", "壮族自治区").
    if let Some(after) = full.strip_prefix(short)
        && let Some(stripped) = rest.strip_prefix(after)
    {
        rest = stripped.trim_start();
    }
    let division: String = {
        let mut name = String::new();
        let mut found = false;
        let mut chars = rest.chars().take(8).peekable();
        while let Some(c) = chars.next() {
            if c.is_whitespace() || c.is_ascii() {
                break;
            }
            name.push(c);
            // "忻州市", "广州市": a 州 followed by 市 is part of the name.
            let continues = c == '州' && chars.peek() == Some(&'市');
            if !continues && DIVISION_SUFFIXES.contains(&c) && name.chars().count() >= 2 {
                found = true;
                break;
            }
        }
        if found { name } else { String::new() }
    };
    Some(if division.is_empty() {
        (*short).to_owned()
    } else {
        format!("{short} {division}")
    })
}

#[cfg(test)]
mod tests {
    use super::OrderAction::*;
    use super::OrderState::*;
    use super::*;

    const COD: PaymentMethod = PaymentMethod::CashOnDelivery;
    const BANK: PaymentMethod = PaymentMethod::BankTransfer;

    #[test]
    fn transfer_orders_are_paid_before_they_ship() {
        assert_eq!(Placed.apply(MarkPaid, BANK), Ok(Paid));
        assert_eq!(Paid.apply(Ship, BANK), Ok(Shipped));
        assert_eq!(Shipped.apply(Deliver, BANK), Ok(Delivered));
        assert_eq!(
            Placed.apply(Ship, BANK),
            Err(OrderTransitionError {
                from: Placed,
                action: Ship
            })
        );
    }

    #[test]
    fn cash_on_delivery_ships_unpaid() {
        assert_eq!(Placed.apply(Ship, COD), Ok(Shipped));
        assert_eq!(
            Placed.apply(MarkPaid, COD),
            Ok(Paid),
            "a buyer may still pay ahead"
        );
    }

    #[test]
    fn final_states_stay_final_and_nothing_skips_ahead() {
        for action in [MarkPaid, Ship, Deliver, Cancel] {
            assert!(
                Delivered.apply(action, COD).is_err(),
                "{action:?} on delivered"
            );
            assert!(
                Cancelled.apply(action, COD).is_err(),
                "{action:?} on cancelled"
            );
        }
        assert!(Placed.apply(Deliver, COD).is_err());
        assert!(Paid.apply(MarkPaid, BANK).is_err());
        assert!(Shipped.apply(Ship, BANK).is_err());
        assert!(Shipped.apply(MarkPaid, BANK).is_err());
        assert_eq!(Shipped.apply(Cancel, BANK), Ok(Cancelled));
    }

    #[test]
    fn only_unshipped_cancellations_return_units() {
        assert!(Placed.cancel_returns_units());
        assert!(Paid.cancel_returns_units());
        assert!(!Shipped.cancel_returns_units());
    }

    #[test]
    fn states_and_methods_round_trip_through_the_database_form() {
        for s in [Placed, Paid, Shipped, Delivered, Cancelled] {
            assert_eq!(OrderState::from_db(s.as_str()), Some(s));
        }
        for m in [COD, BANK, PaymentMethod::WechatTransfer] {
            assert_eq!(PaymentMethod::parse(m.as_str()), Ok(m));
        }
        assert!(PaymentMethod::parse("alipay").is_err());
        for r in [
            ReservationState::Held,
            ReservationState::Confirmed,
            ReservationState::Cancelled,
            ReservationState::Expired,
        ] {
            assert_eq!(ReservationState::from_db(r.as_str()), Some(r));
        }
    }

    #[test]
    fn shipping_details_are_normalized() {
        assert_eq!(
            TrackingNumber::parse(" sf 1234-5678 ").unwrap().as_str(),
            "SF1234-5678"
        );
        assert!(TrackingNumber::parse("SF/123").is_err());
        assert!(TrackingNumber::parse("").is_err());
        assert_eq!(Carrier::parse(" 顺丰 ").unwrap().as_str(), "顺丰");
        assert!(Carrier::parse(&"顺".repeat(31)).is_err());
    }

    #[test]
    fn coarse_place_keeps_province_and_one_division_only() {
        let place = |raw: &str| coarse_place(&Address::parse(raw).unwrap());
        assert_eq!(
            place("山西省忻州市岢岚县宋家沟村12号").as_deref(),
            Some("山西 忻州市")
        );
        assert_eq!(
            place("山西 岢岚县 王家沟村 3 号").as_deref(),
            Some("山西 岢岚县")
        );
        assert_eq!(
            place("北京市朝阳区建国路88号").as_deref(),
            Some("北京 朝阳区")
        );
        assert_eq!(
            place("广西壮族自治区南宁市青秀区").as_deref(),
            Some("广西 南宁市")
        );
        assert_eq!(
            place("内蒙古呼伦贝尔市海拉尔区").as_deref(),
            Some("内蒙古 呼伦贝尔市")
        );
        assert_eq!(
            place("上海 徐汇 1 号楼").as_deref(),
            Some("上海"),
            "no suffix: province only"
        );
        assert_eq!(place("12 Baker Street, London"), None);
        assert_eq!(place("我家在村东头第三户"), None);
    }
}

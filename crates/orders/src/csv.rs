//! The shipping sheet a farmer opens in Excel or WPS, or imports into a
//! courier's bulk-shipping tool.

use crate::OrderRecord;
use domain::{OrderState, PaymentMethod, UnixMillis};
use time::macros::format_description;

/// The sheet's language: its headers and the words in it (states,
/// payment methods). What people typed stays as they typed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SheetLanguage {
    #[default]
    Chinese,
    English,
}

/// How the farmer reads the sheet: in which language, and the UTC offset
/// of their phone (`None`: the server's `export_utc_offset_minutes`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SheetOptions {
    pub language: SheetLanguage,
    pub utc_offset_minutes: Option<i16>,
}

/// The columns; `{zone}` in the time's header is replaced by the offset
/// ("UTC+08:00") so a sheet read elsewhere still says when. No private
/// columns: the buyer's order-link token and account or guest id stay out.
const HEADER_ZH: [&str; 16] = [
    "订单号",
    "下单时间({zone})",
    "状态",
    "商品",
    "规格",
    "数量",
    "单价(元)",
    "金额(元)",
    "付款方式",
    "收货人",
    "手机",
    "收货地址",
    "预计发货",
    "快递公司",
    "快递单号",
    "取消原因",
];
const HEADER_EN: [&str; 16] = [
    "Order number",
    "Ordered at ({zone})",
    "Status",
    "Product",
    "Unit",
    "Quantity",
    "Unit price (yuan)",
    "Total (yuan)",
    "Payment",
    "Recipient",
    "Mobile",
    "Address",
    "Ships on",
    "Carrier",
    "Tracking number",
    "Cancel reason",
];

/// UTF-8 with a byte-order mark, CRLF line ends and RFC 4180 quoting (a
/// field with a comma, quote or line break is quoted, quotes doubled).
/// Fields that a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`) get a leading `'`, so a crafted address cannot execute.
/// The order number is the short one buyers quote (`OrderId::number`).
pub fn shipping_sheet(
    orders: &[OrderRecord],
    utc_offset_minutes: i16,
    lang: SheetLanguage,
) -> String {
    let mut out = String::with_capacity(128 + orders.len() * 256);
    out.push('\u{FEFF}');
    let zone = zone_name(utc_offset_minutes);
    let header = match lang {
        SheetLanguage::Chinese => HEADER_ZH,
        SheetLanguage::English => HEADER_EN,
    };
    let header = header.map(|h| h.replace("{zone}", &zone));
    write_row(&mut out, header.iter().map(String::as_str));
    for o in orders {
        let (state, payment) = match lang {
            SheetLanguage::Chinese => (o.state.label_zh(), o.payment_method.label_zh()),
            SheetLanguage::English => (state_en(o.state), payment_en(o.payment_method)),
        };
        let fields = [
            o.id.number(),
            local_time(o.created_at, utc_offset_minutes),
            state.to_owned(),
            o.title.to_string(),
            o.unit.to_string(),
            o.quantity.to_string(),
            yuan(o.unit_price.get()),
            yuan(o.total.get()),
            payment.to_owned(),
            o.recipient_name.to_string(),
            o.mobile.as_str().to_owned(),
            o.address.to_string(),
            o.ships_on.map(|d| d.to_string()).unwrap_or_default(),
            o.carrier
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            o.tracking_number
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            o.cancel_reason
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        ];
        write_row(&mut out, fields.iter().map(String::as_str));
    }
    out
}

fn state_en(state: OrderState) -> &'static str {
    match state {
        OrderState::Placed => "New",
        OrderState::Paid => "Paid",
        OrderState::Shipped => "Shipped",
        OrderState::Delivered => "Delivered",
        OrderState::Cancelled => "Cancelled",
    }
}

fn payment_en(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::CashOnDelivery => "Cash on delivery",
        PaymentMethod::BankTransfer => "Bank transfer",
        PaymentMethod::WechatTransfer => "WeChat transfer",
    }
}

/// `480` → `UTC+08:00`, `-330` → `UTC-05:30`.
fn zone_name(utc_offset_minutes: i16) -> String {
    let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
    let abs = utc_offset_minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", abs / 60, abs % 60)
}

fn write_row<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_field(out, field);
    }
    out.push_str("\r\n");
}

fn write_field(out: &mut String, field: &str) {
    let guard = field.starts_with(['=', '+', '-', '@']);
    let quote = guard || field.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// `12345` fen → `123.45`: a number a spreadsheet can add up.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn local_time(at: UnixMillis, utc_offset_minutes: i16) -> String {
    let offset = time::UtcOffset::from_whole_seconds(i32::from(utc_offset_minutes) * 60)
        .unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| {
            t.format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut out = String::new();
        write_row(
            &mut out,
            ["plain", "a,b", "say \"hi\"", "line\nbreak", "=1+1", "-3"].into_iter(),
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\",\"'=1+1\",\"'-3\"\r\n"
        );
    }

    #[test]
    fn money_and_times_read_like_a_farmer_expects() {
        assert_eq!(yuan(16_800), "168.00");
        assert_eq!(yuan(5), "0.05");
        // 2026-10-08 00:30 UTC is 08:30 in Beijing.
        assert_eq!(local_time(ms(1_791_419_400_000), 480), "2026-10-08 08:30");
        assert_eq!(local_time(ms(1_791_419_400_000), 0), "2026-10-08 00:30");
        assert_eq!(zone_name(480), "UTC+08:00");
        assert_eq!(zone_name(-330), "UTC-05:30");
        assert_eq!(zone_name(0), "UTC+00:00");
    }
}

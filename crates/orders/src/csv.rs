//! The shipping sheet a farmer opens in Excel or WPS, or imports into a
//! courier's bulk-shipping tool.

use crate::OrderView;
use domain::UnixMillis;
use time::macros::format_description;

const HEADER: [&str; 18] = [
    "订单号",
    "下单时间",
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
    "买家",
    "订单链接码",
];

/// UTF-8 with a byte-order mark, CRLF line ends and RFC 4180 quoting (a
/// field with a comma, quote or line break is quoted, quotes doubled).
/// Fields that a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`) get a leading `'`, so a crafted address cannot execute.
pub fn shipping_sheet(orders: &[OrderView], utc_offset_minutes: i16) -> String {
    let mut out = String::with_capacity(128 + orders.len() * 256);
    out.push('\u{FEFF}');
    write_row(&mut out, HEADER.iter().copied());
    for o in orders {
        let fields = [
            o.id.to_string(),
            local_time(o.created_at, utc_offset_minutes),
            o.state.label_zh().to_owned(),
            o.title.to_string(),
            o.unit.to_string(),
            o.quantity.to_string(),
            yuan(o.unit_price.get()),
            yuan(o.total.get()),
            o.payment_method.label_zh().to_owned(),
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
            o.buyer.clone(),
            o.token.clone(),
        ];
        write_row(&mut out, fields.iter().map(String::as_str));
    }
    out
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
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
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
        assert_eq!(local_time(1_791_419_400_000, 480), "2026-10-08 08:30");
        assert_eq!(local_time(1_791_419_400_000, 0), "2026-10-08 00:30");
    }
}

//! Opaque identifiers. On the wire and in the database they are short random
//! strings with a type prefix (`shp_…`, `brd_…`) so a misplaced id is obvious
//! in logs and error messages.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Alphabet without look-alike characters, so ids survive being read aloud.
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const RANDOM_LEN: usize = 16; // 31^16 ≈ 2^79: collisions are not a practical concern.

fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, random_suffix(RANDOM_LEN)))
            }

            /// Accepts any id of this kind that came from outside (a path or
            /// a body). Shape only: whether it exists is the store's business.
            pub fn parse(raw: &str) -> Result<Self, crate::Invalid> {
                let ok = raw.len() <= 64
                    && raw
                        .strip_prefix(concat!($prefix, "_"))
                        .is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                        });
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(crate::Invalid::new(
                        crate::FieldCode::InvalidId,
                        concat!("not a valid ", stringify!($name)),
                    ))
                }
            }

            /// For values read back from our own database.
            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(/// A registered account (farmer, moderator or buyer who signed up).
    UserId, "usr");
id_type!(/// A guest: someone who watches and chats with a nickname only.
    GuestId, "gst");
id_type!(/// A sign-in session, also the handle used to revoke it.
    SessionId, "ses");
id_type!(ShopId, "shp");
id_type!(ProductId, "prd");
id_type!(BroadcastId, "brd");
id_type!(/// A product put on sale during a broadcast.
    OfferId, "ofr");
id_type!(ReservationId, "rsv");
id_type!(OrderId, "ord");

impl OrderId {
    /// The short number people quote (a transfer's note, a phone call):
    /// the id's last six characters in capitals, `ord_ykmgunnz9g794vvk` →
    /// `794VVK`. The pages derive the same (`orderNumber` in
    /// `web/static/js/i18n.js`).
    pub fn number(&self) -> String {
        let skip = self.0.chars().count().saturating_sub(6);
        self.0.chars().skip(skip).collect::<String>().to_uppercase()
    }
}
id_type!(ChatMessageId, "msg");

/// A secret with enough entropy to be used as a bearer credential
/// (session cookies, stream keys, private order links).
pub fn secret_token() -> String {
    random_suffix(32) // 31^32 ≈ 2^158
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_number_is_the_ids_last_six_in_capitals() {
        let id = OrderId::parse("ord_ykmgunnz9g794vvk").unwrap();
        assert_eq!(id.number(), "794VVK");
    }

    #[test]
    fn generated_ids_parse_back_and_carry_their_prefix() {
        let id = ShopId::generate();
        assert!(id.as_str().starts_with("shp_"));
        assert_eq!(ShopId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn ids_of_another_kind_or_garbage_are_refused() {
        let product = ProductId::generate();
        assert!(ShopId::parse(product.as_str()).is_err());
        assert!(ShopId::parse("shp_").is_err());
        assert!(ShopId::parse("shp_../../etc").is_err());
        assert!(ShopId::parse(&format!("shp_{}", "a".repeat(100))).is_err());
    }
}

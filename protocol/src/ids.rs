//! Typed identifiers. Every id is a UUID (v7 when Navaro mints it); the newtypes keep a
//! staff id from being passed where a booking id is expected.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

struct UuidVisitor;

impl Visitor<'_> for UuidVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UUID string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uuid, E> {
        Uuid::parse_str(v).map_err(E::custom)
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        // Always the hyphenated string, in MessagePack too: clients (JavaScript above all)
        // handle ids as strings, and API.md promises the same shape in both encodings.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buf = Uuid::encode_buffer();
                serializer.serialize_str(self.0.as_hyphenated().encode_lower(&mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(UuidVisitor).map(Self)
            }
        }

        impl $name {
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// An establishment: one actor, one journal stream.
    EstablishmentId
);
id_type!(
    /// A registered user; every user is a customer, some are also members.
    UserId
);
id_type!(
    /// A staff member of one establishment.
    StaffId
);
id_type!(
    /// A service an establishment offers.
    ServiceId
);
id_type!(
    /// A confirmed (or later cancelled, completed, no-show) booking.
    BookingId
);
id_type!(
    /// A hold: a booking in progress that blocks its slot until confirmed or expired.
    HoldId
);
id_type!(
    /// A time-off range of one staff member.
    TimeOffId
);
id_type!(
    /// A walk-in queue ticket.
    TicketId
);
id_type!(
    /// A payment (a deposit or prepayment of a checkout, later a fee or refund).
    PaymentId
);

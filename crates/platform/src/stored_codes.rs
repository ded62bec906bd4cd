//! Storing coded enums (ADR 0028) with sqlx, written once: [`stored_codes!`](crate::stored_codes)
//! makes each [`ekb_domain::coded_enum!`] type a `TEXT` value — written as its code, read back
//! through `parse_code` (an unknown code is an error naming it) — usable as a column or as an
//! array for `= ANY($n)`, and converts it to and from its contract number, so no service converts
//! a number or a code by hand.

/// The contract number of a value that may be unset: UNSPECIFIED (0) when it is `None`.
pub fn wire_or_unspecified<T: Into<i32>>(value: Option<T>) -> i32 {
    value.map_or(0, Into::into)
}

/// Makes each coded enum a `TEXT` value for sqlx (its code) and converts it to and from its
/// contract number (`i32::from`, and `TryFrom<i32>` as the request validator takes enums):
/// `ekb_platform::stored_codes!(OrderStatus, InvoiceStatus);`
#[macro_export]
macro_rules! stored_codes {
    ($($name:ident),* $(,)?) => {$(
        impl $crate::reexports::sqlx::Type<$crate::reexports::sqlx::Postgres> for $name {
            fn type_info() -> $crate::reexports::sqlx::postgres::PgTypeInfo {
                <&str as $crate::reexports::sqlx::Type<$crate::reexports::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::reexports::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::reexports::sqlx::Type<$crate::reexports::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl $crate::reexports::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::reexports::sqlx::postgres::PgTypeInfo {
                <&str as $crate::reexports::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl $crate::reexports::sqlx::Encode<'_, $crate::reexports::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::reexports::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::reexports::sqlx::encode::IsNull, $crate::reexports::sqlx::error::BoxDynError> {
                <&str as $crate::reexports::sqlx::Encode<$crate::reexports::sqlx::Postgres>>::encode(self.code(), buf)
            }
        }

        impl<'r> $crate::reexports::sqlx::Decode<'r, $crate::reexports::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::reexports::sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::reexports::sqlx::error::BoxDynError> {
                let code = <&str as $crate::reexports::sqlx::Decode<$crate::reexports::sqlx::Postgres>>::decode(value)?;
                $name::parse_code(code).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " code {:?}"), code).into()
                })
            }
        }

        impl From<$name> for i32 {
            fn from(value: $name) -> i32 {
                value.to_wire() as i32
            }
        }

        impl TryFrom<i32> for $name {
            type Error = ();

            fn try_from(number: i32) -> Result<Self, ()> {
                $name::from_wire(number).ok_or(())
            }
        }
    )*};
}

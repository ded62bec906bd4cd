//! Serde support for types whose wire form is their validated string.
//!
//! Identifiers and codes serialize as the same string that `Display` prints and deserialize
//! through the same `FromStr` that validates input, so a payload can never carry a value the
//! parser would have refused.

/// Implements `Serialize` (via `Display`) and `Deserialize` (via `FromStr`) for `$ty`.
macro_rules! serde_via_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text =
                    <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                text.parse::<$ty>().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use serde_via_str;

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers to exercise serde impls without a format crate.

    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error;

    /// Deserializes `T` from a plain string, as a string-based format would hand it over.
    pub(crate) fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
        T::deserialize(IntoDeserializer::<Error>::into_deserializer(text))
    }
}

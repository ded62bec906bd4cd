//! One storage rule for every enum a service keeps (ADR 0028): a short, stable UPPER_SNAKE code
//! in a `TEXT` column with a CHECK constraint listing the codes, and the contract enum of the same
//! variant names on the wire. Codes survive renumbering and renaming in the contract, and a row
//! can be read without the proto. [`coded_enum!`](crate::coded_enum) writes the code, the wire
//! value and both conversions once, from one table:
//!
//! ```ignore
//! ekb_domain::coded_enum! {
//!     /// Where a reservation is.
//!     Status => v1::ReservationStatus {
//!         /// Waiting for the year's appropriation.
//!         Pending = "PENDING",
//!     }
//! }
//! ```

/// An enum stored as a code and carried on the wire as the contract enum whose variants have
/// the same names: the code, the wire value and both conversions are written once, from one
/// table.
#[macro_export]
macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        $name:ident => $wire:ty {
            $($(#[$variant_meta:meta])* $variant:ident = $code:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The code it is stored under.
            pub const fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value stored under `code`.
            pub fn parse_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.code() == code)
            }

            /// The contract's value.
            pub fn to_wire(self) -> $wire {
                match self {
                    $($name::$variant => <$wire>::$variant,)*
                }
            }

            /// The value of a contract number; `None` for UNSPECIFIED and unknown numbers.
            pub fn from_wire(value: i32) -> Option<Self> {
                let wire = <$wire>::try_from(value).ok()?;
                Self::ALL.iter().copied().find(|known| known.to_wire() == wire)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    /// A stand-in for a prost enum: numbered variants, UNSPECIFIED at 0.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Wire {
        Unspecified = 0,
        Open = 1,
        Closed = 2,
    }

    impl TryFrom<i32> for Wire {
        type Error = ();
        fn try_from(value: i32) -> Result<Self, ()> {
            [Wire::Unspecified, Wire::Open, Wire::Closed]
                .into_iter()
                .find(|wire| *wire as i32 == value)
                .ok_or(())
        }
    }

    crate::coded_enum! {
        /// A test enum.
        Door => Wire {
            /// Open.
            Open = "OPEN",
            /// Closed.
            Closed = "CLOSED",
        }
    }

    #[test]
    fn codes_and_wire_values_convert_both_ways_and_unspecified_is_refused() {
        for door in Door::ALL {
            assert_eq!(Door::parse_code(door.code()), Some(*door));
            assert_eq!(Door::from_wire(door.to_wire() as i32), Some(*door));
        }
        assert_eq!(Door::parse_code("AJAR"), None);
        assert_eq!(Door::from_wire(Wire::Unspecified as i32), None);
        assert_eq!(Door::from_wire(7), None);
    }
}

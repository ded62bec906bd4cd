//! How long a service keeps what it stores, as one `[retention]` section in every service that
//! keeps case records (applications, refunds): personal data is erased after `personal_data`,
//! and the record itself is deleted after `records`, which the regulation's § 5 says must be at
//! least ten years (grant records are kept ten years for control and audit). The minimum is
//! stated here once; a shorter value stops the service at start.

use ekb_domain::CalendarMonths;
use serde::Deserialize;

use crate::config::ConfigError;

/// The shortest record retention § 5 allows: ten years.
pub const MINIMUM_RECORD_RETENTION: CalendarMonths = CalendarMonths::years(10);

/// The `[retention]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RetentionSection {
    /// How long after a case ended here its personal data and free text are kept, e.g.
    /// `"15 months"`.
    pub personal_data: CalendarMonths,
    /// How long after a case ended here its record and audit trail are kept (at least
    /// [`MINIMUM_RECORD_RETENTION`]), e.g. `"10 years"`.
    pub records: CalendarMonths,
}

impl RetentionSection {
    /// Checks the § 5 minimum and that personal data does not outlive the record.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.records < MINIMUM_RECORD_RETENTION {
            return Err(ConfigError::invalid(
                "retention.records",
                format!("must be at least {MINIMUM_RECORD_RETENTION} (§ 5)"),
            ));
        }
        if self.personal_data > self.records {
            return Err(ConfigError::invalid(
                "retention.personal_data",
                "must not be longer than retention.records",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(personal_data: u32, records: u32) -> RetentionSection {
        RetentionSection {
            personal_data: CalendarMonths::new(personal_data),
            records: CalendarMonths::new(records),
        }
    }

    #[test]
    fn records_are_kept_at_least_ten_years_and_personal_data_no_longer_than_records() {
        assert!(section(15, 120).check().is_ok());
        let short = section(15, 119).check().expect_err("under § 5");
        assert!(short.to_string().contains("retention.records"), "{short}");
        assert!(short.to_string().contains("10 years"), "{short}");
        let long = section(121, 120).check().expect_err("outlives the record");
        assert!(
            long.to_string().contains("retention.personal_data"),
            "{long}"
        );
    }
}
